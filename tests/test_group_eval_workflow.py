"""The evaluation rules end to end on contract-format fixtures, logging to a real MLflow server.

A ``mlflow server`` (sqlite backend in tmp, free port on 127.0.0.1, serving the artifacts)
receives one run per strategy folder, also after a forced rerun; ``mlflow.search_runs`` finds
them by the research code's names, and the code of seed notebook 000
(``generate_recommendations_with_comparision``) runs on the store with the thesis' notes.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from evaluate_fixtures import write_upstream

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
ELSA_RUN, SAE_RUN = "f8-s42", "topk-h16-k4-l2"
# a subset keeps the test short; every strategy is checked against the reference in test_group_eval.py
FUSIONS = ["average", "topk", "common_features"]
BASELINES = ["ADD", "GFAR", "POPULAR"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def mlflow_server(tmp_path):
    port = _free_port()
    store = tmp_path / "mlflow"
    store.mkdir()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{store}/mlflow.db", "--artifacts-destination", str(store / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "mlflow_server.log", "w"), start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"mlflow server exited: {(tmp_path / 'mlflow_server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start within 60 s")
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _config(path: Path, uri: str) -> Path:
    config = {
        "study": "eval_test",
        # the thesis notebooks' notes, so seed notebook 000 runs unchanged
        "mlflow": {"enabled": True, "tracking_uri": uri, "note": "sizes_{loss}_{acts}{normalized}"},
        "device": "cpu",
        "datasets": {"synthetic": {"source": "synthetic"}},
        "elsa": {"factors": 8},
        "sae": {"base": {"variant": "topk", "reconstruction_loss": "l2"}, "grid": {"width": [16], "k": [4]}},
        "groups": {"pools": ["test"], "kinds": {"similar": [3]}},  # the pool job evaluates every set
        "evaluation": {"k": 20, "batch_groups": 4, "baselines": BASELINES,
                       "sagea": {"fusions": FUSIONS, "topk_inference": [True, False]}},
        "reports": {"allow_selection_on_report_pool": True},  # evaluation only: no table selects on it
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.workflow
def test_evaluation_rules_with_mlflow_server(tmp_path, repo, python, mlflow_server):
    work = tmp_path / "wf"
    write_upstream(work, groupsets={"similar_3": 3})
    configfile = _config(tmp_path / "config.yaml", mlflow_server)
    base = "results/synthetic/s42/eval/test/{gs}/" + ELSA_RUN
    targets = []
    for gs in ("similar_3",):
        targets += [f"{base.format(gs=gs)}/{SAE_RUN}/{opt}/{f}/summary.json" for opt in ("ti1-nu0", "ti0-nu0") for f in FUSIONS]
        targets += [f"{base.format(gs=gs)}/baselines/{b}/summary.json" for b in BASELINES]
    cmd = [python, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(work), "--configfile", str(configfile),
           "--cores", "2", "--allowed-rules", "evaluate_sagea", "evaluate_baselines", "--", *targets]  # fmt: skip
    env = {**os.environ, "SAGEA_PROGRESS": "0"}
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    # provenance (commit, config digest, note templates) is no rerun trigger: a changed note reruns nothing
    relabel = _config(tmp_path / "relabel.yaml", mlflow_server)
    relabel.write_text(relabel.read_text().replace("sizes_{loss}_{acts}{normalized}", "other_{option}"))
    dry = [c if c != str(configfile) else str(relabel) for c in cmd]
    dry.insert(dry.index("--"), "-n")
    done = subprocess.run(dry, cwd=repo, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0 and "Nothing to be done" in done.stdout + done.stderr, done.stderr[-3000:]
    # a forced rerun of every evaluation job replaces the runs instead of adding new ones
    forced = cmd[:-len(targets) - 1] + ["--forcerun", "evaluate_sagea", "evaluate_baselines", "--", *targets]
    done = subprocess.run(forced, cwd=repo, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stderr.count("rule evaluate_sagea:") == 1, done.stderr[-4000:]  # one job: both options

    folder = work / base.format(gs="similar_3") / SAE_RUN / "ti1-nu0" / "common_features"
    per_group = pd.read_parquet(folder / "per_group.parquet")
    recs = pd.read_parquet(folder / "recommendations.parquet")
    summary = json.loads((folder / "summary.json").read_text())
    assert len(per_group) == 10 and list(recs.columns) == ["group", "rank", "item", "original_id"]
    items = pd.read_parquet(work / base.format(gs="similar_3").split("/eval/")[0] / "data" / "items.parquet")
    assert recs["original_id"].tolist() == items["original_id"].to_numpy()[recs["item"]].astype(str).tolist()
    assert {"NDCG20_com", "NDCG20_min", "NDCG20_mean", "P20_com", "Time_scoring", "CommonFeatures", "ZeroFusedCode",
            "GT_user", "GT_user_mean"} <= set(per_group.columns)  # fmt: skip
    assert summary["params"]["zero_fallback"] == "relax"
    # common_features is all-zero exactly where no feature is active in every member
    assert per_group["ZeroFusedCode"].tolist() == (per_group["CommonFeatures"] == 0).astype(float).tolist()
    assert summary["metrics"]["ZeroFusedCode/share"] == pytest.approx(per_group["ZeroFusedCode"].mean())
    assert summary["params"]["group_type"] == "sim" and summary["params"]["SAE_fusion_strategy"] == "common_features"
    assert summary["metrics"]["CommonItemsNDCG20/mean"] == pytest.approx(per_group["NDCG20_com"].mean())

    import mlflow

    mlflow.set_tracking_uri(mlflow_server)
    exp = mlflow.get_experiment_by_name("GR_synthetic")
    assert exp is not None
    runs = mlflow.search_runs(experiment_ids=[exp.experiment_id], output_format="list", max_results=1000)
    runs_before = {r.info.run_id for r in runs}
    folders = {p.parent.relative_to(work / "results").as_posix() for p in (work / "results" / "synthetic" / "s42" / "eval").rglob("summary.json")}
    assert len(folders) == 2 * len(FUSIONS) + len(BASELINES)
    assert sorted(r.data.tags["sagea.output"] for r in runs) == sorted(folders)
    # provenance: this checkout's commit, the validated config behind the digest, the study parent
    tags = runs[0].data.tags
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert tags["sagea.git_commit"] == head.stdout.strip()
    (parent,) = mlflow.search_runs(experiment_names=["Studies"], output_format="list")
    assert parent.data.tags["sagea.study_parent"] == "eval_test" == tags["sagea.study"]
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    digest = tags["sagea.config_digest"]
    stored = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/configs/{digest}.json")
    assert hashlib.sha256(stored.encode()).hexdigest() == digest
    assert json.loads(stored)["groups"]["kinds"] == {"similar": [3]}  # validated: defaults filled
    assert json.loads(stored)["groups"]["final_group_count"] == 1000
    # artifacts come through the server
    cf = next(r for r in runs if r.data.tags["sagea.output"].endswith("ti1-nu0/common_features"))
    assert cf.info.artifact_uri.startswith("mlflow-artifacts:")
    served = mlflow.artifacts.load_text(f"{cf.info.artifact_uri}/summary.json")
    assert json.loads(served) == json.loads((work / "results" / cf.data.tags["sagea.output"] / "summary.json").read_text())
    assert cf.data.params["groups.split.target_ratio"] == "0.5" and cf.data.params["group_kind"] == "similar"
    found = mlflow.search_runs(
        experiment_ids=[exp.experiment_id],
        filter_string="params.SAE_fusion_strategy = 'topk' and params.group_type = 'sim' and params.topk_inference = 'True'",
    )
    assert len(found) == 1
    row = found.iloc[0]
    for name in ("dataset", "recommender_strategy", "group_size", "embedding_dim", "top_k", "note",
                 "normalize_users_embeddings", "group_set", "user_set"):  # fmt: skip
        assert f"params.{name}" in found.columns, name
    assert row["params.note"] == "sizes_L2_with_acts" and row["params.embedding_dim"] == "16"
    for name in ("NDCG20_com", "NDCG20_min", "NDCG20/mean", "P20_com", "P20_min", "R20_com", "R20_min", "Hit20_com",
                 "Hit20_min", "GT_group", "GT_user", "Candidates", "NDCG20/min:mean", "Popularity/mean",
                 "RecommendationsSimilarity/mean", "Time/mean", "CommonItemsNDCG20/mean", "NDCG20/min",
                 "ZeroFusedCode/share", "GT_user_mean"):  # fmt: skip
        assert f"metrics.{name}" in found.columns, name
    # mlflow.deferred on the same server: the jobs (rerun: their spool files are new outputs) only
    # spool; logging the spools (what rule mlflow_log does, here without the ELSA/SAE jobs' spools
    # of a full study) goes through the server and replaces the earlier run of each folder
    from sagea.tracking import log_spooled

    deferred = tmp_path / "deferred.yaml"
    deferred.write_text(configfile.read_text().replace("tracking_uri:", "deferred: true\n  tracking_uri:"))
    spools = [work / "results" / "synthetic" / "s42" / "eval" / "test" / "mlflow" / f"{ELSA_RUN}-{what}.json"
              for what in ("sagea", "baselines")]  # fmt: skip
    spool_cmd = [c if c != str(configfile) else str(deferred) for c in cmd]
    spool_cmd = spool_cmd[: spool_cmd.index("--")] + ["--", *(str(p.relative_to(work)) for p in spools)]
    done = subprocess.run(spool_cmd, cwd=repo, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    current = lambda: mlflow.search_runs(experiment_ids=[exp.experiment_id], output_format="list", max_results=1000)  # noqa: E731
    assert runs_before == {r.info.run_id for r in current()}  # the jobs logged nothing
    rows = pd.DataFrame(log_spooled(spools))
    after = current()
    assert sorted(r.data.tags["sagea.output"] for r in after) == sorted(folders)  # still one run per folder
    assert set(rows["logged"]) == {"now"} and set(rows["run_id"]) == {r.info.run_id for r in after}
    assert not runs_before & set(rows["run_id"])
    again = pd.DataFrame(log_spooled(spools))
    assert set(again["logged"]) == {"before"} and sorted(again["run_id"]) == sorted(rows["run_id"])
    # seed notebook 000's code, unchanged, on our store
    seed = next(iter(sorted(SEEDS.glob("000_*.txt"))), None)
    if seed is None:
        pytest.skip(f"seed notebook 000 not found in {SEEDS}")
    text = seed.read_text()
    code = text[text.index("def generate_recommendations_with_comparision"): text.index("return df.reset_index()")]
    namespace = {"mlflow": mlflow, "pd": pd}
    exec(code + "return df.reset_index()\n", namespace)
    table = namespace["generate_recommendations_with_comparision"](
        [exp.experiment_id], aggregation_function="common_features", main_note="sizes_L2_with_acts",
        note_to_compare="sizes_L2_without_acts", group_type="sim",
    )
    assert len(table) == 1
    assert table[("Dataset", "")].iloc[0] == "synthetic" and table[("Dimensions", "")].iloc[0] == 16
    assert ("G/mean", "main") in table.columns and ("U/min", "% change") in table.columns


@pytest.mark.workflow
def test_unknown_note_field_stops_the_workflow_at_start(tmp_path, repo, python):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"mlflow": {"note": "{user_set}_{widht}"}}))
    cmd = [python, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(tmp_path / "wf"), "--configfile",
           str(config), "-n", "--cores", "1"]  # fmt: skip
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "mlflow.note" in out and "widht" in out, out[-3000:]
