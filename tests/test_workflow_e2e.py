"""The embedded default, end to end: every stage, every table and figure, the HTML report.

This is what `make run` does, run in a temporary directory with `python -m snakemake`.
It takes a few minutes on 2 cores; everything else in the suite tests the stages one by one.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sagea import plan

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def _snakemake(repo: Path, python: str, workdir: Path, *args: str, timeout: int = 1500):
    cmd = [
        python, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(workdir),
        "--configfile", str(repo / "config" / "config.yaml"), *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def default_run(repo, python, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("default-e2e")
    run = _snakemake(repo, python, workdir, "--cores", "2")
    assert run.returncode == 0, run.stderr[-5000:]
    report = _snakemake(repo, python, workdir, "--cores", "1", "--report", "results/report.html")
    assert report.returncode == 0, report.stderr[-3000:]
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    from snakemake.utils import validate

    validate(config, str(repo / "workflow" / "schemas" / "config.schema.yaml"))
    return workdir, config


def test_every_table_figure_and_the_report_exist(default_run):
    workdir, config = default_run
    study = workdir / "results" / config["study"] / "s42"  # the replicate of seed 42
    tables = sorted(p.name for p in (study / "tables").iterdir())
    for stem in ("single_user", "sae_reconstruction", "sagea_grid-synthetic", "overall-synthetic",
                 "comparison-topk_inference", "common_features", "fusions", "timing", "fairness-synthetic"):  # fmt: skip
        for ext in ("csv", "tex", "md"):
            assert f"{stem}.{ext}" in tables
    figures = sorted(p.name for p in (study / "figures").iterdir())
    for stem in ("heatmap-synthetic", "bars-synthetic", "group_similarity-synthetic", "training-synthetic"):
        assert {f"{stem}.png", f"{stem}.svg"} <= set(figures)
        assert (study / "figures" / f"{stem}.png").stat().st_size > 5000
    html = (workdir / "results" / "report.html").read_text(errors="ignore")
    assert "overall-synthetic" in html and "heatmap-synthetic" in html


def test_nothing_left_to_do_on_rerun(repo, python, default_run):
    workdir, _ = default_run
    dry = _snakemake(repo, python, workdir, "--cores", "1", "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_models_learned_something(default_run):
    workdir, config = default_run
    data = workdir / "results" / "synthetic" / "s42"
    elsa = plan.main_elsa(config, "synthetic")
    elsa_test = json.loads((data / "elsa" / elsa / "metrics.json").read_text())["test"]
    pop_test = json.loads((data / "baselines" / "metrics.json").read_text())["POP"]["test"]
    assert elsa_test["NDCG20"] > 1.5 * pop_test["NDCG20"]
    for sae in plan.sae_runs(config):
        metrics = json.loads((data / "sae" / elsa / sae / "metrics.json").read_text())["test"]
        assert metrics["CosineSim"] > 0.9, sae
        assert abs(metrics["NDCG20_Degradation"]) < 0.05, sae


def test_every_evaluation_has_one_row_per_group(default_run):
    workdir, config = default_run
    data = workdir / "results" / "synthetic" / "s42"
    elsa = plan.main_elsa(config, "synthetic")
    n_checked = 0
    for pool in plan.group_pools(config):
        for groupset in plan.group_sets(config):
            groups = pd.read_parquet(data / "groups" / pool / f"{groupset}.parquet")
            n_groups = groups["group"].nunique()
            assert n_groups == config["groups"]["final_group_count"]
            base = data / "eval" / pool / groupset / elsa
            folders = [base / "baselines" / s for s in plan.baselines(config)]
            folders += [
                base / sae / option / fusion
                for sae in plan.sae_runs(config)
                for option in plan.sagea_options(config)
                for fusion in plan.fusions(config)
            ]
            for folder in folders:
                per_group = pd.read_parquet(folder / "per_group.parquet")
                assert len(per_group) == n_groups, folder
                assert per_group["NDCG20_com"].between(0, 1).all(), folder
                recs = pd.read_parquet(folder / "recommendations.parquet")
                assert recs.groupby("group")["item"].nunique().max() <= config["evaluation"]["k"]
                n_checked += 1
    assert n_checked == 2 * 4 * (9 + 4 * 2 * 8)


def test_mlflow_store_has_the_research_experiments(default_run):
    mlflow = pytest.importorskip("mlflow")
    workdir, config = default_run
    uri = f"sqlite:///{workdir}/results/mlflow.db"
    client = mlflow.tracking.MlflowClient(uri)
    names = {e.name for e in client.search_experiments()}
    assert {"Dense_synthetic", "Sparse_synthetic", "GR_synthetic"} <= names
    mlflow.set_tracking_uri(uri)
    dense = mlflow.search_runs(experiment_names=["Dense_synthetic"], output_format="list")
    assert len(dense) == len(plan.elsa_runs(config, "synthetic"))
    sparse = mlflow.search_runs(experiment_names=["Sparse_synthetic"], output_format="list")
    assert len(sparse) == len(plan.sae_runs(config))
    gr = mlflow.search_runs(
        experiment_names=["GR_synthetic"],
        filter_string="params.SAE_fusion_strategy = 'average' and params.group_type = 'sim'",
        output_format="list",
    )
    # 4 SAE variants x 2 options x 2 pools of similar_3 groups
    assert len(gr) == 16
    assert all("CommonItemsNDCG20/mean" in r.data.metrics for r in gr)
    # mlflow.deferred (the default's): the jobs spooled their runs and mlflow_log logged them, one
    # run per output folder: every evaluation folder, ELSA run and SAE, and nothing else
    assert config["mlflow"]["deferred"] is True
    logged = pd.read_parquet(workdir / "results" / config["study"] / "mlflow_runs.parquet")
    folders = {p.parent.relative_to(workdir / "results").as_posix()
               for p in (workdir / "results" / "synthetic").rglob("eval/*/*/*/**/summary.json")}  # fmt: skip
    assert len(folders) == 2 * 4 * (9 + 4 * 2 * 8)
    models = {f"synthetic/s42/elsa/{run}" for run in plan.elsa_runs(config, "synthetic")}
    models |= {f"synthetic/s42/sae/{plan.main_elsa(config, 'synthetic')}/{sae}" for sae in plan.sae_runs(config)}
    assert sorted(logged["key"]) == sorted(folders | models)
    every = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id], max_results=5000)]
    by_key = {r.data.tags["sagea.output"]: r.info.run_id for r in every if "sagea.output" in r.data.tags}
    assert len(by_key) == len([r for r in every if "sagea.output" in r.data.tags])  # one active run per key
    assert dict(zip(logged["key"], logged["run_id"])) == by_key


def test_features_recover_the_planted_clusters(default_run):
    """On the embedded default's synthetic data, for every SAE of the grid: at least 11 of the 12
    planted taste clusters (>= 90 %) have a feature whose top items are >= 80 % from that cluster,
    and the label of every such pure feature (feature_labels.parquet) names its cluster. Purity is
    computed here from the features' top items and the items' planted clusters (observed: 12 of 12,
    every label right)."""
    workdir, config = default_run
    data = workdir / "results" / "synthetic" / "s42"
    cluster = pd.read_parquet(data / "data" / "items.parquet").set_index("item")["cluster"]
    n_clusters = cluster.nunique()
    elsa = plan.main_elsa(config, "synthetic")
    for sae in plan.sae_runs(config):
        labels = pd.read_parquet(data / "sae" / elsa / sae / "feature_labels.parquet")
        best: dict[int, float] = {}
        wrong = []
        columns = ("feature", "top_items", "alive", "label_values")
        for feature, top, alive, named in zip(*(labels[c] for c in columns)):
            if not alive or len(top) == 0:
                continue
            counts = cluster.loc[list(top)].value_counts()
            majority, purity = int(counts.index[0]), counts.iloc[0] / len(top)
            best[majority] = max(best.get(majority, 0.0), purity)
            if purity >= 0.8 and named[0] != f"cluster {majority}":
                wrong.append((feature, majority, list(named)))
        recovered = sum(p >= 0.8 for p in best.values())
        assert recovered >= 0.9 * n_clusters, (sae, recovered, n_clusters)
        assert not wrong, (sae, wrong)
