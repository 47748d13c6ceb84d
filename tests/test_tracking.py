"""MLflow logging (sagea.tracking) into real sqlite stores: parallel writers, one run per output
key across reruns and kills, provenance tags, the study parent, batching, times, portable artifacts."""

import hashlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sagea.tracking import (
    DEFAULT_NOTE,
    RESEARCH_NOTE,
    Provenance,
    canonical_json,
    check_note_templates,
    config_digest,
    flat_params,
    git_state,
    log_run,
    output_key,
    render_note,
)

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402


def _log(uri, i):
    return log_run(
        uri,
        "Dense_toy",
        f"run{i}",
        params={"model": "ELSA", "factors": 8 * (i + 1)},
        metrics={"NDCG20/test": 0.1 * i, "bad": float("nan")},
        step_metrics={"loss/train": [(0, 1.0), (1, 0.5)]},
        key=f"toy/elsa/run{i}",
    )


def test_parallel_runs_land_in_sqlite_store(tmp_path):
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
    assert by_name["run2"].data.tags["sagea.output"] == "toy/elsa/run2"
    assert "bad" not in by_name["run2"].data.metrics
    history = MlflowClient(uri).get_metric_history(by_name["run1"].info.run_id, "loss/train")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5)]


def _folders(root: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        folder = root / "results" / "toy" / "eval" / "test" / "similar_3" / f"S{i}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps({"i": i}))
        out.append(folder)
    return out


def _log_folder(uri, folder, value, extra_artifacts=()):
    return log_run(
        uri, "GR_toy", folder.name, {"recommender_strategy": folder.name}, {"NDCG20/mean": value},
        artifacts=[folder / "summary.json", *extra_artifacts], key=output_key(folder),
    )  # fmt: skip


def test_rerun_replaces_the_run_of_the_same_output(tmp_path):
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    folders = _folders(tmp_path, 3)
    first = {f.name: _log_folder(uri, f, 0.1) for f in folders}
    # a forced rerun of everything, then of one folder twice more
    second = {f.name: _log_folder(uri, f, 0.2) for f in folders}
    last = [_log_folder(uri, folders[0], v) for v in (0.3, 0.4)][-1]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("GR_toy").experiment_id
    runs = client.search_runs([exp], max_results=1000)
    assert len(runs) == len(folders)
    by_key = {r.data.tags["sagea.output"]: r for r in runs}
    assert sorted(by_key) == sorted(output_key(f) for f in folders)
    assert by_key["toy/eval/test/similar_3/S0"].info.run_id == last
    assert by_key["toy/eval/test/similar_3/S0"].data.metrics["NDCG20/mean"] == pytest.approx(0.4)
    assert by_key["toy/eval/test/similar_3/S2"].info.run_id == second["S2"]
    # replaced runs are deleted (not just hidden by a filter) and their local artifacts removed
    deleted = client.search_runs([exp], run_view_type=mlflow.entities.ViewType.DELETED_ONLY, max_results=1000)
    assert {r.info.run_id for r in deleted} >= set(first.values())
    for run_id in first.values():
        assert not (tmp_path / "store" / "mlartifacts" / "GR_toy" / run_id).exists()
    assert (tmp_path / "store" / "mlartifacts" / "GR_toy" / last / "artifacts" / "summary.json").exists()


_KILLED_CHILD = r"""
import sys, time
from pathlib import Path
from sagea.tracking import log_run

uri, folder, marker = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

def artifacts():
    yield folder / "summary.json"
    marker.write_text("logging")  # the run exists and is half logged: now kill me
    time.sleep(600)
    yield folder / "summary.json"

log_run(uri, "GR_toy", folder.name, {"recommender_strategy": folder.name}, {"NDCG20/mean": 0.5},
        artifacts=artifacts(), key="toy/eval/test/similar_3/" + folder.name)
"""


def test_killed_logging_then_rerun_leaves_one_run_per_folder(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    folders = _folders(tmp_path, 2)
    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_CHILD, uri, str(folders[0]), str(marker)], env=env)
    try:
        for _ in range(1200):
            if marker.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), "the child never reached the middle of logging"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("GR_toy").experiment_id
    half = client.search_runs([exp])
    assert len(half) == 1 and half[0].info.status == "RUNNING"  # what the kill left behind
    for folder in folders:  # the rerun (the lock died with the killed process)
        _log_folder(uri, folder, 0.7)
    runs = client.search_runs([exp], max_results=1000)
    assert len(runs) == len(folders)
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert half[0].info.run_id not in {r.info.run_id for r in runs}


