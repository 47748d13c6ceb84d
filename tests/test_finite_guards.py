"""Non-finite numbers never pass a stage: the check helper, the reading/writing points, training
stopping on a non-finite loss, and the workflow failing (with nothing published) on a NaN input."""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from sagea.io import NonFiniteError, check_finite, read_embeddings, write_embeddings, write_torch


def inject_nan(path, rows, value=np.nan) -> None:
    """Overwrite an embeddings Parquet with ``value`` in the first column of ``rows`` (bypassing the
    writer's own check, as a corrupted or hand-edited file would)."""
    table = pq.read_table(path)
    col = table.column("embedding").combine_chunks()
    d = col.type.list_size
    matrix = col.values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, d).copy()
    matrix[rows, 0] = value
    out = pa.table(
        {table.column_names[0]: table.column(0), "embedding": pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), d)}
    )
    pq.write_table(out, path)


# ----------------------------------------------------------------------------- the helper
def test_check_finite_names_file_rows_count_and_hint():
    x = np.ones((10, 4), dtype=np.float32)
    assert check_finite(x, "a.parquet", "embeddings") is x  # finite: returned unchanged
    x[3, 1], x[7, 0], x[7, 2] = np.nan, np.inf, -np.inf
    with pytest.raises(NonFiniteError) as err:
        check_finite(x, "results/d/elsa/f64-s42/user_embeddings.parquet", "embeddings", "rerun `snakemake --forcerun x`")
    msg = str(err.value)
    assert msg.startswith("results/d/elsa/f64-s42/user_embeddings.parquet: embeddings: 3 non-finite value(s)")
    assert "in 2 of 10 rows [3, 7]" in msg and msg.endswith("; rerun `snakemake --forcerun x`")
    # more bad rows than listed: the list is cut
    with pytest.raises(NonFiniteError, match=r"in 12 of 12 rows \[0, 1, 2, \.\.\.\]"):
        check_finite(np.full(12, np.nan), None, "v", max_listed=3)


def test_check_finite_allow_covers_nan_only_and_other_containers():
    x = np.array([[1.0, np.nan], [2.0, 3.0], [np.nan, np.inf]])
    check_finite(x[:2], None, "scores", allow=np.array([True, False]))
    with pytest.raises(NonFiniteError, match=r"1 non-finite value\(s\) \(NaN/inf\) in 1 of 3 rows \[2\]"):  # inf: never allowed
        check_finite(x, None, "scores", allow=np.array([True, False, True]))
    with pytest.raises(NonFiniteError, match=r"in 2 of 3 rows \[0, 2\]"):
        check_finite(x, None, "scores")
    # torch tensors, DataFrames (column named) and state dicts (key named); integers are always finite
    with pytest.raises(NonFiniteError, match=r"m.pt: SAE weights 'decoder_b': 1 non-finite"):
        check_finite({"w": torch.ones(2, 2), "decoder_b": torch.tensor([0.0, float("nan")])}, "m.pt", "SAE weights")
    frame = pd.DataFrame({"group": [0, 1, 2], "NDCG20_com": [0.1, np.nan, 0.3], "name": ["a", "b", "c"]})
    with pytest.raises(NonFiniteError, match=r"column 'NDCG20_com': 1 non-finite value\(s\) \(NaN/inf\) in 1 of 3 rows \[1\]"):
        check_finite(frame, "per_group.parquet", "metrics")
    check_finite(pd.DataFrame({"n": [1, 2], "s": ["x", None]}), None, "ints and strings")


def test_embeddings_are_checked_when_written_and_read(tmp_path):
    path = tmp_path / "user_embeddings.parquet"
    bad = np.ones((5, 3), dtype=np.float32)
    bad[4, 2] = np.nan
    with pytest.raises(NonFiniteError, match="train_elsa"):
        write_embeddings(bad, "user", path)
    assert not path.exists() and not list(tmp_path.iterdir())  # nothing half-written
    write_embeddings(np.ones((5, 3), dtype=np.float32), "user", path)
    inject_nan(path, [1, 3])
    with pytest.raises(NonFiniteError) as err:
        read_embeddings(path)
    msg = str(err.value)
    assert str(path) in msg and "in 2 of 5 rows [1, 3]" in msg
    assert "snakemake --forcerun extract_elsa_embeddings" in msg and "snakemake --forcerun train_elsa" in msg


