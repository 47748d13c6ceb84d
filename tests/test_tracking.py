"""MLflow logging into a real sqlite tracking store, from parallel processes."""

import multiprocessing as mp

import pytest

from sagea.tracking import log_run


def _log(uri, i):
    return log_run(
        uri,
        "Dense_toy",
        f"run{i}",
        params={"model": "ELSA", "factors": 8 * (i + 1)},
        metrics={"NDCG20/test": 0.1 * i, "bad": float("nan")},
        step_metrics={"loss/train": [(0, 1.0), (1, 0.5)]},
    )


def test_parallel_runs_land_in_sqlite_store(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ctx = mp.get_context("spawn")
    with ctx.Pool(3) as pool:
        ids = pool.starmap(_log, [(uri, i) for i in range(3)])
    assert len(set(ids)) == 3
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["Dense_toy"], output_format="list")
    by_name = {r.info.run_name: r for r in runs}
    assert sorted(by_name) == ["run0", "run1", "run2"]
    assert by_name["run2"].data.params["factors"] == "24"
    assert by_name["run2"].data.metrics["NDCG20/test"] == pytest.approx(0.2)
    assert "bad" not in by_name["run2"].data.metrics
    history = mlflow.tracking.MlflowClient(uri).get_metric_history(by_name["run1"].info.run_id, "loss/train")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5)]