def test_output_key_is_the_folder_below_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert output_key("results/ml-32m/eval/test/similar_5/f256-s42/baselines/ADD") == \
        "ml-32m/eval/test/similar_5/f256-s42/baselines/ADD"
    assert output_key(tmp_path / "results" / "synthetic" / "elsa" / "f8-s42") == "synthetic/elsa/f8-s42"
    # the last "results" counts (a checkout living under some other results/ folder)
    assert output_key("/data/results/me/results/synthetic/sae/f8/x") == "synthetic/sae/f8/x"


def test_batches_respect_mlflow_limits(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    params = {f"p{i}": i for i in range(250)}
    metrics = {f"m{i}": float(i) for i in range(1500)}
    steps = {"history/loss": [(s, 1.0 / (s + 1)) for s in range(1, 1201)]}
    run_id = log_run(uri, "Big", "big", params, metrics, steps)
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert len(run.data.params) == 250 and run.data.params["p249"] == "249"
    assert len(run.data.metrics) == 1501 and run.data.metrics["m1499"] == 1499.0
    history = client.get_metric_history(run_id, "history/loss")
    assert sorted(m.step for m in history) == list(range(1, 1201))


def test_real_start_and_end_times(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    started = time.time() - 3600.0  # the job started an hour before it logged
    before = time.time()
    run_id = log_run(uri, "T", "t", {"a": 1}, start_time=started)
    after = time.time()
    info = MlflowClient(uri).get_run(run_id).info
    assert info.start_time == int(started * 1000)
    assert int(before * 1000) <= info.end_time <= int(after * 1000) + 1
    assert info.end_time - info.start_time >= 3600 * 1000


def test_provenance_tags_and_one_parent_per_study(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    config = {"study": "thesis", "seed": 42, "groups": {"seed": 7, "split": {"target_ratio": 0.5}}}
    # the digest worked out independently: sha256 of key-sorted compact JSON
    digest = hashlib.sha256(b'{"groups":{"seed":7,"split":{"target_ratio":0.5}},"seed":42,"study":"thesis"}').hexdigest()
    assert config_digest(config) == digest
    prov = Provenance(study="thesis", git_commit="a" * 40, git_dirty=False, config_digest=digest, config=config)
    ids = [log_run(uri, exp, name, {"x": 1}, provenance=prov, key=name)
           for exp, name in (("Dense_a", "e"), ("Sparse_a", "s"), ("GR_a", "g1"), ("GR_a", "g2"))]  # fmt: skip
    other = log_run(uri, "GR_a", "g3", {"x": 1}, provenance=Provenance(study="other"), key="g3")
    client = MlflowClient(uri)
    studies = client.get_experiment_by_name("Studies").experiment_id
    parents = client.search_runs([studies])
    assert sorted(p.data.tags["sagea.study_parent"] for p in parents) == ["other", "thesis"]
    parent = next(p for p in parents if p.data.tags["sagea.study_parent"] == "thesis")
    children = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert sorted(c.info.run_id for c in children) == sorted(ids)
    tags = client.get_run(ids[0]).data.tags
    assert tags["sagea.study"] == "thesis" and tags["sagea.git_commit"] == "a" * 40
    assert tags["mlflow.source.git.commit"] == "a" * 40 and tags["sagea.git_dirty"] == "false"
    assert tags["sagea.config_digest"] == digest
    # the config behind the digest is kept once, on the study's parent run
    arts = [a.path for a in client.list_artifacts(parent.info.run_id, "configs")]
    assert arts == [f"configs/{digest}.json"]
    text = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/configs/{digest}.json")
    assert json.loads(text) == config
    # the parent spans its children
    assert parent.info.end_time >= max(client.get_run(i).info.end_time for i in ids)
    assert client.get_run(other).data.tags["sagea.git_commit"] == "unknown"
    assert "mlflow.source.git.commit" not in client.get_run(other).data.tags


def test_git_state_of_a_checkout_and_of_a_plain_folder(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_state(plain) == {"git_commit": None, "git_dirty": None}
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("git is not installed")
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f.txt").write_text("1")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    head = (repo / ".git" / "HEAD").read_text().split()[-1]
    commit = (repo / ".git" / head).read_text().strip()
    assert git_state(repo) == {"git_commit": commit, "git_dirty": False}
    (repo / "f.txt").write_text("2")
    assert git_state(repo)["git_dirty"] is True


def test_artifacts_are_found_after_results_is_copied(tmp_path, monkeypatch):
    old, new = tmp_path / "machine_a", tmp_path / "machine_b"
    old.mkdir()
    monkeypatch.chdir(old)
    uri = "sqlite:///results/mlflow.db"  # the default: relative to the working directory
    folder = _folders(old, 1)[0]
    run_id = _log_folder(uri, folder, 0.5)
    new.mkdir()
    shutil.copytree(old / "results", new / "results")
    shutil.rmtree(old)
    monkeypatch.chdir(new)
    client = MlflowClient(uri)
    assert not client.get_run(run_id).info.artifact_uri.startswith(("/", "file:"))
    path = client.download_artifacts(run_id, "summary.json", str(tmp_path))
    assert json.loads(Path(path).read_text()) == {"i": 0}


def test_note_templates():
    fields = {"user_set": "valid", "elsa_run": "f256-s42", "sae_run": "topk-h1024-k32-cosine-con0.3", "option": "ti0-nu1",
              "loss": "Cosine", "acts": "without_acts", "normalized": "_normalized"}  # fmt: skip
    assert render_note(DEFAULT_NOTE, fields) == "valid/f256-s42/topk-h1024-k32-cosine-con0.3/ti0-nu1"
    assert render_note(RESEARCH_NOTE, fields) == "sizes_Cosine_without_acts_normalized"
    with pytest.raises(ValueError, match=r"mlflow\.note.*'width'"):
        render_note("{width}", fields)
    with pytest.raises(ValueError, match=r"mlflow\.baseline_note"):
        check_note_templates(DEFAULT_NOTE, "{sae_run}")
    check_note_templates(RESEARCH_NOTE, "baselines_{user_set}")


def test_flat_params_and_canonical_json():
    groups = {"pools": ["test"], "kinds": {"similar": [3]}, "seed": 42, "split": {"target_ratio": 0.5, "shared_mask": False}}
    assert flat_params(groups, "groups", skip=("pools", "kinds")) == {
        "groups.seed": 42, "groups.split.target_ratio": 0.5, "groups.split.shared_mask": False,
    }  # fmt: skip
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'


# ----------------------------------------------------------------------------- deferred (batched) logging
def _batch_folders(tmp_path, names):
    out = []
    for name in names:
        folder = tmp_path / "results" / "toy" / "eval" / "test" / "similar_3" / name
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"name": name}))
        out.append(folder)
    return out


def _active(uri):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("GR_toy")
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000)


