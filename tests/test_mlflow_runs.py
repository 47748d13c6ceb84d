"""Evaluation runs in a real sqlite MLflow store: valid and test pools side by side, the thesis
notebook's comparison (seed 000) on them, reruns, provenance and artifacts of GR runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluate_fixtures import write_upstream
from sagea.tracking import Provenance

mlflow = pytest.importorskip("mlflow")

ELSA_RUN, SAE_RUN = "f8-s42", "topk-h16-k4-l2"
FUSIONS = ["average", "common_features"]
OPTIONS = {"ti1-nu0": (True, False), "ti0-nu0": (False, False)}
SETTINGS = {"k": 20, "batch_groups": 4}


def comparison(experiment_ids, aggregation_function, main_note, note_to_compare, group_type):
    """Seed notebook 000's comparison, as the notebook describes it: every run of the experiments,
    kept when note, SAE_fusion_strategy and group_type match; rows (dataset, embedding_dim, top_k);
    columns (metric, main / % change) for G/mean, U/mean, U/min, Pop."""
    rows: dict = {}
    for run in mlflow.search_runs(experiment_ids=experiment_ids, output_format="list", max_results=10000):
        p, m = run.data.params, run.data.metrics
        if p.get("SAE_fusion_strategy") != aggregation_function or p.get("group_type") != group_type:
            continue
        kind = "main" if p.get("note") == main_note else "compare" if p.get("note") == note_to_compare else None
        if kind is None:
            continue
        key = (p["dataset"], int(p["embedding_dim"]), int(p["top_k"]))
        for short, name in (("G/mean", "CommonItemsNDCG20/mean"), ("U/mean", "NDCG20/mean"),
                            ("U/min", "NDCG20/min"), ("Pop", "Popularity/mean")):  # fmt: skip
            assert (short, kind) not in rows.setdefault(key, {}), f"two {kind} runs for {key}: notes are not unique"
            rows[key][(short, kind)] = m[name]
    out = {}
    for key, values in rows.items():
        for short in ("G/mean", "U/mean", "U/min", "Pop"):
            main, compare = values[(short, "main")], values[(short, "compare")]
            out.setdefault(key, {})[(short, "main")] = main
            out[key][(short, "% change")] = (main - compare) / abs(compare) * 100
    return out


def _write_valid_groups(root: Path) -> None:
    """Groups of the valid pool (users 12..23 of the fixture) so its metrics differ from test's."""
    test = pd.read_parquet(root / "results" / "synthetic" / "s42" / "groups" / "test" / "similar_3.parquet")
    rng = np.random.default_rng(5)
    valid = test.copy()
    valid["user"] = np.concatenate([rng.choice(np.arange(12, 24), 3, replace=False) for _ in range(test["group"].nunique())]).astype(np.int32)
    valid["original_id"] = [f"u{u}" for u in valid["user"]]
    out = root / "results" / "synthetic" / "s42" / "groups" / "valid" / "similar_3.parquet"
    out.parent.mkdir(parents=True)
    valid.to_parquet(out)


def _evaluate(root: Path, uri: str, provenance=None) -> dict:
    from sagea.stages import evaluate as E

    res = root / "results" / "synthetic" / "s42"  # the replicate folder of seed 42
    common = dict(data_dir=res / "data", split_path=res / "split.parquet",
                  elsa_path=res / "elsa" / ELSA_RUN / "model.pt",
                  item_embeddings_path=res / "elsa" / ELSA_RUN / "item_embeddings.parquet")  # fmt: skip
    settings = E.group_eval_settings(SETTINGS, "cpu")
    tracking = E.TrackingSettings(uri, provenance=provenance)
    folders = {}
    for pool in ("test", "valid"):
        base = res / "eval" / pool / "similar_3" / ELSA_RUN
        groups = res / "groups" / pool / "similar_3.parquet"
        scope = E.EvalScope("synthetic", pool, "similar_3", ELSA_RUN)
        for option, (ti, nu) in OPTIONS.items():
            dirs = {f: base / SAE_RUN / option / f for f in FUSIONS}
            E.evaluate_sagea_job(
                E.EvalInputs(**common, groups_path=groups, sae_path=res / "sae" / ELSA_RUN / SAE_RUN / "model.pt"),
                dirs, scope,
                E.SageaSettings(SAE_RUN, {"width": 16, "k": 4, "reconstruction_loss": "l2", "variant": "topk"},
                                ti, nu, "average"),
                settings, tracking,
            )  # fmt: skip
            folders.update({(pool, option, f): d for f, d in dirs.items()})
        dirs = {"ADD": base / "baselines" / "ADD"}
        E.evaluate_baselines_job(E.EvalInputs(**common, groups_path=groups), dirs, scope, settings,
                                 tracking=tracking)  # fmt: skip
        folders[(pool, "baselines", "ADD")] = dirs["ADD"]
    return folders


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow_runs")
    write_upstream(root)
    (root / "results" / "synthetic" / "s42" / "data" / "card.json").write_text('{"name": "synthetic"}')
    _write_valid_groups(root)
    uri = f"sqlite:///{root}/results/mlflow.db"
    provenance = Provenance(
        study="thesis", git_commit="c" * 40, config_digest="d" * 64,
        group_params={"groups.similar_quantile": 0.75, "groups.common_interactions": 5, "groups.seed": 42,
                      "groups.final_group_count": 1000, "groups.split.target_ratio": 0.5, "groups.split.seed": 42,
                      "groups.split.shared_mask": False},
    )  # fmt: skip
    _evaluate(root, uri, provenance)
    folders = _evaluate(root, uri, provenance)  # a forced rerun of every evaluation
    mlflow.set_tracking_uri(uri)
    return root, uri, folders


