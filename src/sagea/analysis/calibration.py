"""Statistics of a prepared 0/1 interaction matrix that shape a group-recommendation study.

An analysis above every stage (it draws groups and fits single-user baselines), so it lives
outside ``sagea.data``.

Used to calibrate the synthetic generator against real data (docs/synthetic.md,
``benchmarks/synthetic_calibration.py``): size and density, how activity and popularity are
spread, how many items random users share, and how many items random groups have held out by
every member under the group evaluation split (the ``groups.common_interactions`` filter).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from sagea.data.prepare import gini

#: Quantiles reported for the interactions per user and per item.
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def _binary_csr(rows: sp.spmatrix) -> sp.csr_matrix:
    rows = sp.csr_matrix(rows, dtype=np.float32, copy=True)
    rows.sum_duplicates()
    rows.eliminate_zeros()
    rows.data[:] = 1.0
    return rows


def distribution(counts: np.ndarray, quantiles: tuple[float, ...] = QUANTILES) -> dict[str, float]:
    """``min``, ``mean``, ``max`` and the ``q10``/``q25``/``q50``/... quantiles (linear interpolation)."""
    counts = np.asarray(counts, dtype=np.float64)
    if len(counts) == 0:
        return {"min": 0.0, "mean": 0.0, "max": 0.0, **{f"q{round(q * 100)}": 0.0 for q in quantiles}}
    values = np.quantile(counts, quantiles)
    return {
        "min": float(counts.min()),
        "mean": float(counts.mean()),
        "max": float(counts.max()),
        **{f"q{round(q * 100)}": float(v) for q, v in zip(quantiles, values)},
    }


def random_sets(n_users: int, n_sets: int, size: int, seed: int | list[int] = 42) -> np.ndarray:
    """``[n_sets, size]`` uniformly random sets of distinct users (rows with a repeat are redrawn)."""
    if size > n_users:
        raise ValueError(f"cannot draw sets of {size} distinct users from {n_users} users")
    rng = np.random.default_rng(seed)
    sets = rng.integers(0, n_users, size=(n_sets, size))
    while True:
        ordered = np.sort(sets, axis=1)
        bad = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
        if len(bad) == 0:
            return sets
        sets[bad] = rng.integers(0, n_users, size=(len(bad), size))


def shared_items(rows: sp.csr_matrix, pairs: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """``|items(u) ∩ items(v)|`` for each row ``(u, v)`` of ``pairs``."""
    rows = _binary_csr(rows)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    out = np.zeros(len(pairs), dtype=np.int64)
    for lo in range(0, len(pairs), chunk):
        part = pairs[lo : lo + chunk]
        both = rows[part[:, 0]].multiply(rows[part[:, 1]])
        out[lo : lo + chunk] = np.asarray(both.sum(axis=1)).ravel().astype(np.int64)
    return out


def popularity_rank(item_counts: np.ndarray) -> np.ndarray:
    """Rank of every item by interaction count, 0 = most popular (ties by item index, as a stable sort)."""
    order = np.argsort(-np.asarray(item_counts), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def dataset_statistics(
    rows: sp.spmatrix,
    *,
    n_pairs: int = 20_000,
    n_groups: int = 2_000,
    group_size: int = 3,
    target_ratio: float = 0.5,
    common_interactions: int = 5,
    top_items: int = 20,
    seed: int = 42,
) -> dict[str, Any]:
    """Statistics of the user x item matrix ``rows`` (any non-zero = an interaction).

    - ``counts``: users, items, interactions, density = interactions / (users * items).
    - ``per_user`` / ``per_item``: :func:`distribution` of the interaction counts;
      ``per_user_share``: the same for each user's count divided by the number of items.
    - ``item_popularity_gini``, ``user_activity_gini``: Gini of the counts;
      ``top_decile_share``: share of all interactions on the 10% most popular items.
    - ``pairs``: items shared by ``n_pairs`` random pairs of distinct users: mean, median and the
      shares of pairs sharing at least 1 and at least 5 items.
    - ``groups``: ``n_groups`` random groups of ``group_size`` distinct users; ``common`` = items
      every member holds, ``common_targets`` = items held out by every member under the group
      evaluation split (a mask of ``target_ratio`` of the items per group, seeded by ``seed`` and
      the members, the call the sampling filter and the evaluation make); ``share_passing`` = share
      with more than ``common_interactions`` common held-out items (groups the filter keeps),
      ``share_gt5`` the same for the paper's value 5;
      ``targets_top_share`` = share of all common held-out items that are among the ``top_items``
      most popular items, ``targets_mean_rank_share`` = their mean popularity rank / items
      (0 = the most popular item).
    Deterministic in ``seed``.
    """
    from sagea.data.splits import common_targets, group_split, group_target_masks
    from sagea.groups.filters import common_items

    rows = _binary_csr(rows)
    n_users, n_items = rows.shape
    user_counts = np.diff(rows.indptr)
    item_counts = np.bincount(rows.indices, minlength=n_items)
    n_inter = int(rows.nnz)
    top = np.sort(item_counts)[::-1][: max(1, int(np.ceil(0.1 * n_items)))]
    stats: dict[str, Any] = {
        "counts": {
            "users": int(n_users),
            "items": int(n_items),
            "interactions": n_inter,
            "density": n_inter / (n_users * n_items) if n_users and n_items else 0.0,
        },
        "per_user": distribution(user_counts),
        "per_user_share": distribution(user_counts / max(n_items, 1)),
        "per_item": distribution(item_counts),
        "item_popularity_gini": gini(item_counts),
        "user_activity_gini": gini(user_counts),
        "top_decile_share": float(top.sum() / n_inter) if n_inter else 0.0,
    }
    pairs = random_sets(n_users, n_pairs, 2, seed=[seed, 1])
    shared = shared_items(rows, pairs)
    stats["pairs"] = {
        "n": int(n_pairs),
        "mean": float(shared.mean()),
        "median": float(np.median(shared)),
        "share_ge1": float((shared >= 1).mean()),
        "share_ge5": float((shared >= 5).mean()),
    }
    groups = random_sets(n_users, n_groups, group_size, seed=[seed, 2])
    common = common_items(rows, groups)
    # the calls of the sampling filter (groups.filters.count_common_targets) and the evaluation,
    # keeping which items are common targets for the popularity statistics
    rank = popularity_rank(item_counts)
    n_targets = np.zeros(n_groups, dtype=np.int64)
    top_hits, rank_sum, total = 0, 0.0, 0
    chunk = max(1, int(64 * 2**20 // max(1, group_size * n_items * 8)))
    for lo in range(0, n_groups, chunk):
        part = groups[lo : lo + chunk]
        _, targets = group_split(rows, part, group_target_masks(part, n_items, target_ratio, seed))
        is_common = common_targets(targets)
        n_targets[lo : lo + chunk] = is_common.sum(axis=1)
        items = np.nonzero(is_common)[1]
        top_hits += int((rank[items] < top_items).sum())
        rank_sum += float(rank[items].sum())
        total += len(items)
    stats["groups"] = {
        "n": int(n_groups),
        "size": int(group_size),
        "target_ratio": float(target_ratio),
        "common_interactions": int(common_interactions),
        "common_mean": float(common.mean()),
        "common_median": float(np.median(common)),
        "common_targets_mean": float(n_targets.mean()),
        "common_targets_median": float(np.median(n_targets)),
        "share_any": float((n_targets >= 1).mean()),
        "share_passing": float((n_targets > common_interactions).mean()),
        "share_gt5": float((n_targets > 5).mean()),  # the paper's filter, whatever common_interactions is
        "top_items": int(top_items),
        "targets_top_share": top_hits / total if total else 0.0,
        "targets_mean_rank_share": rank_sum / total / n_items if total else 0.0,
    }
    return stats


def flatten(stats: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"pairs.mean": ..., "groups.share_passing": ...}``: one level, dotted keys."""
    flat: dict[str, float] = {}
    for key, value in stats.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def popularity_vs_personal(
    rows: sp.spmatrix,
    *,
    folds: int = 5,
    ease_lambda: float = 200.0,
    target_fraction: float = 0.2,
    k: int = 20,
    seed: int = 42,
) -> dict[str, float]:
    """How much of a user's held-out items a personal model finds beyond popularity.

    Users are cut into ``folds`` seeded folds; each fold in turn is held out (``target_fraction``
    of each user's items become targets, the single-user split of the study) while POP and EASE
    (``ease_lambda``) are fitted on the other users. Returns the mean ``NDCG@k`` of both over the
    folds and ``ratio`` = EASE / POP: about 1 when tastes carry no signal beyond popularity.
    """
    from sagea.evaluation.single_user import evaluate_scorer, single_user_split
    from sagea.recommenders.user_baselines import ease_scorer, pop_scorer

    rows = _binary_csr(rows)
    n_users = rows.shape[0]
    if n_users < 2 * folds:
        raise ValueError(f"{n_users} users are too few for {folds} folds")
    fold_of = np.empty(n_users, dtype=np.int64)
    fold_of[np.random.default_rng(seed).permutation(n_users)] = np.arange(n_users) % folds
    pop, ease = [], []
    for fold in range(folds):
        test = np.flatnonzero(fold_of == fold)
        train = rows[np.flatnonzero(fold_of != fold)]
        inputs, targets = single_user_split(rows, test, target_fraction, seed)
        pop.append(evaluate_scorer(pop_scorer(train), inputs, targets, k=k)[f"NDCG{k}"])
        ease.append(evaluate_scorer(ease_scorer(train, ease_lambda), inputs, targets, k=k)[f"NDCG{k}"])
    pop_ndcg, ease_ndcg = float(np.mean(pop)), float(np.mean(ease))
    return {"POP": pop_ndcg, "EASE": ease_ndcg, "ratio": ease_ndcg / pop_ndcg if pop_ndcg else float("nan")}


