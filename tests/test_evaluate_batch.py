"""One evaluation job per group set (sagea.stages.evaluate_batch): the same folders as one job per
SAE variant and option, one MLflow run per folder after reruns, nothing logged when a variant fails."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from evaluate_fixtures import write_upstream
from sagea.io import write_torch
from sagea.models.sae import SAE
from sagea.stages.evaluate import (
    EvalInputs,
    EvalScope,
    SageaSettings,
    TrackingSettings,
    evaluate_sagea_job,
    group_eval_settings,
)
from sagea.stages.evaluate_batch import SageaVariant, evaluate_sagea_variants

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

ELSA_RUN = "f8-s42"
SAES = {"topk-h16-k4-l2": {"width": 16, "k": 4}, "topk-h32-k2-l2": {"width": 32, "k": 2}}
OPTIONS = [(True, False), (False, True)]
FUSIONS = ["average", "common_features", "wcom"]


@pytest.fixture
def upstream(tmp_path):
    write_upstream(tmp_path)
    res = tmp_path / "results" / "synthetic" / "s42"
    sae = SAE(8, 32, k=2, seed=3)  # a second variant of another width and k
    write_torch(sae.checkpoint(), res / "sae" / ELSA_RUN / "topk-h32-k2-l2" / "model.pt")
    return res


def _shared(res: Path, uri: str | None) -> dict:
    """The arguments every variant of the group set shares (stage settings objects)."""
    inputs = EvalInputs(
        res / "data", res / "split.parquet", res / "groups" / "test" / "similar_3.parquet",
        res / "elsa" / ELSA_RUN / "model.pt", res / "elsa" / ELSA_RUN / "item_embeddings.parquet",
    )  # fmt: skip
    return dict(
        inputs=inputs, scope=EvalScope("synthetic", "test", "similar_3", ELSA_RUN), zero_fallback="relax",
        settings=group_eval_settings({"k": 20, "batch_groups": 4}, device="cpu"), tracking=TrackingSettings(uri),
    )  # fmt: skip


def _variants(res: Path, out: Path, sae_paths: dict | None = None) -> list[SageaVariant]:
    return [
        SageaVariant(sae, (sae_paths or {}).get(sae, res / "sae" / ELSA_RUN / sae / "model.pt"),
                     {**hp, "reconstruction_loss": "l2", "variant": "topk"}, ti, nu,
                     {f: out / sae / f"ti{int(ti)}-nu{int(nu)}" / f for f in FUSIONS})  # fmt: skip
        for sae, hp in SAES.items()
        for ti, nu in OPTIONS
    ]


def _runs(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("GR_synthetic")
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000)


def test_batch_writes_what_one_job_per_variant_writes(upstream):
    batch, single = upstream / "eval" / "batch", upstream / "eval" / "single"
    summaries = evaluate_sagea_variants(_variants(upstream, batch), **_shared(upstream, None))
    assert sorted(summaries) == sorted((s, f"ti{int(ti)}-nu{int(nu)}") for s in SAES for ti, nu in OPTIONS)
    for variant in _variants(upstream, single):
        shared = _shared(upstream, None)
        evaluate_sagea_job(
            replace(shared["inputs"], sae_path=variant.sae_path), variant.out_dirs, shared["scope"],
            SageaSettings(variant.sae_run, variant.sae_hp, variant.topk_inference,
                          variant.normalize_users_embeddings, shared["zero_fallback"]),
            shared["settings"], shared["tracking"],
        )  # fmt: skip
    files = sorted(p.relative_to(single) for p in single.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(batch) for p in batch.rglob("*") if p.is_file())
    assert len(files) == len(SAES) * len(OPTIONS) * len(FUSIONS) * 3
    for name in files:
        a, b = single / name, batch / name
        if name.name == "recommendations.parquet":
            assert a.read_bytes() == b.read_bytes(), name
        elif name.suffix == ".parquet":
            untimed = lambda df: df.drop(columns=[c for c in df.columns if c.startswith("Time")])  # noqa: E731
            pd.testing.assert_frame_equal(untimed(pd.read_parquet(a)), untimed(pd.read_parquet(b)), check_exact=True)
        else:
            untimed = lambda s: {k: v for k, v in s["metrics"].items() if not k.startswith("Time")}  # noqa: E731
            sa, sb = json.loads(a.read_text()), json.loads(b.read_text())
            assert sa["params"] == sb["params"] and untimed(sa) == untimed(sb), name
    # the variants really differ (else the comparison above proves little)
    recs = {p.parent.parent.parent.name: p.read_bytes() for p in batch.rglob("average/recommendations.parquet")}
    assert len(set(recs.values())) == len(SAES)


def test_batch_logs_one_run_per_folder_and_nothing_when_a_variant_fails(upstream):
    root = upstream.parents[2]
    uri = f"sqlite:///{root}/results/mlflow.db"
    out = upstream / "eval" / "test" / "similar_3" / ELSA_RUN
    for _ in range(2):  # a job and its forced rerun
        evaluate_sagea_variants(_variants(upstream, out), **_shared(upstream, uri))
    runs = _runs(uri)
    folders = sorted(p.parent for p in out.rglob("summary.json"))
    assert len(folders) == len(SAES) * len(OPTIONS) * len(FUSIONS)
    assert sorted(r.data.tags["sagea.output"] for r in runs) == sorted(
        p.relative_to(root / "results").as_posix() for p in folders
    )
    first = {r.info.run_id for r in runs}
    # the last SAE's checkpoint is unreadable: the job fails after evaluating the first SAE, logs nothing
    broken = upstream / "sae" / ELSA_RUN / "broken" / "model.pt"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a checkpoint")
    variants = _variants(upstream, out, {"topk-h32-k2-l2": broken})
    with pytest.raises(Exception):
        evaluate_sagea_variants(variants, **_shared(upstream, uri))
    assert {r.info.run_id for r in _runs(uri)} == first
    shutil.rmtree(broken.parent)


@pytest.fixture
def two_sets(tmp_path):
    """Upstream files with two group sets of the test pool (sizes 3 and 4) and two SAEs."""
    write_upstream(tmp_path, groupsets={"similar_3": 3, "random_4": 4})
    res = tmp_path / "results" / "synthetic" / "s42"
    write_torch(SAE(8, 32, k=2, seed=3).checkpoint(), res / "sae" / ELSA_RUN / "topk-h32-k2-l2" / "model.pt")
    return res


def _same_outputs(a_root: Path, b_root: Path) -> int:
    """Every file under the two roots equal (recommendations byte for byte, timing fields aside)."""
    files = sorted(p.relative_to(a_root) for p in a_root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b_root) for p in b_root.rglob("*") if p.is_file())
    for name in files:
        a, b = a_root / name, b_root / name
        if name.name == "recommendations.parquet":
            assert a.read_bytes() == b.read_bytes(), name
        elif name.suffix == ".parquet":
            untimed = lambda df: df.drop(columns=[c for c in df.columns if c.startswith("Time")])  # noqa: E731
            pd.testing.assert_frame_equal(untimed(pd.read_parquet(a)), untimed(pd.read_parquet(b)), check_exact=True)
        else:
            sa, sb = json.loads(a.read_text()), json.loads(b.read_text())
            untimed = lambda s: {k: v for k, v in s["metrics"].items() if not k.startswith("Time")}  # noqa: E731
            assert sa["params"] == sb["params"] and untimed(sa) == untimed(sb), name
    return len(files)


def test_pool_job_writes_what_one_job_per_group_set_writes_and_logs_once(two_sets):
    """evaluate_sagea_pool / evaluate_baselines_pool: every group set of the pool in one call, the
    same folders as one call per group set; one MLflow run per folder; a failing group set logs nothing."""
    from sagea.stages.evaluate import BaselineSettings, evaluate_baselines_job
    from sagea.stages.evaluate_batch import GroupSetJob, evaluate_baselines_pool, evaluate_sagea_pool

    res = two_sets
    root = res.parents[2]
    uri = f"sqlite:///{root}/results/mlflow.db"
    sets = {"similar_3": res / "groups" / "test" / "similar_3.parquet", "random_4": res / "groups" / "test" / "random_4.parquet"}
    baselines = ["ELSA", "ADD"]
    pooled, single = res / "eval" / "test", res / "eval_single" / "test"

    def jobs(base: Path, what: str):
        return [GroupSetJob(name, path, _variants(res, base / name / ELSA_RUN) if what == "sagea"
                            else {b: base / name / ELSA_RUN / "baselines" / b for b in baselines})
                for name, path in sets.items()]  # fmt: skip

    shared = _shared(res, uri)
    pool_inputs = replace(shared["inputs"], groups_path=None)
    pool_scope = replace(shared["scope"], groupset=None)
    out = evaluate_sagea_pool(jobs(pooled, "sagea"), pool_inputs, pool_scope, shared["zero_fallback"],
                              shared["settings"], shared["tracking"])  # fmt: skip
    assert sorted(out) == sorted(sets) and all(len(v) == len(SAES) * len(OPTIONS) for v in out.values())
    evaluate_baselines_pool(jobs(pooled, "baselines"), pool_inputs, pool_scope, shared["settings"],
                            BaselineSettings(), shared["tracking"])  # fmt: skip
    local = _shared(res, None)
    for name, path in sets.items():
        evaluate_sagea_variants(_variants(res, single / name / ELSA_RUN),
                                replace(local["inputs"], groups_path=path), replace(local["scope"], groupset=name),
                                local["zero_fallback"], local["settings"])  # fmt: skip
        evaluate_baselines_job(replace(local["inputs"], groups_path=path),
                               {b: single / name / ELSA_RUN / "baselines" / b for b in baselines},
                               replace(local["scope"], groupset=name), local["settings"])  # fmt: skip
    n_folders = len(sets) * (len(SAES) * len(OPTIONS) * len(FUSIONS) + len(baselines))
    assert _same_outputs(single, pooled) == 3 * n_folders
    # the group sets really differ (group size 3 vs 4), so the comparison covers both
    sizes = {name: pd.read_parquet(pooled / name / ELSA_RUN / "baselines" / "ELSA" / "per_group.parquet") for name in sets}
    assert sizes["similar_3"].shape != sizes["random_4"].shape or not sizes["similar_3"].equals(sizes["random_4"])
    runs = _runs(uri)
    assert sorted(r.data.tags["sagea.output"] for r in runs) == sorted(
        p.parent.relative_to(root / "results").as_posix() for p in pooled.rglob("summary.json")
    )
    assert len(runs) == n_folders
    assert {r.data.params["group_set"] for r in runs} == set(sets)
    # the second group set's groups file is unreadable: the job fails after the first, logs nothing more
    first = {r.info.run_id for r in runs}
    broken = dict(sets, random_4=res / "groups" / "test" / "broken.parquet")
    broken["random_4"].write_bytes(b"not parquet")
    bad = [GroupSetJob(n, p, _variants(res, res / "eval_bad" / n / ELSA_RUN)) for n, p in broken.items()]
    with pytest.raises(Exception):
        evaluate_sagea_pool(bad, pool_inputs, pool_scope, shared["zero_fallback"], shared["settings"], shared["tracking"])
    assert {r.info.run_id for r in _runs(uri)} == first
