"""Importing the research code's checkpoints and group files (sagea.research), and the workflow's
self-healing of an unreadable model.pt."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sagea.groups.io import load_groups, load_subgroups
from sagea.io import UnreadableFileError, write_parquet
from sagea.models.sae import SAE
from sagea.research import import_elsa, import_groups, import_sae, main, parse_group_file, research_sae

D, H = 6, 40


def _research_sae_checkpoint(path: Path, batchtopk: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    """A checkpoint in the research code's format, built from its parameter names only."""
    g = torch.Generator().manual_seed(seed)
    state = {
        "encoder_w": torch.randn(D, H, generator=g),
        "encoder_b": torch.randn(H, generator=g) * 0.1,
        "decoder_w": torch.nn.functional.normalize(torch.randn(H, D, generator=g), dim=1),
        "decoder_b": torch.randn(D, generator=g) * 0.1,
    }
    if batchtopk:
        state["threshold"] = torch.tensor([0.35])  # a parameter without gradient in the research code
        state["processed_batches_count"] = torch.tensor([123.0])
    optimizer = {"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.zeros(D, H)}},
                 "param_groups": [{"lr": 1e-5, "betas": (0.9, 0.99), "params": [0, 1, 2, 3]}]}  # fmt: skip
    torch.save({"model_state_dict": state, "optimizer_state_dict": optimizer, "epoch": 17}, path)
    return state


def _direct(state: dict, k: int, variant: str) -> SAE:
    model = SAE(D, H, k=k, variant=variant, seed=None)
    weights = {name: state[name] for name in ("encoder_w", "encoder_b", "decoder_w", "decoder_b")}
    if variant == "batchtopk":
        weights["threshold"] = state["threshold"].reshape(())
    model.load_state_dict(weights)
    return model.eval()


def _codes(model: SAE, x: torch.Tensor, topk_inference: bool = True) -> torch.Tensor:
    with torch.no_grad():
        return model.encode(x, topk_inference)[0]


@pytest.mark.parametrize("variant", ["topk", "batchtopk"])
def test_research_sae_imports_with_its_k_and_codes_match(tmp_path, variant):
    source = tmp_path / "research.ckpt"
    state = _research_sae_checkpoint(source, variant == "batchtopk")
    x = torch.randn(50, D, generator=torch.Generator().manual_seed(3))
    dest = tmp_path / "results" / "model.pt"
    research_name = {"topk": "TopKSAE", "batchtopk": "BatchTopKSAE"}[variant]
    import_sae(source, dest, k=16, width=H, variant=research_name)
    loaded = SAE.load(dest)
    assert loaded.k == 16 and loaded.variant == variant and loaded.hparams["width"] == H
    direct = _direct(state, 16, variant)
    for ti in (True, False):
        assert torch.equal(_codes(loaded, x, ti), _codes(direct, x, ti))
    if variant == "topk":  # k matters: every user has 16 active features, not the class default 32
        assert (_codes(loaded, x) > 0).sum(1).max() <= 16
        assert not torch.equal(_codes(loaded, x), _codes(_direct(state, 32, variant), x))
    else:
        assert float(loaded.threshold) == pytest.approx(0.35)
        expected = torch.where(_pre(direct, x) > 0.35, _pre(direct, x), torch.zeros(()))
        assert torch.allclose(_codes(loaded, x), expected)
    assert torch.load(dest, weights_only=True)["imported_from"] == str(source)


