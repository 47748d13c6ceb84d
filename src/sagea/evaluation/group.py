"""Batched group evaluation: split, recommend with every strategy, measure, write, log.

For each chunk of ``batch_groups`` groups: the group split (docs/method.md §5, via
:mod:`sagea.evaluation.splits`) gives member inputs/targets ``[B, m, I]``; every strategy
recommends k items with its two timed phases (``score`` shared by strategies with the same
``score_key``, then ``aggregate``), and :func:`~sagea.evaluation.group_metrics.group_metrics`
measures the lists. Outputs per strategy: ``per_group`` (one row per group) and
``recommendations`` (group, rank, item) frames, and a summary under MLflow names.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from sagea.evaluation.group_metrics import group_metrics, mlflow_metrics, unit_rows
from sagea.evaluation.splits import common_targets, group_split, group_target_masks
from sagea.recommenders.base import GroupRecommender, exclude, member_elsa_scores, stable_topk

log = logging.getLogger(__name__)


@dataclass
class GroupEvalSettings:
    """Evaluation settings (from ``config["evaluation"]`` and ``config["groups"]["split"]``)."""

    k: int = 20
    batch_groups: int = 256
    target_ratio: float = 0.5
    split_seed: int = 42
    shared_mask: bool = False  # defect 3
    hit_rate_needs_two: bool = False  # defect 1
    m: int = 1  # m-proportionality
    top_n: int = 20
    device: str = "cpu"
    dtype: torch.dtype = torch.float32


@dataclass
class StrategyResult:
    per_group: pd.DataFrame
    recommendations: pd.DataFrame
    summary: dict = field(default_factory=dict)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate_groups(
    strategies: Sequence[GroupRecommender],
    rows: sp.csr_matrix,
    groups: np.ndarray,
    settings: GroupEvalSettings,
    popularity: np.ndarray,
    item_embeddings: np.ndarray,
    elsa: object,
    group_ids: np.ndarray | None = None,
) -> dict[str, StrategyResult]:
    """Evaluate every strategy on every group; returns ``{strategy name: StrategyResult}``.

    ``rows``: the full 0/1 user x item CSR; ``groups``: member user indices ``[G, m]``;
    ``popularity [I]``: item frequencies for the popularity metric; ``item_embeddings [I, d]``:
    ELSA item rows (recommendation similarity); ``elsa``: for each member's personal top-N
    (m-proportionality). ``group_ids`` label the rows (default ``0..G-1``).
    """
    from sagea.runtime import progress

    device = torch.device(settings.device)
    groups = np.asarray(groups, dtype=np.int64)
    if groups.ndim != 2 or len(groups) == 0:
        raise ValueError(f"no groups to evaluate (members array of shape {groups.shape}); check the group set file")
    n_groups, size = groups.shape
    group_ids = np.arange(n_groups) if group_ids is None else np.asarray(group_ids)
    n_items = rows.shape[1]
    item_unit = unit_rows(np.asarray(item_embeddings, dtype=np.float64))
    popularity = np.asarray(popularity, dtype=np.float64)
    min_hits = 2 if settings.hit_rate_needs_two else 1
    names = [s.name for s in strategies]
    if len(set(names)) != len(names):
        raise ValueError(f"strategy names must be unique, got {names}")
    metric_parts: dict[str, list[dict]] = {n: [] for n in names}
    rec_parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    starts = range(0, n_groups, settings.batch_groups)
    for start in progress(starts, desc="group evaluation", unit="chunk"):
        chunk = groups[start : start + settings.batch_groups]
        b = len(chunk)
        masks = group_target_masks(chunk, n_items, settings.target_ratio, settings.split_seed, settings.shared_mask)
        inputs_np, targets = group_split(rows, chunk, masks)
        common = common_targets(targets)
        seen_np = inputs_np.any(axis=1)
        with torch.inference_mode():
            inputs = torch.from_numpy(inputs_np).to(device=device, dtype=settings.dtype)
            seen = torch.from_numpy(seen_np).to(device)
            personal = stable_topk(exclude(member_elsa_scores(elsa, inputs), seen[:, None, :]), settings.top_n)
            personal = personal.cpu().numpy()
            states: dict[object, tuple[object, float]] = {}
            for strategy in strategies:
                key = getattr(strategy, "score_key", None) or ("own", id(strategy))
                if key not in states:
                    _sync(device)
                    t0 = time.perf_counter()
                    state = strategy.score(inputs)
                    _sync(device)
                    states[key] = (state, time.perf_counter() - t0)
                state, t_score = states[key]
                t0 = time.perf_counter()
                rec = strategy.aggregate(state, seen, settings.k)
                _sync(device)
                t_agg = time.perf_counter() - t0
                recs = rec.items.cpu().numpy()
                values = group_metrics(
                    recs, targets, common, settings.k, seen_np, popularity, item_unit,
                    personal, settings.m, min_hits,
                )
                for name, extra in rec.extras.items():
                    values[name] = extra.detach().cpu().numpy().astype(np.float64)
                values["Time_scoring"] = np.full(b, t_score / b)
                values["Time_aggregation"] = np.full(b, t_agg / b)
                values["Time"] = values["Time_scoring"] + values["Time_aggregation"]
                metric_parts[strategy.name].append(values)
                rec_parts[strategy.name].append(recs)
    results = {}
    for name in names:
        per_group = pd.DataFrame({"group": group_ids.astype(np.int32)})
        for col in metric_parts[name][0]:
            per_group[col] = np.concatenate([p[col] for p in metric_parts[name]])
        recs = np.concatenate(rec_parts[name]) if rec_parts[name] else np.zeros((0, settings.k), np.int64)
        results[name] = StrategyResult(per_group, recommendations_frame(recs, group_ids))
    return results


def recommendations_frame(recs: np.ndarray, group_ids: np.ndarray) -> pd.DataFrame:
    """Long form ``group, rank, item`` (rank 0-based; padding ``-1`` dropped)."""
    g, k = recs.shape
    frame = pd.DataFrame(
        {
            "group": np.repeat(np.asarray(group_ids, dtype=np.int32), k),
            "rank": np.tile(np.arange(k, dtype=np.int16), g),
            "item": recs.reshape(-1).astype(np.int32),
        }
    )
    return frame[frame["item"] >= 0].reset_index(drop=True)


# ----------------------------------------------------------------------------- MLflow params
def paper_group_type(groupset: str) -> str:
    """The research code's ``group_type``: sim / div / random / outlier (opposing 2-1) / opposing_a-b."""
    from sagea.plan import PAPER_GROUP_NAMES, parse_group_set

    if groupset in PAPER_GROUP_NAMES:
        return PAPER_GROUP_NAMES[groupset]
    kind, sizes = parse_group_set(groupset)
    if kind == "opposing":
        return "outlier" if sizes == [2, 1] else groupset
    return {"similar": "sim", "divergent": "div", "random": "random"}[kind]