def test_deferred_logging_logs_the_batch_at_the_end(tmp_path):
    from sagea.tracking import deferred_logging

    uri = f"sqlite:///{tmp_path}/results/mlflow.db"
    # '_' is a LIKE wildcard: the batch's prefix query "toy/eval/test/similar_3/S_%" also matches
    # "S-x" below, which is no key of the batch and must survive the batch
    folders = _batch_folders(tmp_path, ["S_1", "S_2", "S-x"])
    bystander = _log_folder(uri, folders[2], 0.0)
    started = time.time() - 5.0
    with deferred_logging():
        ids = [log_run(uri, "GR_toy", f.name, {"recommender_strategy": f.name}, {"NDCG20/mean": 0.1 * i},
                       artifacts=[f / "summary.json"], key=output_key(f), start_time=started)  # fmt: skip
               for i, f in enumerate(folders[:2])]
        assert ids == [None, None]
        assert [r.info.run_id for r in _active(uri)] == [bystander]  # nothing logged yet
    runs = {r.data.tags["sagea.output"]: r for r in _active(uri)}
    assert sorted(runs) == sorted(output_key(f) for f in folders)
    assert runs[output_key(folders[2])].info.run_id == bystander
    one = runs[output_key(folders[1])]
    assert one.info.run_name == "S_2" and one.info.status == "FINISHED"
    assert one.data.params == {"recommender_strategy": "S_2"} and one.data.metrics == {"NDCG20/mean": 0.1}
    assert one.info.start_time == int(started * 1000) and one.info.end_time >= one.info.start_time
    client = MlflowClient(uri)
    assert [a.path for a in client.list_artifacts(one.info.run_id)] == ["summary.json"]


