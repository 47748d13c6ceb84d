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