def research_note(reconstruction_loss: str, topk_inference: bool, normalize: bool) -> str:
    """The research notebooks' ``note`` (seed 000): ``sizes_L2_with_acts[_normalized]``.

    "with acts" = TopK kept at inference; L2 / Cosine = the SAE's reconstruction loss.
    """
    loss = {"l2": "L2", "cosine": "Cosine"}.get(reconstruction_loss, reconstruction_loss)
    note = f"sizes_{loss}_{'with' if topk_inference else 'without'}_acts"
    return note + ("_normalized" if normalize else "")


def run_params(
    dataset: str,
    strategy: str,
    fusion: str | None,
    pool: str,
    groupset: str,
    group_size: int,
    embedding_dim: int,
    top_k: int | None,
    note: str,
    topk_inference: bool | None = None,
    normalize_users_embeddings: bool | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The research code's MLflow parameters of one evaluation (docs/method.md §5).

    ``group_type`` keeps the research names (``sim``, ``div``, ``random``, ``outlier``), which do
    not say the size; ``group_set`` (``similar_5``), ``group_kind`` and ``group_size`` do.
    """
    from sagea.plan import parse_group_set

    kind, sizes = parse_group_set(groupset)
    params: dict[str, object] = {
        "dataset": dataset,
        "recommender_strategy": strategy,
        "SAE_fusion_strategy": fusion if fusion is not None else "None",
        "group_type": paper_group_type(groupset),
        "group_size": group_size,
        "embedding_dim": embedding_dim,
        "top_k": top_k if top_k is not None else "None",
        "note": note,
        "topk_inference": topk_inference if topk_inference is not None else "None",
        "normalize_users_embeddings": normalize_users_embeddings if normalize_users_embeddings is not None else "None",
        "group_set": groupset,
        "group_kind": kind,
        "user_set": pool,
    }
    if kind == "opposing":
        params["subgroup_sizes"] = "-".join(map(str, sizes))
    params.update(extra or {})
    return params


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


def write_strategy_outputs(
    result: StrategyResult, out_dir: str | os.PathLike, params: Mapping, k: int, item_ids: np.ndarray | None = None
) -> dict:
    """Write ``per_group.parquet``, ``recommendations.parquet``, ``summary.json``; returns the summary.

    ``item_ids``: original item id of each item index (``items.parquet``), written to the lists as
    column ``original_id``.
    """
    from sagea.io import write_json, write_parquet

    out = Path(out_dir)
    check_per_group(result.per_group, result.recommendations, out / "per_group.parquet")
    write_parquet(result.per_group, out / "per_group.parquet")
    recommendations = result.recommendations
    if item_ids is not None:
        ids = np.asarray(item_ids).astype(str)[recommendations["item"].to_numpy()]
        recommendations = recommendations.assign(original_id=ids)
    write_parquet(recommendations, out / "recommendations.parquet")
    summary = {"params": dict(params), "n_groups": len(result.per_group), "metrics": mlflow_metrics(result.per_group, k)}
    write_json(summary, out / "summary.json")
    result.summary = summary
    return summary


def log_summary(
    tracking_uri: str,
    dataset: str,
    run_name: str,
    summary: Mapping,
    artifacts: Sequence = (),
    *,
    key: str | None = None,
    start_time: float | None = None,
    provenance=None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """One MLflow run in ``GR_<dataset>`` with the summary's params (plus the provenance's group
    sampling settings) and metrics; ``key`` replaces an earlier run of the same output folder."""
    from sagea.tracking import log_run

    params = {**summary["params"], **(dict(provenance.group_params) if provenance is not None else {})}
    return log_run(
        tracking_uri, f"GR_{dataset}", run_name, params, summary["metrics"], artifacts=artifacts,
        tags={"sagea.stage": "evaluate", **dict(tags or {})}, key=key, start_time=start_time, provenance=provenance,
    )