def test_deferred_rerun_replaces_runs_and_a_failed_batch_logs_nothing(tmp_path):
    from sagea.tracking import deferred_logging

    uri = f"sqlite:///{tmp_path}/results/mlflow.db"
    folders = _batch_folders(tmp_path, ["A", "B", "C"])
    for value in (0.1, 0.2):  # a batch, then its forced rerun
        with deferred_logging():
            for f in folders:
                _log_folder(uri, f, value)
    runs = _active(uri)
    assert len(runs) == 3 and {r.data.metrics["NDCG20/mean"] for r in runs} == {0.2}
    before = {r.info.run_id for r in runs}
    with pytest.raises(RuntimeError, match="variant failed"):
        with deferred_logging():
            _log_folder(uri, folders[0], 0.3)
            raise RuntimeError("variant failed")
    assert {r.info.run_id for r in _active(uri)} == before  # nothing of the failed batch
    # one key twice in a batch, with a one-at-a-time rerun of another folder inside: one run each
    with deferred_logging():
        _log_folder(uri, folders[0], 0.4)
        _log_folder(uri, folders[0], 0.5)
        with deferred_logging():  # joins the outer batch
            _log_folder(uri, folders[1], 0.6)
    runs = {r.data.tags["sagea.output"]: r.data.metrics["NDCG20/mean"] for r in _active(uri)}
    assert runs == {output_key(folders[0]): 0.5, output_key(folders[1]): 0.6, output_key(folders[2]): 0.2}


def _comparable(run) -> dict:
    """What a notebook reads of a run: name, status, times, params, metrics, tags (minus ids/record), artifacts."""
    tags = {k: v for k, v in run.data.tags.items() if k not in ("sagea.record", "mlflow.parentRunId")}
    return {"name": run.info.run_name, "status": run.info.status, "start": run.info.start_time,
            "params": run.data.params, "metrics": run.data.metrics, "tags": tags}  # fmt: skip


