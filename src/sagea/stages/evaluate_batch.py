"""One evaluation job per pool: every group set x SAE variant x SAGEA option in one process.

A job of the embedded default computes for a fraction of a second but spends seconds starting
Python, importing torch/pandas/MLflow and logging (BENCHMARKS.md, "Per-job overhead"). These
drivers pay that once per (dataset, replicate, pool, ELSA run) instead of once per (group set,
SAE variant, option): they call :func:`sagea.stages.evaluate.evaluate_sagea_job` (and
:func:`~sagea.stages.evaluate.evaluate_baselines_job`) per group set and variant, unchanged, so
each folder is written exactly as a job of its own would write it, and collect the MLflow runs
of the whole job into one batch (:func:`sagea.tracking.deferred_logging`), logged once every
group set and variant has succeeded.

Each variant still reads the group set's shared inputs (interactions, split, groups, popularity,
ELSA checkpoint, item embeddings) itself, since ``evaluate_sagea_job`` takes paths: about 10-15 %
of a variant's time, small next to the start-up saved.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from sagea.evaluation.group import GroupEvalSettings
from sagea.stages.evaluate import (
    BaselineSettings,
    EvalInputs,
    EvalScope,
    SageaSettings,
    TrackingSettings,
    evaluate_baselines_job,
    evaluate_sagea_job,
)

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


def evaluate_sagea_variants(
    variants: Sequence[SageaVariant],
    inputs: EvalInputs,
    scope: EvalScope,
    zero_fallback: str,
    settings: GroupEvalSettings,
    tracking: TrackingSettings = TrackingSettings(),
    threads: int | None = None,
) -> dict[tuple[str, str], dict[str, dict]]:
    """Evaluate every variant on one group set; returns ``(sae_run, option) -> {fusion: summary}``.

    ``inputs``: the group set's files (its ``sae_path`` is each variant's); ``scope``, ``settings``,
    ``tracking``: shared by the variants. With a tracking URI, the runs of all variants are logged
    together at the end, one per fusion folder as before; when a variant fails, none is logged
    (the job's outputs are removed, so no run may point to them).
    """
    from sagea.tracking import deferred_logging

    out: dict[tuple[str, str], dict[str, dict]] = {}
    with deferred_logging():
        for variant in variants:
            sagea = SageaSettings(
                variant.sae_run, variant.sae_hp, variant.topk_inference, variant.normalize_users_embeddings, zero_fallback
            )
            log.info("SAE %s, option %s: %d fusions", variant.sae_run, sagea.option, len(variant.out_dirs))
            out[(variant.sae_run, sagea.option)] = evaluate_sagea_job(
                replace(inputs, sae_path=variant.sae_path), variant.out_dirs, scope, sagea, settings, tracking, threads
            )
    return out


@dataclass(frozen=True)
class GroupSetJob:
    """One group set of a pool: its name, its groups file and its output folders (SAGEA:
    :class:`SageaVariant` list; baselines: ``strategy -> folder``)."""

    name: str
    groups_path: str | os.PathLike
    outputs: Any


def evaluate_sagea_pool(
    group_sets: Sequence[GroupSetJob],
    inputs: EvalInputs,
    scope: EvalScope,
    zero_fallback: str,
    settings: GroupEvalSettings,
    tracking: TrackingSettings = TrackingSettings(),
    threads: int | None = None,
) -> dict[str, dict[tuple[str, str], dict[str, dict]]]:
    """:func:`evaluate_sagea_variants` on every group set of a pool (``outputs``: its variants);
    ``inputs.groups_path`` and ``scope.groupset`` are set per group set. One MLflow batch for
    the whole job, logged when every group set has succeeded."""
    from sagea.tracking import deferred_logging

    with deferred_logging():
        return {
            job.name: evaluate_sagea_variants(
                job.outputs, replace(inputs, groups_path=job.groups_path), replace(scope, groupset=job.name),
                zero_fallback, settings, tracking, threads,
            )  # fmt: skip
            for job in group_sets
        }


def evaluate_baselines_pool(
    group_sets: Sequence[GroupSetJob],
    inputs: EvalInputs,
    scope: EvalScope,
    settings: GroupEvalSettings,
    baselines: BaselineSettings = BaselineSettings(),
    tracking: TrackingSettings = TrackingSettings(),
    threads: int | None = None,
) -> dict[str, dict[str, dict]]:
    """:func:`~sagea.stages.evaluate.evaluate_baselines_job` on every group set of a pool
    (``outputs``: strategy -> folder), as :func:`evaluate_sagea_pool` does for SAGEA."""
    from sagea.tracking import deferred_logging

    with deferred_logging():
        return {
            job.name: evaluate_baselines_job(
                replace(inputs, groups_path=job.groups_path), job.outputs, replace(scope, groupset=job.name),
                settings, baselines, tracking, threads,
            )  # fmt: skip
            for job in group_sets
        }
