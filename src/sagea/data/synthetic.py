"""Deterministic synthetic implicit feedback with planted taste clusters (the embedded default).

Model: ``n_clusters`` taste clusters; every item belongs to exactly one cluster and has a
Zipf–Mandelbrot popularity inside it (weight ``(rank + zipf_offset)^-zipf_exponent``; offset 0 is
plain Zipf, a positive offset flattens the head so that no item is held by nearly every user);
every user likes ``m_u ~ U{1..max}`` distinct clusters mixed with Dirichlet(1) weights; the user's
activity is log-normal (``exp(N(0, activity_sigma))`` scaled so the total matches
``n_interactions``). Each draw picks, with probability ``noise``, a uniformly random item, otherwise
a cluster from the user's mix and an item from the cluster's distribution; with probability
``mainstream`` the item comes instead from one global Zipf–Mandelbrot popularity over all items
(the blockbusters every taste shares, which real data has and which lets users of different
clusters hold items in common). Duplicate draws collapse; missing pairs are topped up in a few
extra rounds. Everything is vectorised over draws, so ML-32M scale (16M pairs) takes seconds. The
planted clusters are returned as ground truth.

The defaults are calibrated on real MovieLens (ml-latest-small, ratings >= 4, 50 / 20 minimum
interactions per user / item): density, activity and popularity spread, items shared by random
users and common held-out items of random groups (docs/synthetic.md,
``benchmarks/synthetic_calibration.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sagea.data.raw import sorted_unique

log = logging.getLogger(__name__)


@dataclass
class SyntheticData:
    """Generated pairs (original ids = generator indices) and the planted ground truth."""

    interactions: pd.DataFrame  # user int64, item int64 (generator indices), unique pairs
    item_cluster: np.ndarray  # [n_items] int32
    user_clusters: list[np.ndarray]  # per user, its planted clusters (most weighted first)
    user_main_cluster: np.ndarray  # [n_users] int32


def generate(
    n_users: int = 3000,
    n_items: int = 520,
    n_interactions: int = 240_000,
    n_clusters: int = 12,
    max_clusters_per_user: int = 5,
    zipf_exponent: float = 2.0,
    activity_sigma: float = 1.0,
    noise: float = 0.1,
    mainstream: float = 0.2,
    zipf_offset: float = 20.0,
    seed: int = 42,
    max_rounds: int = 6,
) -> SyntheticData:
    """Generate about ``n_interactions`` unique (user, item) pairs; same arguments, same output."""
    if zipf_offset < 0:
        raise ValueError(f"synthetic.zipf_offset ({zipf_offset}) must be >= 0")
    if n_clusters > n_items:
        raise ValueError(f"synthetic.n_clusters ({n_clusters}) must not exceed synthetic.n_items ({n_items})")
    if n_interactions > n_users * n_items * 0.5:
        raise ValueError(
            f"synthetic.n_interactions ({n_interactions}) is more than half of n_users*n_items "
            f"({n_users}*{n_items}); raise n_users/n_items or lower n_interactions"
        )
    rng = np.random.default_rng(seed)
    max_m = min(max_clusters_per_user, n_clusters)

    # items: balanced random cluster assignment, Zipf weight by rank inside the cluster
    item_cluster = rng.permutation(np.arange(n_items) % n_clusters).astype(np.int32)
    order = np.argsort(item_cluster, kind="stable")  # items grouped by cluster
    sizes = np.bincount(item_cluster, minlength=n_clusters)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.arange(n_items) - np.repeat(starts, sizes) + 1  # 1-based rank within cluster
    weight = (rank.astype(np.float64) + zipf_offset) ** -zipf_exponent
    csum = np.cumsum(weight)
    cluster_total = np.add.reduceat(weight, starts)
    within_cdf = (csum - np.repeat(csum[starts] - weight[starts], sizes)) / np.repeat(cluster_total, sizes)
    # global key: cluster c occupies (c, c+1]; an item is found by searchsorted(c + u)
    global_cdf = np.repeat(np.arange(n_clusters), sizes) + within_cdf
    global_cdf[np.cumsum(sizes) - 1] = np.arange(1, n_clusters + 1)  # exact right edges

    # users: m_u distinct clusters (random argsort per user), Dirichlet(1) mix, log-normal activity
    m = rng.integers(1, max_m + 1, size=n_users)
    chosen = np.argsort(rng.random((n_users, n_clusters)), axis=1)[:, :max_m].astype(np.int32)
    mix = rng.exponential(size=(n_users, max_m)) * (np.arange(max_m)[None, :] < m[:, None])
    mix /= mix.sum(axis=1, keepdims=True)
    # sort each user's clusters by weight so column 0 is the main cluster
    by_weight = np.argsort(-mix, axis=1, kind="stable")
    mix = np.take_along_axis(mix, by_weight, axis=1)
    chosen = np.take_along_axis(chosen, by_weight, axis=1)
    mix_cdf = np.cumsum(mix, axis=1)
    mix_cdf[:, -1] = 1.0
    # global popularity: Zipf over a seeded permutation of all items
    global_order = rng.permutation(n_items)
    global_cum = np.cumsum((np.arange(1, n_items + 1, dtype=np.float64) + zipf_offset) ** -zipf_exponent)
    global_cum /= global_cum[-1]
    activity = rng.lognormal(0.0, activity_sigma, size=n_users)
    activity /= activity.sum()

    def draw(n_draws: int) -> np.ndarray:
        users = rng.choice(n_users, size=n_draws, p=activity)
        slot = (rng.random(n_draws)[:, None] > mix_cdf[users]).sum(axis=1)
        cluster = chosen[users, np.minimum(slot, max_m - 1)]
        pos = np.searchsorted(global_cdf, cluster + rng.random(n_draws), side="right")
        items = order[np.minimum(pos, n_items - 1)]
        kind = rng.random(n_draws)
        is_main = kind < mainstream
        picks = np.searchsorted(global_cum, rng.random(int(is_main.sum())), side="right")
        items[is_main] = global_order[np.minimum(picks, n_items - 1)]
        is_noise = (kind >= mainstream) & (kind < mainstream + noise)
        items[is_noise] = rng.integers(0, n_items, size=int(is_noise.sum()))
        return users.astype(np.int64) * n_items + items

    keys = sorted_unique(draw(n_interactions))
    rate = len(keys) / n_interactions  # share of draws that are new pairs
    for _ in range(max_rounds):
        missing = n_interactions - len(keys)
        if missing <= 0:
            break
        n_draws = int(1.1 * missing / max(rate, 0.05)) + 16
        new = sorted_unique(np.concatenate([keys, draw(n_draws)]))
        rate = max((len(new) - len(keys)) / n_draws, 1e-3)
        keys = new
    if len(keys) > n_interactions:  # drop a seeded random surplus, keep sorted order
        drop = rng.choice(len(keys), size=len(keys) - n_interactions, replace=False)
        keys = np.delete(keys, drop)
    log.info("synthetic: %d users x %d items, %d unique pairs", n_users, n_items, len(keys))

    interactions = pd.DataFrame({"user": keys // n_items, "item": keys % n_items})
    # per-user cluster lists without a Python loop: split the flattened valid entries
    flat = chosen[np.arange(max_m)[None, :] < m[:, None]]
    user_clusters = np.split(flat, np.cumsum(m)[:-1])
    return SyntheticData(
        interactions=interactions,
        item_cluster=item_cluster,
        user_clusters=user_clusters,
        user_main_cluster=chosen[:, 0].astype(np.int32),
    )