def prepared_matrix(spec: dict[str, Any], raw_path: str | None = None, name: str = "dataset") -> sp.csr_matrix:
    """The 0/1 matrix ``prepare`` would write for one ``config['datasets']`` entry (in memory)."""
    from sagea.data.matrix import interactions_to_csr
    from sagea.data.prepare import prepare_interactions, resolve_filter
    from sagea.data.sources import load_raw

    raw = load_raw(name, spec, raw_path)
    prepared = prepare_interactions(raw, *resolve_filter(spec["source"], spec.get("filter")), name=name)
    return interactions_to_csr(prepared.interactions, len(prepared.users), len(prepared.items))


#: Calibration bands of the synthetic default against real MovieLens: statistic (dotted key of
#: :func:`flatten`) -> (kind, width). ``rel``: |synthetic / real - 1| <= width; ``abs``:
#: |synthetic - real| <= width. Sizes (users, items) are free; everything that shapes the
#: group evaluation is banded.
CALIBRATION_BANDS: dict[str, tuple[str, float]] = {
    "counts.density": ("rel", 0.25),
    "per_user.q25": ("rel", 0.35),
    "per_user.q50": ("rel", 0.25),
    "per_user.q75": ("rel", 0.35),
    "per_user.q90": ("rel", 0.25),
    "item_popularity_gini": ("abs", 0.1),
    "user_activity_gini": ("abs", 0.1),
    "top_decile_share": ("abs", 0.05),
    "per_item_max_share": ("abs", 0.15),
    "pairs.mean": ("rel", 0.25),
    "pairs.median": ("rel", 0.3),
    "pairs.share_ge1": ("abs", 0.05),
    "pairs.share_ge5": ("abs", 0.1),
    "groups.common_targets_mean": ("rel", 0.3),
    "groups.share_any": ("abs", 0.1),
    "groups.share_passing": ("rel", 0.5),
    "groups.targets_top_share": ("abs", 0.2),
    "groups.targets_mean_rank_share": ("rel", 0.5),
    "signal.ratio": ("rel", 0.25),
}