# ----------------------------------------------------------------------------- models
def test_models_with_non_finite_weights_do_not_load(tmp_path):
    from sagea.models.elsa import ELSA
    from sagea.models.sae import SAE

    elsa = ELSA(6, 3, seed=0)
    with torch.no_grad():
        elsa.encoder[2, 1] = float("nan")
    # save() is the library's raw writer; the stage checks before saving (below)
    elsa.save(tmp_path / "elsa.pt")
    with pytest.raises(NonFiniteError, match=r"elsa.pt: ELSA encoder weights: 1 non-finite .* rows \[2\]; .*train_elsa"):
        ELSA.load(tmp_path / "elsa.pt")
    sae = SAE(3, 8, k=2, seed=0)
    ckpt = sae.checkpoint()
    ckpt["model_state_dict"]["encoder_b"][5] = float("inf")
    write_torch(ckpt, tmp_path / "sae.pt")
    with pytest.raises(NonFiniteError, match=r"sae.pt: SAE weights 'encoder_b': .* rows \[5\]; .*train_sae"):
        SAE.load(tmp_path / "sae.pt")


def test_elsa_training_stops_on_a_non_finite_loss():
    import scipy.sparse as sp

    from sagea.models import elsa as elsa_model

    x = sp.csr_matrix(np.eye(8, 6, dtype=np.float32) + np.eye(8, 6, k=1, dtype=np.float32))
    model = elsa_model.ELSA(6, 3, seed=0)
    with torch.no_grad():
        model.encoder[0, 0] = float("nan")  # user 0 holds item 0: its prediction, hence the loss, is NaN
    history = []
    with pytest.raises(NonFiniteError, match="ELSA training loss became non-finite in epoch 1; lower elsa.lr"):
        elsa_model.fit(model, x, None, epochs=3, batch_size=4, callback=history.append)
    assert history == []  # stopped before finishing (or checkpointing) the epoch


def test_sae_training_stops_on_a_non_finite_loss():
    from sagea.models.sae import SAE, fit
    from sagea.models.sae_data import EmbeddingData

    emb = torch.randn(40, 4, generator=torch.Generator().manual_seed(0))
    emb[17, 2] = float("nan")
    model = SAE(4, 8, k=2, seed=0)
    with pytest.raises(NonFiniteError, match="SAE training loss became non-finite in epoch 1"):
        fit(model, EmbeddingData(emb), EmbeddingData(emb[:0]), epochs=3, batch_size=16, validate_every=1)


# ----------------------------------------------------------------------------- evaluation
def test_per_group_metrics_allow_only_undefined_values(tmp_path):
    from sagea.evaluation.outputs import check_per_group

    per_group = pd.DataFrame(
        {
            "group": [0, 1, 2],
            "NDCG20_com": [0.5, 0.0, 0.2],
            "NDCG20_min_mean": [1.0, np.nan, 0.5],  # every member scored 0: undefined ratio
            "RecommendationsSimilarity": [0.3, np.nan, 0.1],
        }
    )
    recs = pd.DataFrame({"group": [0, 0, 1, 2, 2], "rank": [0, 1, 0, 0, 1], "item": [1, 2, 3, 4, 5]})
    check_per_group(per_group, recs, tmp_path / "per_group.parquet")  # group 1 lists one item: undefined
    two = pd.concat([recs, pd.DataFrame({"group": [1], "rank": [1], "item": [9]})])
    with pytest.raises(NonFiniteError, match=r"'RecommendationsSimilarity' \(rows = groups\): 1 non-finite .* rows \[1\]"):
        check_per_group(per_group, two, tmp_path / "per_group.parquet")  # 2 items: NaN means broken embeddings
    per_group.loc[2, "NDCG20_com"] = np.nan
    with pytest.raises(NonFiniteError, match=r"per_group.parquet: per-group metric 'NDCG20_com'"):
        check_per_group(per_group, recs, tmp_path / "per_group.parquet")


def test_sagea_scores_nan_only_under_the_research_fallback():
    from sagea.models.elsa import ELSA
    from sagea.models.sae import SAE
    from sagea.recommenders.sagea import SageaRecommender

    torch.manual_seed(0)
    elsa, sae = ELSA(12, 4, seed=0), SAE(4, 16, k=1, seed=0)
    inputs = torch.zeros(3, 2, 12)
    inputs[:, 0, :6], inputs[:, 1, 6:] = 1.0, 1.0  # disjoint members: k=1 codes rarely share a feature
    seen = inputs.any(1)
    state = SageaRecommender(elsa, sae, "common_features", 1).score(inputs)
    zero = ~((state.codes > 0).all(1).any(-1))  # groups whose common_features code is all zero
    assert zero.any()
    research = SageaRecommender(elsa, sae, "common_features", 1, zero_fallback="nan")
    research.aggregate(state, seen, 5)  # NaN rows exactly where the fused code is zero: allowed
    with torch.no_grad():
        sae.decoder_b[0] = float("nan")
    for fallback in ("average", "nan"):
        with pytest.raises(NonFiniteError, match=r"SAGEA average scores .* rows \[0, 1, 2\]"):
            SageaRecommender(elsa, sae, "average", 1, zero_fallback=fallback).aggregate(state, seen, 5)