def test_one_run_per_evaluation_folder_after_a_rerun(store):
    root, uri, folders = store
    exp = mlflow.get_experiment_by_name("GR_synthetic")
    runs = mlflow.search_runs(experiment_ids=[exp.experiment_id], output_format="list", max_results=1000)
    on_disk = {p.parent.relative_to(root / "results").as_posix() for p in (root / "results" / "synthetic" / "s42" / "eval").rglob("per_group.parquet")}
    assert len(on_disk) == len(folders) == 2 * (2 * len(FUSIONS) + 1)
    assert sorted(r.data.tags["sagea.output"] for r in runs) == sorted(on_disk)


def test_notebook_comparison_is_pool_correct(store):
    root, uri, folders = store
    exp = mlflow.get_experiment_by_name("GR_synthetic")
    main, compare = (f"test/{ELSA_RUN}/{SAE_RUN}/{o}" for o in ("ti1-nu0", "ti0-nu0"))
    table = comparison([exp.experiment_id], "common_features", main, compare, "sim")
    assert list(table) == [("synthetic", 16, 4)]
    row = table[("synthetic", 16, 4)]

    def metric(pool, option, name):
        return json.loads((folders[(pool, option, "common_features")] / "summary.json").read_text())["metrics"][name]

    for short, name in (("G/mean", "CommonItemsNDCG20/mean"), ("U/mean", "NDCG20/mean"), ("U/min", "NDCG20/min"),
                        ("Pop", "Popularity/mean")):  # fmt: skip
        m, c = metric("test", "ti1-nu0", name), metric("test", "ti0-nu0", name)
        assert row[(short, "main")] == pytest.approx(m)
        assert row[(short, "% change")] == pytest.approx((m - c) / abs(c) * 100)
    # the valid pool's runs exist, differ, and carry their own notes
    assert metric("valid", "ti1-nu0", "NDCG20/mean") != pytest.approx(metric("test", "ti1-nu0", "NDCG20/mean"))
    valid = comparison([exp.experiment_id], "common_features", main.replace("test/", "valid/"),
                       compare.replace("test/", "valid/"), "sim")  # fmt: skip
    assert valid[("synthetic", 16, 4)][("U/mean", "main")] == pytest.approx(metric("valid", "ti1-nu0", "NDCG20/mean"))


def test_gr_runs_params_tags_and_artifacts(store):
    root, uri, folders = store
    exp = mlflow.get_experiment_by_name("GR_synthetic")
    key = f"synthetic/s42/eval/valid/similar_3/{ELSA_RUN}/baselines/ADD"
    (run,) = mlflow.search_runs(experiment_ids=[exp.experiment_id], output_format="list",
                                filter_string=f"tags.`sagea.output` = '{key}'")  # fmt: skip
    p = run.data.params
    assert (p["user_set"], p["group_type"], p["group_set"], p["group_kind"], p["group_size"]) == (
        "valid", "sim", "similar_3", "similar", "3")
    assert p["note"] == f"valid/{ELSA_RUN}/baselines" and p["recommender_strategy"] == "ADD"
    assert (p["groups.similar_quantile"], p["groups.common_interactions"], p["groups.split.shared_mask"]) == (
        "0.75", "5", "False")
    tags = run.data.tags
    assert tags["sagea.study"] == "thesis" and tags["sagea.git_commit"] == "c" * 40
    assert tags["sagea.config_digest"] == "d" * 64
    import hashlib

    card = root / "results" / "synthetic" / "s42" / "data" / "card.json"
    assert tags["sagea.dataset_card"] == hashlib.sha256(card.read_bytes()).hexdigest()
    parent = mlflow.search_runs(experiment_names=["Studies"], output_format="list")
    assert len(parent) == 1 and tags["mlflow.parentRunId"] == parent[0].info.run_id
    client = mlflow.tracking.MlflowClient(uri)
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == [
        "per_group.parquet", "recommendations.parquet", "summary.json"]
    local = client.download_artifacts(run.info.run_id, "per_group.parquet", str(root))
    pd.testing.assert_frame_equal(pd.read_parquet(local), pd.read_parquet(folders[("valid", "baselines", "ADD")] / "per_group.parquet"))
    assert run.info.start_time < run.info.end_time