def within_band(statistic: str, real: float, synthetic: float, bands: dict = CALIBRATION_BANDS) -> bool | None:
    """Whether ``synthetic`` lies in the band of ``statistic`` around ``real`` (None: not banded)."""
    if statistic not in bands:
        return None
    kind, width = bands[statistic]
    if kind == "rel":
        return bool(abs(synthetic / real - 1) <= width) if real else bool(synthetic == 0)
    return bool(abs(synthetic - real) <= width)


def calibration_statistics(rows: sp.spmatrix, *, signal: bool = True, **kwargs: Any) -> dict[str, float]:
    """:func:`dataset_statistics` flattened, plus ``per_item_max_share`` (the most popular item's
    users / all users) and, with ``signal``, :func:`popularity_vs_personal` as ``signal.*``."""
    flat = flatten(dataset_statistics(rows, **kwargs))
    flat["per_item_max_share"] = flat["per_item.max"] / flat["counts.users"]
    if signal:
        flat.update(flatten(popularity_vs_personal(rows, seed=kwargs.get("seed", 42)), "signal."))
    return flat


def proxy_embeddings(rows: sp.spmatrix, factors: int = 32, seed: int = 42) -> np.ndarray:
    """User embeddings without training a model: ``x V`` with ``V`` the top ``factors`` right
    singular vectors of the matrix (a linear autoencoder's code, the closed-form cousin of ELSA).
    Used to compare group kinds across datasets with the same embedding method."""
    import scipy.sparse.linalg as sla

    rows = _binary_csr(rows).astype(np.float64)
    k = min(factors, min(rows.shape) - 1)
    v0 = np.random.default_rng(seed).random(min(rows.shape))
    _, _, vt = sla.svds(rows, k=k, v0=v0)
    return np.asarray(rows @ vt.T, dtype=np.float32)


