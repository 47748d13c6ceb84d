"""SAE stage: reconstruction metrics, extraction, the train/extract jobs and the workflow rules."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from sae_fixtures import clustered_elsa, clustered_matrix, embeddings_of, write_stage_inputs
from sagea.analysis.sae_features import feature_table, sparse_codes
from sagea.evaluation.sae_metrics import reconstruction_metrics
from sagea.data.splits import user_input_target_split
from sagea.models.sae import SAE

HP = dict(
    variant="topk", width=32, k=4, reconstruction_loss="l2", l1_coef=3e-4, aux_coef=1 / 32, contrastive_coef=0.0,
    normalize=False, lr=3e-3, beta1=0.9, beta2=0.99, batch_size=32, epochs=12, validate_every=4, patience=5,
    early_stop_unit="validations", dead_after=5, aux_k=512, train_path="embeddings", max_train_users=None, seed=42,
)  # fmt: skip


def _ndcg_recall_by_hand(scores: np.ndarray, inputs, targets, k=20):
    """Straightforward per-user NDCG@k / Recall@k (inputs excluded), mean over users with targets."""
    ndcgs, recalls = [], []
    for u in range(scores.shape[0]):
        t = set(targets[u].indices)
        if not t:
            continue
        s = scores[u].copy()
        s[inputs[u].indices] = -np.inf
        top = np.argsort(-s, kind="stable")[:k]
        gains = [1.0 / np.log2(r + 2) for r, item in enumerate(top) if item in t]
        ideal = sum(1.0 / np.log2(r + 2) for r in range(min(k, len(t))))
        ndcgs.append(sum(gains) / ideal)
        recalls.append(len(gains) / min(k, len(t)))
    return np.mean(ndcgs), np.mean(recalls)


def test_reconstruction_metrics_against_direct_computation():
    matrix, clusters = clustered_matrix(120, 90)
    elsa = clustered_elsa(clusters, 12)
    emb = embeddings_of(elsa, matrix)
    sae = SAE(12, 24, k=3, seed=1).eval()
    out = reconstruction_metrics(sae, elsa, matrix, emb, target_fraction=0.2, seed=7)
    with torch.no_grad():
        x = torch.as_tensor(emb)
        code, mean, std = sae.encode(x)
        recon = sae.decode(code, mean, std)
    cos = torch.nn.functional.cosine_similarity(x, recon, dim=1).mean()
    assert out["CosineSim"] == pytest.approx(float(cos), rel=1e-5)
    assert out["L0"] == pytest.approx(3.0)
    assert out["DeadNeurons"] == pytest.approx(float((code.abs().sum(0) == 0).float().mean()))
    inputs, targets = user_input_target_split(matrix, 0.2, 7)
    A = elsa.encoder.detach().numpy().astype(np.float64)
    xi = inputs.toarray().astype(np.float64)
    base = _ndcg_recall_by_hand(xi @ A @ A.T - xi, inputs, targets)
    with torch.no_grad():
        e = torch.as_tensor(xi @ A, dtype=torch.float32)
        fused_scores = sae(e).double().numpy() @ A.T - xi
    fused = _ndcg_recall_by_hand(fused_scores, inputs, targets)
    assert out["NDCG20_base"] == pytest.approx(base[0], abs=1e-6)
    assert out["R20_base"] == pytest.approx(base[1], abs=1e-6)
    assert out["NDCG20"] == pytest.approx(fused[0], abs=1e-6)
    assert out["R20"] == pytest.approx(fused[1], abs=1e-6)
    assert out["NDCG20_Degradation"] == pytest.approx(fused[0] - base[0], abs=1e-6)


def test_sparse_codes_and_feature_table():
    matrix, clusters = clustered_matrix(60, 90)
    elsa = clustered_elsa(clusters, 12)
    emb = embeddings_of(elsa, matrix)
    sae = SAE(12, 24, k=3, seed=2).eval()
    codes = sparse_codes(sae, emb, True, batch_size=16)
    assert list(codes.columns) == ["user", "feature", "value"]
    assert codes.dtypes.tolist() == [np.int32, np.int32, np.float32]
    assert (codes.groupby("user").size() == 3).all() and codes["user"].nunique() == 60
    with torch.no_grad():
        dense = sae.encode(torch.as_tensor(emb))[0].numpy()
        full = sae.encode(torch.as_tensor(emb), topk_inference=False)[0].numpy()
    rebuilt = np.zeros_like(dense)
    rebuilt[codes["user"], codes["feature"]] = codes["value"]
    assert np.allclose(rebuilt, dense)
    codes_all = sparse_codes(sae, emb, False, batch_size=16)
    assert len(codes_all) == int((full != 0).sum()) >= len(codes)
    titles = [f"t{i}" for i in range(90)]
    table = feature_table(sae, elsa, codes, 60, top_n=5, titles=titles, batch_size=7)
    assert len(table) == 24 and table["feature"].tolist() == list(range(24))
    active = dense != 0
    assert np.allclose(table["frequency"], active.mean(0))
    mean_act = np.where(active.any(0), dense.sum(0) / np.maximum(active.sum(0), 1), 0)
    assert np.allclose(table["mean_activation"], mean_act, atol=1e-6)
    directions = sae.decoder_w.detach().numpy() @ elsa.encoder.detach().numpy().T
    for f in (0, 11, 23):
        assert list(table["top_items"][f]) == list(np.argsort(-directions[f])[:5])
        assert table["top_titles"][f] == [titles[i] for i in table["top_items"][f]]


def test_train_and_extract_jobs_write_the_contract(tmp_path):
    from sagea.stages.sae import extract_sae, train_sae

    paths = write_stage_inputs(tmp_path, n_users=200, n_items=80, factors=12)
    out = tmp_path / "results" / "synthetic" / "s42" / "sae" / "f16-s42" / "topk-h32-k4-l2"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    for _ in range(2):  # a rerun of the same output replaces its MLflow run
        metrics = train_sae(
            paths["elsa"] / "user_embeddings.parquet", paths["elsa"] / "model.pt", paths["data"],
            paths["data"].parent / "split.parquet", out / "model.pt", out / "metrics.json", out / "history.parquet", HP,
            device="cpu", dataset="synthetic", elsa_run="f16-s42", sae_run="topk-h32-k4-l2", mlflow_uri=uri,
        )  # fmt: skip
    saved = json.loads((out / "metrics.json").read_text())
    for part in ("valid", "test"):
        assert set(saved[part]) >= {"CosineSim", "L0", "DeadNeurons", "NDCG20", "R20", "NDCG20_Degradation"}
        assert saved[part]["L0"] == pytest.approx(4.0)
    assert saved["valid"] == pytest.approx(metrics["valid"])
    history = pd.read_parquet(out / "history.parquet")
    assert history["epoch"].tolist() == [4, 8, 12]
    assert {"Loss_train", "Loss_valid", "CosineSim_valid"} <= set(history.columns)
    assert not (out / "train_state.pt").exists()
    model = SAE.load(out / "model.pt")
    assert model.hparams["width"] == 32 and model.encoder_w.shape == (12, 32)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("Sparse_synthetic").experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["model"] == "TopKSAE" and run.data.params["embedding_dim"] == "32"
    assert run.data.params["top_k"] == "4" and run.data.params["base_factors"] == "12"
    assert run.data.params["reconstruction_loss"] == "L2" and run.data.params["auxiliary_coef"] == str(1 / 32)
    for name in ("CosineSim/test", "L0/test", "DeadNeurons/test", "NDCG20/test", "NDCG20_Degradation/test",
                 "R20/test", "CosineSim/valid"):  # fmt: skip
        assert name in run.data.metrics, name
    # plain names: the restored best model; history/...: one value per validation, step = epoch
    assert run.data.metrics["CosineSim/valid"] == pytest.approx(saved["valid"]["CosineSim"])
    best = history.set_index("epoch").loc[saved["best_epoch"]]
    assert run.data.metrics["loss/Loss/valid"] == pytest.approx(best["Loss_valid"])
    assert run.data.metrics["loss/Loss/valid"] == pytest.approx(saved["best_valid_loss"])
    assert run.data.metrics["best_epoch"] == saved["best_epoch"]
    series = client.get_metric_history(run.info.run_id, "history/CosineSim/valid")
    assert sorted((s.step, round(s.value, 6)) for s in series) == [
        (e, round(v, 6)) for e, v in zip(history["epoch"], history["CosineSim_valid"])
    ]
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == ["history.parquet", "metrics.json", "model.pt"]
    assert run.data.tags["sagea.output"] == "synthetic/s42/sae/f16-s42/topk-h32-k4-l2"

    files = [out / "codes_topk.parquet", out / "codes_all.parquet", out / "features.parquet"]
    extract_sae(out / "model.pt", paths["elsa"] / "model.pt", paths["elsa"] / "user_embeddings.parquet",
                paths["data"] / "items.parquet", *files, top_items=3, device="cpu")  # fmt: skip
    topk = pd.read_parquet(files[0])
    assert topk["user"].nunique() == 200 and (topk.groupby("user").size() == 4).all()
    assert len(pd.read_parquet(files[1])) >= len(topk)
    import pyarrow.parquet as pq

    schema = pq.read_schema(files[2])
    assert str(schema.field("top_items").type) == "list<element: int32>"
    assert str(schema.field("top_titles").type) == "list<element: string>"
    features = pd.read_parquet(files[2])
    assert len(features) == 32 and all(len(t) == 3 for t in features["top_titles"])
    assert features["top_titles"][0][0].startswith("item ")


def test_contrastive_and_subsampling_take_the_interaction_path(tmp_path):
    from sagea.stages.sae import train_sae

    paths = write_stage_inputs(tmp_path, n_users=150, n_items=60, factors=8, titles=False)
    out = tmp_path / "sae"
    hp = {**HP, "contrastive_coef": 0.3, "max_train_users": 50, "epochs": 4, "validate_every": 2}
    metrics = train_sae(
        paths["elsa"] / "user_embeddings.parquet", paths["elsa"] / "model.pt", paths["data"],
        paths["data"].parent / "split.parquet", out / "model.pt", out / "metrics.json", out / "history.parquet", hp,
        device="cpu",
    )  # fmt: skip
    assert metrics["train_path"] == "interactions" and metrics["train_users"] == 50
    assert metrics["history"][-1]["Contrastive_train"] > 0


@pytest.mark.workflow
def test_workflow_trains_and_extracts_the_sae_grid(tmp_path, repo, python):
    """Snakemake runs train_sae + extract_sae for a 2-model grid on fixture upstream files."""
    write_stage_inputs(tmp_path, elsa_run="f16-s42", n_users=200, n_items=80, factors=16)
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(
        f'configfile: "{repo}/config/config.yaml"\n'
        f'include: "{repo}/workflow/rules/common.smk"\n'
        f'include: "{repo}/workflow/rules/sae.smk"\n'
        "rule all:\n    input: sae_targets()\n"
    )
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        "mlflow: {enabled: false}\n"
        "elsa: {factors: 16, extra_runs: []}\n"
        "sae:\n  base: {variant: topk, lr: 0.003, batch_size: 32, epochs: 6, validate_every: 3, patience: 4}\n"
        "  grid: {width: [32], k: [2, 4]}\n"
    )
    cmd = [python, "-m", "snakemake", "-s", str(snakefile), "-d", str(tmp_path), "--cores", "2",
           "--configfile", str(repo / "config" / "config.yaml"), str(overrides)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for sae in ("topk-h32-k2-l2", "topk-h32-k4-l2"):
        folder = tmp_path / "results" / "synthetic" / "s42" / "sae" / "f16-s42" / sae
        for name in ("model.pt", "metrics.json", "history.parquet", "codes_topk.parquet", "codes_all.parquet",
                     "features.parquet"):  # fmt: skip
            assert (folder / name).exists(), folder / name
        assert (tmp_path / "logs" / "synthetic" / "s42" / "sae" / "f16-s42" / sae / "train.log").exists()
        k = int(sae.split("-k")[1].split("-")[0])
        assert json.loads((folder / "metrics.json").read_text())["test"]["L0"] == pytest.approx(k)
