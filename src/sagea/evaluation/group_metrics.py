"""Per-group metrics of group recommendation lists, batched over groups (docs/method.md §5).

Inputs for a chunk of B groups of m members: ``recs [B, k]`` (item indices, ``-1`` = padding,
never relevant), member ``targets [B, m, I]`` and ``common [B, I]`` (items every member holds
out). Column names follow the research code with ``K`` = k (``NDCG20_com`` for k = 20):

- ``NDCG{K}_com``, ``P{K}_com``, ``R{K}_com``, ``Hit{K}_com``: against the common targets.
- ``NDCG{K}_mean|min|max``, ``P{K}_…``, ``R{K}_…``, ``Hit{K}_…``: per-member values against each
  member's own targets, then mean / min / max over members.
- ``NDCG{K}_min_mean`` = min/mean, ``NDCG{K}_min_max`` = min/max, ``NDCG{K}_jain`` =
  ``(Σ_u n_u)² / (m Σ_u n_u²)`` (Jain's fairness index) of the member NDCGs ``n_u``. Where every
  member scores 0 the ratios are 0/0; by convention each then takes the worst value of its
  range — min/mean = min/max = 0 (the research code's min/mean, defect 12), Jain = 1/m — so
  every group has a value and every approach is averaged over the same groups, and an approach
  gains no fairness by serving nobody (docs/metrics.md).
- ``ZeroRecall``: share of members with no relevant item in the list.
- ``MProportionality``: share of members with at least m of their personal top-N in the list.
- ``Popularity``: mean over the list of ``freq(i) / max_j freq(j)``.
- ``RecommendationsSimilarity``: mean pairwise cosine of the ELSA item rows of the list.
- ``GT_group`` = |common targets|, ``GT_user`` = Σ_u |targets_u| (the *sum* over members, as the
  research code logs it, defect 11), ``GT_user_mean`` = the mean over members, ``Candidates`` =
  items not seen by the group.

Recall uses ``min(k, |targets|)`` as denominator; hit rate needs ``min_hits`` relevant items
(1; the research code's 2 is defect 1). Lists or members without targets score 0.
"""

from __future__ import annotations

import numpy as np

from sagea.evaluation import metrics