def group_kind_statistics(
    rows: sp.spmatrix,
    kinds: dict[str, tuple[int, int]] | None = None,
    *,
    embeddings: np.ndarray | None = None,
    n_groups: int = 1000,
    similar_quantile: float = 0.75,
    divergent_quantile: float = 0.25,
    target_ratio: float = 0.5,
    thresholds: tuple[int, ...] = (0, 1, 5),
    seed: int = 42,
) -> dict[str, dict[str, float]]:
    """Common held-out items of groups grown as the workflow grows them, per group kind.

    ``kinds``: name -> (a, b) sizes as :func:`sagea.groups.grow.grow_groups` takes them
    (default: similar, divergent and random groups of 3, opposing 2 against 1); ``embeddings``:
    user embeddings (default :func:`proxy_embeddings`); the pool is every user. Returns per kind
    the mean number of common held-out items and ``share_gt{c}``, the share of groups with more
    than ``c`` of them (groups ``groups.common_interactions: c`` keeps), before any filtering.
    """
    from sagea.groups.filters import count_common_targets
    from sagea.groups.grow import grow_groups
    from sagea.groups.similarity import estimate_thresholds, normalize_rows

    rows = _binary_csr(rows)
    kinds = kinds or {"similar": (3, 0), "divergent": (3, 0), "random": (3, 0), "opposing": (2, 1)}
    normed = normalize_rows(proxy_embeddings(rows, seed=seed) if embeddings is None else embeddings)
    th = estimate_thresholds(normed, 20_000, similar_quantile, divergent_quantile, seed=seed)
    out: dict[str, dict[str, float]] = {}
    for i, (kind, sizes) in enumerate(kinds.items()):
        members, _, _ = grow_groups(
            normed, kind, sizes, n_groups, th.similar, th.divergent, np.random.default_rng([seed, 3, i])
        )
        counts = count_common_targets(rows, members, target_ratio, seed)
        out[kind] = {"mean": float(counts.mean()), **{f"share_gt{c}": float((counts > c).mean()) for c in thresholds}}
    return out
