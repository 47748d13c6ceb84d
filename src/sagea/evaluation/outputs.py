"""Writing one strategy's evaluation folder: ``per_group.parquet``, ``recommendations.parquet``
and ``summary.json`` (docs/ARCHITECTURE.md), after the non-finite check of the per-group metrics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np
import pandas as pd

from sagea.evaluation.group_metrics import mlflow_metrics

if TYPE_CHECKING:  # the report stage reads folders with check_per_group: no torch import for it
    from sagea.evaluation.group import StrategyResult


#: Per-group columns that are undefined (NaN) for some groups by definition: ratios whose
#: denominator is 0 (every member scores 0), by column-name suffix.
UNDEFINED_RATIO_SUFFIXES = ("_min_mean", "_min_max", "_jain", "/min:mean", "/min:max")
#: List statistics that are undefined for short lists: column -> fewest list items that define it.
UNDEFINED_SHORT_LIST = {"Popularity": 1, "RecommendationsSimilarity": 2}


def check_per_group(
    per_group: pd.DataFrame, recommendations: pd.DataFrame | None, path: str | os.PathLike | None
) -> None:
    """Raise :class:`~sagea.io.NonFiniteError` on a NaN/inf per-group metric that is not undefined by
    definition (ratio columns of :data:`UNDEFINED_RATIO_SUFFIXES`; :data:`UNDEFINED_SHORT_LIST`
    statistics of lists shorter than their minimum, list lengths from ``recommendations``)."""
    from sagea.io import check_finite

    lengths = None
    if recommendations is not None:
        counts = recommendations.groupby("group").size()
        lengths = per_group["group"].map(counts).fillna(0).to_numpy()
    hint = (
        "the evaluation produced it from finite inputs; rerun the evaluation "
        "(`snakemake --forcerun evaluate_sagea evaluate_baselines`) and report the group ids"
    )
    for col in per_group.columns:
        if col == "group":
            continue
        allow = None
        if str(col).endswith(UNDEFINED_RATIO_SUFFIXES):
            allow = np.ones(len(per_group), dtype=bool)
        elif col in UNDEFINED_SHORT_LIST:  # without the lists (reading back): trust the writer's check
            allow = lengths < UNDEFINED_SHORT_LIST[col] if lengths is not None else np.ones(len(per_group), bool)
        check_finite(per_group[col], path, f"per-group metric {col!r} (rows = groups)", hint, allow=allow)


def with_original_ids(recommendations: pd.DataFrame, item_ids) -> pd.DataFrame:
    """``recommendations`` (``group, rank, item``) plus ``original_id`` (string; null for padding ``-1``)."""
    if item_ids is None:
        return recommendations
    ids = np.asarray(item_ids).astype(object)
    item = recommendations["item"].to_numpy()
    column = pd.array([None] * len(item), dtype="string")
    valid = item >= 0
    column[valid] = ids[item[valid]].astype(str)
    return recommendations.assign(original_id=column)


def write_strategy_outputs(
    result: StrategyResult, out_dir: str | os.PathLike, params: Mapping, k: int, item_ids=None
) -> dict:
    """Write ``per_group.parquet``, ``recommendations.parquet``, ``summary.json``; returns the summary.

    ``item_ids``: the original id of each item index (``items.parquet``); the lists then carry
    them as column ``original_id`` (null where a list is padded with item ``-1``).
    """
    from sagea.io import write_json, write_parquet

    out = Path(out_dir)
    check_per_group(result.per_group, result.recommendations, out / "per_group.parquet")
    write_parquet(result.per_group, out / "per_group.parquet")
    write_parquet(with_original_ids(result.recommendations, item_ids), out / "recommendations.parquet")
    summary = {"params": dict(params), "n_groups": len(result.per_group), "metrics": mlflow_metrics(result.per_group, k)}
    write_json(summary, out / "summary.json")
    result.summary = summary
    return summary
