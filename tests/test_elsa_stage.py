"""ELSA stage jobs (sagea.stages.elsa) on contract-format fixture files, and the rules end to end."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from elsa_fixtures import clustered_interactions, user_split, write_data_dir
from sagea.data.matrix import load_interactions
from sagea.io import read_embeddings
from sagea.models.elsa import ELSA
from sagea.stages.elsa import extract_embeddings, single_user_baselines, train_elsa


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


HP = dict(factors=8, lr=0.01, beta1=0.9, beta2=0.99, batch_size=64, epochs=4, patience=2, seed=3)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("elsa_stage")
    matrix = clustered_interactions(300, 80, n_clusters=4, per_user=10, seed=5)
    data = root / "results" / "tiny" / "s42" / "data"
    write_data_dir(matrix, user_split(matrix.shape[0]), data)
    return data


def test_train_extract_and_baselines(data_dir, tmp_path):
    out = tmp_path / "elsa" / "f8-s3"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    metrics = train_elsa(
        data_dir, data_dir / "split.parquet", out / "model.pt", out / "metrics.json", out / "history.parquet",
        HP, k=20, device="cpu", dataset="tiny", run_name="f8-s3", mlflow_uri=uri,
    )  # fmt: skip
    assert not (out / "train_state.pt").exists()  # removed after success
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved) >= {"valid", "test", "history", "best_epoch"}
    assert saved["test"]["NDCG20"] == pytest.approx(metrics["test"]["NDCG20"])
    assert {"NDCG20", "R20", "P20", "Hit20", "MRR20", "Coverage20"} <= set(saved["valid"])
    hist = pd.read_parquet(out / "history.parquet")
    assert list(hist.columns) == ["epoch", "loss", "NDCG20_valid", "R20_valid", "seconds"]
    assert hist["epoch"].dtype == np.int32 and 1 <= len(hist) <= HP["epochs"]
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert ckpt["model_state_dict"]["encoder"].shape == (80, 8) and ckpt["hyperparameters"]["lr"] == 0.01

    extract_embeddings(out / "model.pt", data_dir, out / "user_embeddings.parquet", out / "item_embeddings.parquet", device="cpu")
    a = ELSA.load(out / "model.pt").encoder.detach().numpy()
    x = load_interactions(data_dir)
    np.testing.assert_allclose(read_embeddings(out / "user_embeddings.parquet"), x @ a, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(read_embeddings(out / "item_embeddings.parquet"), axis=1), 1.0, rtol=1e-5)

    base = single_user_baselines(
        data_dir, data_dir / "split.parquet", tmp_path / "baselines.json", ease_lambda=50.0, device="cpu"
    )
    assert set(base) == {"POP", "EASE"} and base["EASE"]["test"]["NDCG20"] > base["POP"]["test"]["NDCG20"]
    assert json.loads((tmp_path / "baselines.json").read_text())["POP"]["valid"]["users"] == 30

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.search_runs([client.get_experiment_by_name("Dense_tiny").experiment_id])[0]
    p = run.data.params
    assert (p["model"], p["factors"], p["items"], p["users"], p["early_stop"]) == ("ELSA", "8", "80", "300", "2")
    assert (p["min_user_interactions"], p["min_item_interactions"]) == ("3", "2")  # from card.json
    assert run.data.metrics["NDCG20/test"] == pytest.approx(metrics["test"]["NDCG20"])
    steps = client.get_metric_history(run.info.run_id, "history/loss/train")
    assert sorted(m.step for m in steps) == hist["epoch"].tolist()
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["history.parquet", "metrics.json", "model.pt"]


def test_mlflow_final_metrics_are_the_restored_best_epoch(data_dir, tmp_path):
    """A run that early-stops: NDCG20/valid is the best epoch's value, not the last epoch's."""
    hp = {**HP, "lr": 0.2, "epochs": 30, "patience": 2}
    out = tmp_path / "results" / "tiny" / "s42" / "elsa" / "f8-s3"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for _ in range(2):  # a rerun of the same output replaces its run
        metrics = train_elsa(
            data_dir, data_dir / "split.parquet", out / "model.pt", out / "metrics.json", out / "history.parquet",
            hp, k=20, device="cpu", dataset="tiny", run_name="f8-s3", mlflow_uri=uri,
        )  # fmt: skip
    hist = pd.read_parquet(out / "history.parquet")
    best = int(hist["NDCG20_valid"].idxmax())
    assert metrics["best_epoch"] == hist["epoch"][best] < hist["epoch"].iloc[-1]  # the case that matters
    assert hist["NDCG20_valid"].iloc[-1] < hist["NDCG20_valid"][best]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("Dense_tiny").experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["sagea.output"] == "tiny/s42/elsa/f8-s3"
    m = run.data.metrics
    assert m["NDCG20/valid"] == pytest.approx(hist["NDCG20_valid"][best], abs=1e-6)
    assert m["R20/valid"] == pytest.approx(hist["R20_valid"][best], abs=1e-6)
    assert m["loss/train"] == pytest.approx(hist["loss"][best])
    assert m["best_epoch"] == metrics["best_epoch"] and m["epochs_run"] == len(hist)
    series = client.get_metric_history(run.info.run_id, "history/NDCG20/valid")
    assert [(s.step, pytest.approx(s.value)) for s in sorted(series, key=lambda s: s.step)] == list(
        zip(hist["epoch"].tolist(), hist["NDCG20_valid"].tolist())
    )
    import hashlib

    card = hashlib.sha256((data_dir / "card.json").read_bytes()).hexdigest()
    assert run.data.tags["sagea.dataset_card"] == card


@pytest.mark.workflow
def test_elsa_rules_end_to_end(repo, python, data_dir):
    import shutil

    workdir = data_dir.parents[3]  # <workdir>/results/tiny/s42/data
    shutil.copy(data_dir / "split.parquet", data_dir.parent / "split.parquet")  # the replicate's split
    overlay = workdir / "elsa_test.yaml"
    overlay.write_text(
        "datasets: {tiny: {source: synthetic}}\n"
        "elsa: {factors: 8, batch_size: 64, lr: 0.01, epochs: 3, patience: 2, extra_runs: []}\n"
        "mlflow: {enabled: false}\n"
        "device: cpu\n"
    )
    targets = [
        "results/tiny/s42/elsa/f8-s42/user_embeddings.parquet",
        "results/tiny/s42/elsa/f8-s42/item_embeddings.parquet",
        "results/tiny/s42/elsa/f8-s42/metrics.json",
        "results/tiny/s42/baselines/metrics.json",
    ]
    cmd = [python, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(workdir),
           "--configfile", str(repo / "config" / "config.yaml"), str(overlay), "--cores", "2", "--set-threads", "train_elsa=1", "single_user_baselines=1", "extract_elsa_embeddings=1", "--allowed-rules", "train_elsa", "extract_elsa_embeddings", "single_user_baselines", "--", *targets]  # fmt: skip
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert read_embeddings(workdir / targets[0]).shape == (300, 8)
    assert read_embeddings(workdir / targets[1]).shape == (80, 8)
    assert (workdir / "logs/tiny/s42/elsa/f8-s42/train.log").read_text().count("epoch ") >= 1
    assert (workdir / "logs/benchmarks/tiny/s42/elsa/f8-s42/train.tsv").exists()


def test_relu_switch_reaches_the_checkpoint(data_dir, tmp_path):
    """config elsa.relu: false trains the elsarec-style objective and says so in the checkpoint."""
    out = tmp_path / "plain"
    hp = {**HP, "relu": False, "epochs": 2}
    train_elsa(
        data_dir, data_dir / "split.parquet", out / "model.pt", out / "metrics.json", out / "history.parquet",
        hp, k=20, device="cpu", dataset="tiny", run_name="plain",
    )  # fmt: skip
    assert ELSA.load(out / "model.pt").relu is False
    x = torch.tensor(load_interactions(data_dir)[:5].toarray())
    model = ELSA.load(out / "model.pt")
    a = model.encoder.detach()
    np.testing.assert_allclose(model(x).detach(), x @ a @ a.T - x, rtol=1e-5, atol=1e-5)
