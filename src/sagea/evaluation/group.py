"""Batched group evaluation: split, recommend with every strategy, measure, write, log.

For each chunk of ``batch_groups`` groups: the group split (docs/method.md §5, via
:mod:`sagea.data.splits`) gives member inputs/targets ``[B, m, I]``; every strategy
recommends k items with its two timed phases (``score`` shared by strategies with the same
``score_key``, then ``aggregate``), and :func:`~sagea.evaluation.group_metrics.group_metrics`
measures the lists. Outputs per strategy: ``per_group`` (one row per group) and
``recommendations`` (group, rank, item) frames. Writing them is :mod:`sagea.evaluation.outputs`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from sagea.data.splits import common_targets, group_split, group_target_masks
from sagea.evaluation.group_metrics import group_metrics
from sagea.recommenders.base import GroupRecommender
from sagea.scoring import exclude, member_elsa_scores, stable_topk, unit_rows

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
    popularity_with_targets: bool = False  # defect 4: read by the stage when counting popularity


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