def test_spooled_runs_are_logged_later_as_the_job_would_log_them(tmp_path):
    """deferred_logging(spool=...) writes the runs instead of logging them (no store is touched);
    log_spooled logs them with the same names, params, step metrics, tags and artifacts as
    logging in the job; logging the spools again logs nothing new; a changed record replaces
    the earlier run of its output; runs go to the spool file in their output folder."""
    from sagea.tracking import RECORD_TAG, deferred_logging, log_spooled

    folders = _batch_folders(tmp_path, ["A", "B"])
    spool_root = tmp_path / "results" / "toy" / "eval" / "test"
    started = time.time() - 3.0
    prov = Provenance(study="toy", git_commit="abc", config_digest="d" * 64, config={"seed": 1})

    def job(uri, value, spool=None):
        with deferred_logging(spool=spool):
            for f in folders:
                log_run(uri, "GR_toy", f.name, {"recommender_strategy": f.name, "k": 20},
                        {"NDCG20/mean": value, "bad": float("nan")}, {"history/loss": [(1, 0.5), (2, 0.25)]},
                        artifacts=[f / "summary.json"], tags={"sagea.stage": "evaluate"}, key=output_key(f),
                        start_time=started, provenance=prov)  # fmt: skip

    direct_uri = f"sqlite:///{tmp_path}/direct/mlflow.db"
    job(direct_uri, 0.1)
    uri = f"sqlite:///{tmp_path}/results/mlflow.db"
    spool = spool_root / "mlflow" / "job.json"
    job(uri, 0.1, spool)
    assert not (tmp_path / "results" / "mlflow.db").exists()  # the job never touched the store
    records = json.loads(spool.read_text())["runs"]
    assert [r["run_name"] for r in records] == ["A", "B"] and records[0]["end_ms"] >= records[0]["start_ms"]
    assert ["bad", 0.0] not in [r[:2] for r in records[0]["metrics"]]  # non-finite values left out, as before
    rows = log_spooled([spool])
    assert [r["logged"] for r in rows] == ["now", "now"] and [r["key"] for r in rows] == [output_key(f) for f in folders]
    client = MlflowClient(uri)
    spooled = {r.info.run_name: r for r in _active(uri)}
    direct = {r.info.run_name: r for r in _active(direct_uri)}
    assert {k: _comparable(v) for k, v in spooled.items()} == {k: _comparable(v) for k, v in direct.items()}
    for name, run in spooled.items():
        assert [m.value for m in client.get_metric_history(run.info.run_id, "history/loss")] == [0.5, 0.25]
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["summary.json"]
        assert run.info.end_time == next(r["end_ms"] for r in records if r["run_name"] == name)
        record = next(r for r in records if r["run_name"] == name)
        assert run.data.tags[RECORD_TAG] == hashlib.sha256(canonical_json(record).encode()).hexdigest()
    (parent,) = client.search_runs([client.get_experiment_by_name("Studies").experiment_id])
    assert {r.data.tags["mlflow.parentRunId"] for r in spooled.values()} == {parent.info.run_id}
    first = {r.info.run_id for r in spooled.values()}
    # logging the same spool again: nothing new, the same run ids reported
    again = log_spooled([spool])
    assert [r["logged"] for r in again] == ["before", "before"] and {r["run_id"] for r in again} == first
    assert {r.info.run_id for r in _active(uri)} == first
    # the job reruns (new values, new times): its runs replace the earlier ones, one run per output
    started = time.time()
    job(uri, 0.3, spool)
    rows = log_spooled([spool])
    assert [r["logged"] for r in rows] == ["now", "now"]
    runs = _active(uri)
    assert len(runs) == 2 and {r.data.metrics["NDCG20/mean"] for r in runs} == {0.3}
    assert not first & {r.info.run_id for r in runs}
    # a failing job writes no spool; several spool files: each run goes to its output folder's
    failed = spool_root / "mlflow" / "failed.json"
    with pytest.raises(RuntimeError):
        with deferred_logging(spool=failed):
            _log_folder(uri, folders[0], 0.9)
            raise RuntimeError("job failed")
    assert not failed.exists()
    per_folder = [f / "mlflow_run.json" for f in folders]
    with deferred_logging(spool=per_folder):
        for f in reversed(folders):
            _log_folder(uri, f, 0.7)
    assert [[r["key"] for r in json.loads(p.read_text())["runs"]] for p in per_folder] == [[output_key(f)] for f in folders]
    with pytest.raises(ValueError, match="none of the spool files"):
        with deferred_logging(spool=per_folder):
            _log_folder(uri, tmp_path / "results" / "elsewhere", 0.7)
    # an unreadable spool names itself and what to do
    broken = spool_root / "mlflow" / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json.*rerun"):
        log_spooled([broken])