def _pre(model: SAE, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        xs, _, _ = SAE.standardize(x)
        return torch.relu((xs - model.decoder_b) @ model.encoder_w + model.encoder_b)


def test_k_is_never_guessed(tmp_path):
    source = tmp_path / "research.ckpt"
    _research_sae_checkpoint(source, False)
    with pytest.raises(ValueError, match="k is not stored"):
        research_sae(source)
    with pytest.raises(ValueError, match=r"no SAE hyperparameters.*sagea\.research"):
        SAE.load(source)
    with pytest.raises(ValueError, match="width 32 given but encoder_w is"):
        research_sae(source, k=4, width=32)
    with pytest.raises(ValueError, match="has no a BatchTopK threshold|has no"):
        research_sae(source, k=4, variant="BatchTopKSAE")
    assert main(["sae", str(source), str(tmp_path / "out.pt")]) == 2  # the command line refuses too
    assert main(["sae", str(source), str(tmp_path / "out.pt"), "--k", "8"]) == 0
    assert SAE.load(tmp_path / "out.pt").k == 8


def test_k_width_variant_from_the_research_mlflow_run(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run() as run:
        mlflow.log_params({"top_k": 12, "embedding_dim": H, "model": "BatchTopKSAE", "normalize": "False"})
    source = tmp_path / "research.ckpt"
    state = _research_sae_checkpoint(source, True)
    model = research_sae(source, mlflow_uri=uri, run_id=run.info.run_id)
    assert (model.k, model.variant, model.normalize) == (12, "batchtopk", False)
    x = torch.randn(20, D, generator=torch.Generator().manual_seed(1))
    assert torch.equal(_codes(model, x), _codes(_direct(state, 12, "batchtopk"), x))
    with pytest.raises(ValueError, match="k=5 given but MLflow run"):
        research_sae(source, k=5, mlflow_uri=uri, run_id=run.info.run_id)


def test_research_elsa_import(tmp_path):
    from sagea.models.elsa import ELSA

    encoder = torch.nn.functional.normalize(torch.randn(30, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    torch.save({"model_state_dict": {"encoder": encoder}, "optimizer_state_dict": {}, "epoch": 3}, tmp_path / "e.ckpt")
    import_elsa(tmp_path / "e.ckpt", tmp_path / "model.pt")
    assert torch.equal(ELSA.load(tmp_path / "model.pt").encoder.detach(), encoder)


# ----------------------------------------------------------------------------- groups
def _users(tmp_path: Path, ids: list[str]) -> Path:
    path = tmp_path / "users.parquet"
    write_parquet(pd.DataFrame({"user": np.arange(len(ids), dtype=np.int32), "original_id": ids,
                                "n_interactions": np.ones(len(ids), dtype=np.int32)}), path)  # fmt: skip
    return path


def test_parse_group_file_names():
    assert parse_group_file("x/similar_3_test.npy") == ("similar_3", [3], "test")
    assert parse_group_file("random_5_valid.npy") == ("random_5", [5], "valid")
    assert parse_group_file("opposing_2_1_test.npy") == ("opposing_2-1", [2, 1], "test")
    with pytest.raises(ValueError, match="not a research group file name"):
        parse_group_file("groups.npy")


def test_research_groups_import_same_order(tmp_path):
    users = _users(tmp_path, [f"u{i}" for i in range(10)])
    groups = np.array([[4, 1, 7], [0, 9, 2]], dtype=np.int64)
    np.save(tmp_path / "opposing_2_1_test.npy", groups)
    dest = tmp_path / "opposing_2-1.parquet"
    import_groups(tmp_path / "opposing_2_1_test.npy", dest, users)
    assert load_groups(dest).tolist() == groups.tolist()
    assert load_subgroups(dest).tolist() == [0, 0, 1]
    frame = pd.read_parquet(dest)
    assert frame["original_id"].tolist() == ["u4", "u1", "u7", "u0", "u9", "u2"]


def test_research_groups_mapped_through_original_ids(tmp_path):
    """Research index i -> research_order[i] (an original id) -> our row of that id."""
    users = _users(tmp_path, ["a", "b", "c", "d"])
    research_order = tmp_path / "research_users.csv"
    research_order.write_text("original_id\nc\na\nd\nb\n")
    np.save(tmp_path / "similar_2_test.npy", np.array([[0, 3], [2, 1]]))
    frame = import_groups(tmp_path / "similar_2_test.npy", tmp_path / "s.parquet", users, research_order)
    # research 0 = c (ours 2), 3 = b (ours 1), 2 = d (ours 3), 1 = a (ours 0)
    assert load_groups(tmp_path / "s.parquet").tolist() == [[2, 1], [3, 0]]
    assert frame["original_id"].tolist() == ["c", "b", "d", "a"]


def test_research_group_files_load_without_pickle(tmp_path):
    users = _users(tmp_path, ["a", "b"])
    np.save(tmp_path / "similar_2_test.npy", np.array([[{"x": 1}, None]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        import_groups(tmp_path / "similar_2_test.npy", tmp_path / "s.parquet", users)
    np.save(tmp_path / "similar_3_test.npy", np.array([[0, 1]]))
    with pytest.raises(ValueError, match="2 members but the name says 3"):
        import_groups(tmp_path / "similar_3_test.npy", tmp_path / "s.parquet", users)


# ----------------------------------------------------------------------------- workflow
SNAKEFILE = (
    'configfile: "{repo}/config/config.yaml"\n'
    'include: "{repo}/workflow/rules/common.smk"\n'
    'include: "{repo}/workflow/rules/sae.smk"\n'
    "rule all:\n    input: sae_targets()\n"
)


def _snakemake(tmp_path: Path, repo: Path, python: str, overrides: str, *extra: str):
    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(repo=repo))
    (tmp_path / "overrides.yaml").write_text(overrides)
    cmd = [python, "-m", "snakemake", "-s", str(tmp_path / "Snakefile"), "-d", str(tmp_path), "--cores", "2",
           "--configfile", str(repo / "config" / "config.yaml"), str(tmp_path / "overrides.yaml"), *extra]  # fmt: skip
    return subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600)


@pytest.mark.workflow
def test_workflow_imports_research_sae_and_heals_a_truncated_model(tmp_path, repo, python):
    """sae_import replaces training of one grid id; a truncated model.pt is moved aside by
    extract_sae with a clear error, and a plain rerun regenerates it."""
    from sae_fixtures import write_stage_inputs

    write_stage_inputs(tmp_path, elsa_run="f16-s42", n_users=200, n_items=80, factors=16)
    g = torch.Generator().manual_seed(5)
    state = {"encoder_w": torch.randn(16, 32, generator=g), "encoder_b": torch.zeros(32),
             "decoder_w": torch.nn.functional.normalize(torch.randn(32, 16, generator=g), dim=1),
             "decoder_b": torch.zeros(16)}  # fmt: skip
    torch.save({"model_state_dict": state, "optimizer_state_dict": {}, "epoch": 1}, tmp_path / "research_sae.ckpt")
    overrides = (
        "mlflow: {enabled: false}\n"
        "elsa: {factors: 16, extra_runs: []}\n"
        "datasets:\n  synthetic:\n    source: synthetic\n"
        "    sae_import: {topk-h32-k2-l2: {path: research_sae.ckpt, variant: TopKSAE}}\n"
        "sae:\n  base: {variant: topk, lr: 0.003, batch_size: 32, epochs: 3, validate_every: 3, patience: 4}\n"
        "  grid: {width: [32], k: [2]}\n"
    )
    proc = _snakemake(tmp_path, repo, python, overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "results" / "synthetic" / "s42" / "sae" / "f16-s42" / "topk-h32-k2-l2"
    model = SAE.load(folder / "model.pt")
    assert model.k == 2 and torch.equal(model.encoder_w.detach(), state["encoder_w"])
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["imported_from"] == "research_sae.ckpt" and metrics["test"]["L0"] == pytest.approx(2)

    # a job killed while copying the model: truncated model.pt, newer than its inputs
    data = (folder / "model.pt").read_bytes()
    (folder / "model.pt").write_bytes(data[: len(data) // 3])
    (folder / "codes_topk.parquet").unlink()  # so extract_sae has to read it
    proc = _snakemake(tmp_path, repo, python, overrides)
    assert proc.returncode != 0
    log = (tmp_path / "logs" / "synthetic" / "s42" / "sae" / "f16-s42" / "topk-h32-k2-l2" / "extract.log").read_text()
    assert "model.pt is unreadable" in log and "model.pt.corrupt" in log
    assert "model.pt is not a readable SAE checkpoint" in proc.stderr and "run the workflow again" in proc.stderr
    assert (folder / "model.pt.corrupt").exists() and not (folder / "model.pt").exists()
    proc = _snakemake(tmp_path, repo, python, overrides)  # no manual deletion needed
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert torch.equal(SAE.load(folder / "model.pt").encoder_w.detach(), state["encoder_w"])
    assert (folder / "codes_topk.parquet").exists()


def test_sae_import_ids_must_be_in_the_grid():
    from sagea import plan

    config = {"datasets": {"ml": {"sae_import": {"topk-h64-k4-l2": {"path": "x"}}}},
              "sae": {"base": {"variant": "topk", "width": 32, "k": 4, "reconstruction_loss": "l2", "l1_coef": 3e-4,
                               "aux_coef": 1 / 32, "contrastive_coef": 0.0, "seed": 42, "normalize": False},
                      "grid": {}}}  # fmt: skip
    with pytest.raises(ValueError, match=r"sae_import: \['topk-h64-k4-l2'\] are not SAE ids.*topk-h32-k4-l2"):
        plan.check_imports(config)
    config["sae"]["grid"] = {"width": [32, 64]}
    plan.check_imports(config)
    assert plan.sae_import(config, "ml", "topk-h64-k4-l2") == {"path": "x"}
    assert plan.sae_import(config, "ml", "topk-h32-k4-l2") is None


def test_unreadable_file_error_is_a_value_error():
    assert issubclass(UnreadableFileError, ValueError)


def test_train_elsa_stage_imports_and_evaluates_a_research_elsa(tmp_path):
    """datasets.<name>.elsa_import: the stage imports the encoder, evaluates it as a trained model, and
    refuses an encoder whose shape does not fit the data."""
    from elsa_fixtures import clustered_interactions, user_split, write_data_dir
    from sagea.evaluation.single_user import evaluate_scorer, single_user_split
    from sagea.models.elsa import ELSA
    from sagea.stages.elsa import train_elsa

    matrix = clustered_interactions(200, 60, n_clusters=4, per_user=10, seed=2)
    split = user_split(matrix.shape[0])
    data = tmp_path / "data"
    write_data_dir(matrix, split, data)
    encoder = torch.nn.functional.normalize(torch.randn(60, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    torch.save({"model_state_dict": {"encoder": encoder}, "optimizer_state_dict": {}, "epoch": 9}, tmp_path / "e.ckpt")
    hp = dict(factors=8, lr=0.01, beta1=0.9, beta2=0.99, batch_size=64, epochs=4, patience=2, seed=3)
    out = tmp_path / "elsa"
    metrics = train_elsa(data, data / "split.parquet", out / "model.pt", out / "metrics.json", out / "history.parquet",
                         hp, k=20, device="cpu", research={"path": str(tmp_path / "e.ckpt")})  # fmt: skip
    assert torch.equal(ELSA.load(out / "model.pt").encoder.detach(), encoder)
    direct = ELSA(60, 8)
    with torch.no_grad():
        direct.encoder.copy_(encoder)
    expected = evaluate_scorer(direct.scores, *single_user_split(matrix, split["test"], 0.2, 42), k=20)
    assert metrics["test"]["NDCG20"] == pytest.approx(expected["NDCG20"])
    assert metrics["imported_from"] == str(tmp_path / "e.ckpt") and metrics["history"] == []
    with pytest.raises(ValueError, match="elsa.factors is 16"):
        train_elsa(data, data / "split.parquet", out / "m2.pt", out / "m2.json", out / "h2.parquet",
                   {**hp, "factors": 16}, k=20, device="cpu", research={"path": str(tmp_path / "e.ckpt")})  # fmt: skip


@pytest.mark.workflow
def test_workflow_evaluates_on_imported_research_groups(tmp_path, repo, python):
    """datasets.<name>.groups_import: sample_groups imports every set of the pool from the research
    files (pool test -> user set 'tst'), computing similarities and common targets like sampled sets."""
    from groups_fixtures import write_stage_inputs as write_group_inputs
    from sagea.data.matrix import load_interactions
    from sagea.groups.io import load_groups_frame
    from sagea.groups.filters import count_common_targets
    from sagea.io import read_embeddings

    write_group_inputs(tmp_path, elsa_run="f64-s42", n_users=300)
    split = pd.read_parquet(tmp_path / "results/synthetic/s42/split.parquet")
    test_users = split.loc[split["split"] == "test", "user"].to_numpy()
    rng = np.random.default_rng(0)
    research = tmp_path / "research_groups"
    research.mkdir()
    files = {"similar_3": 3, "random_3": 3, "opposing_2-1": 3}
    arrays = {}
    for name, size in files.items():
        arrays[name] = np.stack([rng.choice(test_users, size, replace=False) for _ in range(7)])
        np.save(research / f"{name.replace('-', '_')}_tst.npy", arrays[name])
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        "mlflow: {enabled: false}\nelsa: {factors: 64}\n"
        "datasets:\n  synthetic:\n    source: synthetic\n"
        "    groups_import: {path: research_groups, user_sets: {test: tst}}\n"
        "groups:\n  pools: [test]\n  kinds: {similar: [3], divergent: [], random: [3], opposing: [[2, 1]]}\n"
        "reports: {allow_selection_on_report_pool: true}\n"  # groups only: no table selects on them
    )
    cmd = [python, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(tmp_path), "--cores", "1",
           "results/synthetic/s42/groups/test/groups_summary.json",
           "--configfile", str(repo / "config/config.yaml"), str(overrides)]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=repo)
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "results/synthetic/s42/groups/test"
    emb = read_embeddings(tmp_path / "results/synthetic/s42/elsa/f64-s42/user_embeddings.parquet")
    rows = load_interactions(tmp_path / "results/synthetic/s42/data")
    for name, members in arrays.items():
        assert load_groups(out / f"{name}.parquet").tolist() == members.tolist()
        frame = load_groups_frame(out / f"{name}.parquet")
        e = emb[members[0]] / np.linalg.norm(emb[members[0]], axis=1, keepdims=True)
        by_hand = np.mean([(e[i] @ e[j] + 1) / 2 for i in range(3) for j in range(i + 1, 3)])
        assert frame["group_similarity"].iloc[0] == pytest.approx(by_hand, rel=1e-5)
        assert frame["n_common_targets"].to_numpy()[::3].tolist() == count_common_targets(rows, members).tolist()
    summary = json.loads((out / "groups_summary.json").read_text())
    assert summary["sets"]["similar_3"]["imported_from"].endswith("similar_3_tst.npy")
    assert load_subgroups(out / "opposing_2-1.parquet").tolist() == [0, 0, 1]
