"""One evaluation job per group set: every SAE variant x SAGEA option in one process.

A job of the embedded default computes for a fraction of a second but spends seconds starting
Python, importing torch/pandas/MLflow and logging (BENCHMARKS.md, "Per-job overhead"). This
driver pays that once per (dataset, replicate, pool, group set, ELSA run) instead of once per
(SAE variant, option): it calls :func:`sagea.stages.evaluate.evaluate_sagea_job` per variant,
unchanged, so each folder is written exactly as a job of its own would write it, and collects
the MLflow runs of all variants into one batch (:func:`sagea.tracking.deferred_logging`), logged
once every variant has succeeded.

Each variant still reads the group set's shared inputs (interactions, split, groups, popularity,
ELSA checkpoint, item embeddings) itself, since ``evaluate_sagea_job`` takes paths: about 10-15 %
of a variant's time, small next to the start-up saved.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from sagea.stages.evaluate import evaluate_sagea_job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SageaVariant:
    """One SAE variant and SAGEA option: its checkpoint, hyperparameters and fusion folders."""

    sae_run: str
    sae_path: str | os.PathLike
    sae_hp: Mapping[str, Any]
    topk_inference: bool
    normalize_users_embeddings: bool
    out_dirs: Mapping[str, str | os.PathLike]  # fusion -> output folder


def evaluate_sagea_variants(variants: Sequence[SageaVariant], **job: Any) -> dict[tuple[str, str], dict[str, dict]]:
    """Evaluate every variant on one group set; returns ``(sae_run, option) -> {fusion: summary}``.

    ``job``: the keyword arguments the variants share, passed to ``evaluate_sagea_job`` as they
    are (data and group paths, ELSA checkpoint, dataset/pool/groupset/elsa_run, settings,
    ``zero_fallback``, device, tracking URI, provenance, threads). With a tracking URI, the runs of
    all variants are logged together at the end, one per fusion folder as before; when a variant
    fails, none is logged (the job's outputs are removed, so no run may point to them).
    """
    from sagea.tracking import deferred_logging

    out: dict[tuple[str, str], dict[str, dict]] = {}
    with deferred_logging():
        for variant in variants:
            option = f"ti{int(variant.topk_inference)}-nu{int(variant.normalize_users_embeddings)}"
            log.info("SAE %s, option %s: %d fusions", variant.sae_run, option, len(variant.out_dirs))
            out[(variant.sae_run, option)] = evaluate_sagea_job(
                sae_path=variant.sae_path,
                out_dirs=variant.out_dirs,
                sae_run=variant.sae_run,
                sae_hp=variant.sae_hp,
                topk_inference=variant.topk_inference,
                normalize_users_embeddings=variant.normalize_users_embeddings,
                **job,
            )
    return out