# ----------------------------------------------------------------------------- workflow
def _run(repo, python, workdir, configfiles, targets, allowed=()):
    cmd = [python, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(workdir), "--cores", "2",
           "--keep-going", "--configfile", *map(str, configfiles)]  # fmt: skip
    if allowed:
        cmd += ["--allowed-rules", *allowed]
    return subprocess.run(cmd + ["--", *targets], cwd=repo, capture_output=True, text=True, timeout=600)


@pytest.mark.workflow
def test_nan_user_embeddings_stop_the_sae_and_group_rules(tmp_path, repo, python):
    """A NaN in user_embeddings.parquet fails train_sae and sample_groups, naming the file; no output."""
    from groups_fixtures import write_stage_inputs as write_group_inputs
    from sae_fixtures import write_stage_inputs as write_sae_inputs

    write_sae_inputs(tmp_path, elsa_run="f16-s42", n_users=200, n_items=80, factors=16)
    write_group_inputs(tmp_path / "g", elsa_run="f16-s42")
    emb = "results/synthetic/s42/elsa/f16-s42/user_embeddings.parquet"
    inject_nan(tmp_path / emb, [5, 150])
    inject_nan(tmp_path / "g" / emb, [5])
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        "mlflow: {enabled: false}\ndevice: cpu\nelsa: {factors: 16, extra_runs: []}\n"
        "sae:\n  base: {variant: topk, lr: 0.003, batch_size: 32, epochs: 2, validate_every: 1, patience: 4}\n"
        "  grid: {width: [32], k: [2]}\n"
    )
    sae_out = tmp_path / "results/synthetic/s42/sae/f16-s42/topk-h32-k2-l2"
    done = _run(repo, python, tmp_path, [repo / "config/config.yaml", overrides],
                ["results/synthetic/s42/sae/f16-s42/topk-h32-k2-l2/model.pt"], ["train_sae"])  # fmt: skip
    assert done.returncode != 0
    log = done.stderr
    assert f"{emb}: embeddings: 2 non-finite value(s) (NaN/inf) in 2 of 200 rows [5, 150]" in log
    assert "snakemake --forcerun extract_elsa_embeddings" in log
    assert not sae_out.exists() or not any(p.is_file() for p in sae_out.rglob("*"))

    groups = tmp_path / "g/results/synthetic/s42/groups/test"
    done = _run(repo, python, tmp_path / "g", [repo / "config/config.yaml", overrides],
                ["results/synthetic/s42/groups/test/groups_summary.json"], ["sample_groups"])  # fmt: skip
    assert done.returncode != 0
    assert f"{emb}: embeddings: 1 non-finite value(s)" in done.stderr
    assert not groups.exists() or not any(p.is_file() for p in groups.rglob("*"))


@pytest.mark.workflow
def test_nan_item_embeddings_stop_the_evaluation(tmp_path, repo, python):
    """NaN item embeddings would silently drop groups from RecommendationsSimilarity: the rule fails."""
    from evaluate_fixtures import write_upstream

    write_upstream(tmp_path, groupsets={"similar_3": 3})
    path = "results/synthetic/s42/elsa/f8-s42/item_embeddings.parquet"
    config = tmp_path / "config.yaml"
    config.write_text(
        "mlflow: {enabled: false}\ndevice: cpu\ndatasets: {synthetic: {source: synthetic}}\nelsa: {factors: 8}\n"
        "sae: {base: {variant: topk}, grid: {width: [16], k: [4]}}\n"
        "groups: {pools: [test], kinds: {similar: [3]}}\n"
        "evaluation: {baselines: [ADD, POPULAR], sagea: {fusions: [common_features], zero_fallback: nan}}\n"
        "reports: {allow_selection_on_report_pool: true}\n"  # evaluation only: no table selects on it
    )
    # clean inputs under the research fallback: NaN scores of all-zero fused codes are allowed
    sagea = "results/synthetic/s42/eval/test/similar_3/f8-s42/topk-h16-k4-l2/ti1-nu0/common_features"
    done = _run(repo, python, tmp_path, [config], [f"{sagea}/summary.json"], ["evaluate_sagea"])
    assert done.returncode == 0, done.stderr[-3000:]
    per_group = pd.read_parquet(tmp_path / sagea / "per_group.parquet")
    assert (per_group["CommonFeatures"] == 0).any()  # some groups did go through the NaN path
    inject_nan(tmp_path / path, [7])
    out = tmp_path / "results/synthetic/s42/eval/test/similar_3/f8-s42/baselines"
    done = _run(repo, python, tmp_path, [config], [str((out / "ADD/summary.json").relative_to(tmp_path))],
                ["evaluate_baselines"])  # fmt: skip
    assert done.returncode != 0
    log = done.stderr
    assert f"{path}: embeddings: 1 non-finite value(s) (NaN/inf) in 1 of 80 rows [7]" in log
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))