def list_hits(recs: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """``hits[..., j]`` = ``recs[:, j]`` is relevant; ``relevant`` is ``[B, I]`` or ``[B, m, I]``."""
    valid = recs >= 0
    idx = np.clip(recs, 0, None)
    if relevant.ndim == 2:
        return np.take_along_axis(relevant, idx, axis=1) & valid
    b, m, _ = relevant.shape
    hits = np.take_along_axis(relevant, np.broadcast_to(idx[:, None, :], (b, m, idx.shape[1])), axis=2)
    return hits & valid[:, None, :]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def jain_index(values: np.ndarray) -> np.ndarray:
    """Jain's index over the last axis: ``(Σ x)² / (n Σ x²)``; ``1/n`` (its minimum) when all values are 0."""
    n = values.shape[-1]
    return np.nan_to_num(_ratio(values.sum(-1) ** 2, n * (values**2).sum(-1)), nan=1.0 / n)


def _ratio_or_zero(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``, 0 where ``den`` is 0 (the min/mean and min/max convention)."""
    return np.nan_to_num(_ratio(num, den), nan=0.0)


def recommendation_similarity(recs: np.ndarray, item_unit: np.ndarray) -> np.ndarray:
    """Mean pairwise cosine of the list's items (``item_unit``: L2-normalised item rows ``[I, d]``)."""
    valid = recs >= 0
    emb = item_unit[np.clip(recs, 0, None)] * valid[..., None]
    sims = np.einsum("bkd,bjd->bkj", emb, emb)
    pair = valid[:, :, None] & valid[:, None, :]
    pair &= np.triu(np.ones((recs.shape[1],) * 2, dtype=bool), 1)[None]
    return _ratio((sims * pair).sum((1, 2)), pair.sum((1, 2)).astype(np.float64))


def group_metrics(
    recs: np.ndarray,
    targets: np.ndarray,
    common: np.ndarray,
    k: int,
    seen: np.ndarray,
    popularity: np.ndarray,
    item_unit: np.ndarray,
    personal_top: np.ndarray | None = None,
    m_prop: int = 1,
    min_hits: int = 1,
) -> dict[str, np.ndarray]:
    """Every per-group metric (see module doc) as ``{column: [B]}``.

    ``seen [B, I]``: the union of the members' inputs; ``popularity [I]``: item frequencies;
    ``personal_top [B, m, N]``: each member's own top-N (for m-proportionality).
    """
    recs = np.asarray(recs)
    hits_c = list_hits(recs, common)  # [B, k]
    hits_u = list_hits(recs, targets)  # [B, m, k]
    b, m, _ = hits_u.shape
    n_c = common.sum(-1)
    n_u = targets.sum(-1)  # [B, m]
    flat = hits_u.reshape(b * m, -1)
    ndcg_u = metrics.ndcg(flat, n_u.reshape(-1)).reshape(b, m)
    prec_u = metrics.precision(flat).reshape(b, m)
    rec_u = metrics.recall(flat, n_u.reshape(-1)).reshape(b, m)
    hit_u = metrics.hit_rate(flat, min_hits).reshape(b, m)
    K = k
    out: dict[str, np.ndarray] = {
        f"NDCG{K}_com": metrics.ndcg(hits_c, n_c),
        f"NDCG{K}_mean": ndcg_u.mean(1),
        f"NDCG{K}_min": ndcg_u.min(1),
        f"NDCG{K}_max": ndcg_u.max(1),
    }
    out[f"NDCG{K}_min_mean"] = _ratio_or_zero(out[f"NDCG{K}_min"], out[f"NDCG{K}_mean"])
    out[f"NDCG{K}_min_max"] = _ratio_or_zero(out[f"NDCG{K}_min"], out[f"NDCG{K}_max"])
    out[f"NDCG{K}_jain"] = jain_index(ndcg_u)
    for name, com, per in (
        ("P", metrics.precision(hits_c), prec_u),
        ("R", metrics.recall(hits_c, n_c), rec_u),
        ("Hit", metrics.hit_rate(hits_c, min_hits), hit_u),
    ):
        out[f"{name}{K}_com"] = com
        out[f"{name}{K}_mean"] = per.mean(1)
        out[f"{name}{K}_min"] = per.min(1)
    out["ZeroRecall"] = (hits_u.sum(-1) == 0).mean(1)
    if personal_top is not None:
        in_list = (personal_top[..., :, None] == recs[:, None, None, :]) & (personal_top[..., None] >= 0)
        out["MProportionality"] = (in_list.any(-1).sum(-1) >= m_prop).mean(1)
    valid = recs >= 0
    top = popularity.max() if popularity.size and popularity.max() > 0 else 1.0
    pop = (popularity[np.clip(recs, 0, None)] / top) * valid
    out["Popularity"] = _ratio(pop.sum(1), valid.sum(1).astype(np.float64))
    out["RecommendationsSimilarity"] = recommendation_similarity(recs, item_unit)
    out["GT_group"] = n_c.astype(np.float64)
    out["GT_user"] = n_u.sum(1).astype(np.float64)
    out["GT_user_mean"] = n_u.mean(1)
    out["Candidates"] = (~seen).sum(-1).astype(np.float64)
    return out


def mlflow_metrics(per_group: "pd.DataFrame", k: int) -> dict[str, float]:  # noqa: F821
    """Means over groups under the research code's MLflow names (NaN-aware).

    ``NDCG{K}_com`` is also logged as ``CommonItemsNDCG{K}/mean``, the per-group member mean /
    min / min:mean as ``NDCG{K}/mean``, ``NDCG{K}/min``, ``NDCG{K}/min:mean``; the com/min
    precision, recall, hit rate and the counts keep their names; the SAGEA flag
    ``ZeroFusedCode`` (0/1) is logged as ``ZeroFusedCode/share``; every other column ``c`` is
    logged as ``c/mean`` (``Popularity/mean``, ``Time/mean``, ...).
    """
    K = k
    means = {c: float(np.nanmean(per_group[c].to_numpy(dtype=np.float64))) if per_group[c].notna().any() else float("nan")
             for c in per_group.columns if c != "group"}
    out: dict[str, float] = {}
    keep = {f"{n}{K}_{v}" for n in ("NDCG", "P", "R", "Hit") for v in ("com", "min")} | {"GT_group", "GT_user", "GT_user_mean", "Candidates"}
    for col, value in means.items():
        out[col if col in keep else f"{col}/mean"] = value
    alias = {
        f"NDCG{K}_com": f"CommonItemsNDCG{K}/mean",
        f"NDCG{K}_mean": f"NDCG{K}/mean",
        f"NDCG{K}_min": f"NDCG{K}/min",
        f"NDCG{K}_min_mean": f"NDCG{K}/min:mean",
        "ZeroFusedCode": "ZeroFusedCode/share",
    }
    for col, name in alias.items():
        if col in means:
            out[name] = means[col]
    out.pop(f"NDCG{K}_mean/mean", None)
    out.pop(f"NDCG{K}_min_mean/mean", None)
    out.pop("ZeroFusedCode/mean", None)
    return out
