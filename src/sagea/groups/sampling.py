"""Synthetic groups from ELSA user embeddings (docs/method.md §4), vectorised over groups.

Similarity of two users is ``sim(u, v) = (cos(e_u, e_v) + 1) / 2`` in [0, 1]. Thresholds are
quantiles of ``sim`` over random non-self pairs of the pool: ``Td`` (similar) and ``Ts``
(divergent). A group *attempt* follows the research code (seed notebook 001) exactly:

* start from a uniformly random pool user;
* draw candidates uniformly from the pool users not yet in the group; accept the first one
  whose mean similarity to the current members passes the kind's rule:
  ``similar``: mean >= Td; ``divergent``: mean <= Ts; ``random``: always;
  ``opposing (a, b)``: the subgroup to grow alternates with every draw (subgroup 1 first,
  a full subgroup is skipped), and the candidate must have mean >= Td to that subgroup's
  members and mean <= Ts to the other subgroup's (an empty subgroup imposes nothing);
* after ``max_draws`` draws without completing the group, the attempt is abandoned and a new
  one starts (a *restart*).

Many attempts run side by side: every step proposes a block of candidates per unfinished
group, computes their similarities to the members in one batched product of normalised
embeddings (never a pool x pool matrix) and takes, per group, the first acceptable candidate
in draw order; draws after it are discarded, which leaves the distribution of the sequential
process unchanged because draws are independent. Each row runs until it completes, so every
output group is distributed exactly like one sequential call of the research code.
Every kind is bounded by ``max_restarts`` and stops early with :class:`GroupSamplingError`
when the observed success rate shows the budget cannot suffice. A group set draws candidate
groups in rounds until enough pass the filters or its budget (``max_candidates``,
``max_seconds``) runs out; the error then reports the measured pass rate and settings that work.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sagea.data.splits import common_targets, group_split, group_target_masks
from sagea.plan import PAPER_GROUP_NAMES, parse_group_set
from sagea.runtime import progress

log = logging.getLogger(__name__)

#: Share of members two groups must have in common to be reported as overlapping (seed 001).
OVERLAP_REPORT_THRESHOLD = 0.3
#: Attempts that must have finished before the success rate is trusted for an early stop.
_MIN_ATTEMPTS_FOR_ESTIMATE = 500


class GroupSamplingError(RuntimeError):
    """A group kind cannot be formed within the configured budget."""


@dataclass(frozen=True)
class Thresholds:
    """``similar`` = Td, ``divergent`` = Ts, estimated on ``n_pairs`` random non-self pairs."""

    similar: float
    divergent: float
    similar_quantile: float
    divergent_quantile: float
    n_pairs: int
    pair_mean: float
    pair_std: float


@dataclass
class GrowStats:
    """Counters of one call of :func:`grow_groups`."""

    groups: int = 0
    attempts: int = 0
    restarts: int = 0
    draws: int = 0
    accepted: int = 0
    steps: int = 0

    @property
    def acceptance_rate(self) -> float:
        """Accepted candidates per draw."""
        return self.accepted / self.draws if self.draws else float("nan")

    def add(self, other: "GrowStats") -> None:
        for name in ("groups", "attempts", "restarts", "draws", "accepted", "steps"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        return {
            "groups": self.groups,
            "attempts": self.attempts,
            "restarts": self.restarts,
            "draws": self.draws,
            "accepted": self.accepted,
            "acceptance_rate": self.acceptance_rate,
            "group_success_rate": self.groups / self.attempts if self.attempts else float("nan"),
            "steps": self.steps,
        }


@dataclass
class GroupSet:
    """A sampled, filtered group set: global user indices ``[n_groups, size]`` and statistics."""

    name: str
    kind: str
    members: np.ndarray
    subgroup: np.ndarray
    n_common_targets: np.ndarray
    similarity: dict[str, np.ndarray]
    summary: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- similarity
def normalize_rows(embeddings: np.ndarray) -> np.ndarray:
    """``e / ||e||`` per row as float32 (an all-zero row stays zero: similarity 0.5 to anyone)."""
    emb = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return (emb / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


def pair_similarity(normed: np.ndarray, left: np.ndarray, right: np.ndarray, block: int = 4096) -> np.ndarray:
    """``(cos + 1) / 2`` of the pairs ``(left[i], right[i])`` of rows of ``normed``, in blocks."""
    out = np.empty(len(left), dtype=np.float32)
    for start in range(0, len(left), block):
        sl = slice(start, start + block)
        out[sl] = (np.einsum("ij,ij->i", normed[left[sl]], normed[right[sl]]) + 1.0) / 2.0
    return out


def estimate_thresholds(
    normed: np.ndarray,
    n_pairs: int = 100_000,
    similar_quantile: float = 0.75,
    divergent_quantile: float = 0.25,
    seed: int = 42,
) -> Thresholds:
    """Td / Ts = quantiles of the similarity of ``n_pairs`` uniformly random pairs ``i != j``."""
    n = len(normed)
    if n < 2:
        raise GroupSamplingError(
            f"the user pool has {n} user(s); at least 2 are needed to estimate thresholds"
        )
    rng = np.random.default_rng([seed, 0x7D])
    left = rng.integers(0, n, size=n_pairs)
    right = rng.integers(0, n - 1, size=n_pairs)
    right += right >= left  # uniform over j != i
    sims = pair_similarity(normed, left, right)
    td, ts = np.quantile(sims.astype(np.float64), [similar_quantile, divergent_quantile])
    return Thresholds(
        similar=float(td),
        divergent=float(ts),
        similar_quantile=similar_quantile,
        divergent_quantile=divergent_quantile,
        n_pairs=int(n_pairs),
        pair_mean=float(sims.mean()),
        pair_std=float(sims.std()),
    )


def group_similarities(
    normed: np.ndarray, groups: np.ndarray, sizes: tuple[int, int]
) -> dict[str, np.ndarray]:
    """Mean pairwise similarity of each group, of each subgroup and between the subgroups.

    ``groups`` holds rows of ``normed`` (subgroup 0 first). Subgroup values are NaN for
    non-opposing sets (``sizes[1] == 0``) and for a subgroup of one member.
    """
    n, size = groups.shape
    emb = np.take(normed, np.asarray(groups, dtype=np.int64), axis=0).astype(np.float64)
    sim = (np.matmul(emb, emb.transpose(0, 2, 1)) + 1.0) / 2.0  # [n, size, size]

    def mean_over(rows: np.ndarray, cols: np.ndarray, upper: bool) -> np.ndarray:
        mask = np.zeros((size, size), dtype=bool)
        mask[np.ix_(rows, cols)] = True
        if upper:
            mask &= np.triu(np.ones((size, size), dtype=bool), k=1)
        if not mask.any():
            return np.full(n, np.nan)
        return sim[:, mask].mean(axis=1)

    a, b = sizes
    everyone = np.arange(size)
    out = {"group_similarity": mean_over(everyone, everyone, upper=True)}
    nan = np.full(n, np.nan)
    if b == 0:
        out.update(subgroup_similarity_0=nan, subgroup_similarity_1=nan, between_similarity=nan)
    else:
        first, second = np.arange(a), np.arange(a, a + b)
        out["subgroup_similarity_0"] = mean_over(first, first, upper=True)
        out["subgroup_similarity_1"] = mean_over(second, second, upper=True)
        out["between_similarity"] = mean_over(first, second, upper=False)
    return out


# ----------------------------------------------------------------------------- growing
def kind_sizes(kind: str, size: list[int] | tuple[int, ...] | int) -> tuple[int, int]:
    """Subgroup sizes ``(a, b)``; ``b == 0`` for the single-subgroup kinds."""
    sizes = [size] if isinstance(size, int) else list(size)
    if kind == "opposing":
        if len(sizes) != 2 or min(sizes) < 1:
            raise ValueError(f"opposing groups need two subgroup sizes >= 1, got {sizes}")
        return int(sizes[0]), int(sizes[1])
    if kind not in ("similar", "divergent", "random"):
        raise ValueError(f"unknown group kind {kind!r}; expected similar, divergent, random or opposing")
    if len(sizes) != 1 or sizes[0] < 2:
        raise ValueError(f"{kind} groups need one size >= 2, got {sizes}")
    return int(sizes[0]), 0


def _impossible(
    kind: str,
    sizes: tuple[int, int],
    stats: GrowStats,
    n_groups: int,
    pool: int,
    td: float,
    ts: float,
    reason: str,
) -> GroupSamplingError:
    name = (
        f"opposing groups {sizes[0]}-{sizes[1]}"
        if kind == "opposing"
        else f"{kind} groups of size {sizes[0]}"
    )
    return GroupSamplingError(
        f"cannot form {name}: {reason}. Seen so far: {stats.groups} of {n_groups} groups "
        f"after {stats.attempts} attempts ({stats.restarts} restarts), candidate acceptance rate "
        f"{stats.acceptance_rate:.2e} over {stats.draws} draws; thresholds Td={td:.4f}, Ts={ts:.4f}; "
        f"pool of {pool} users. To fix: loosen groups.similar_quantile / groups.divergent_quantile, "
        f"use a larger pool (groups.pools, groups.max_pool_users), raise groups.max_draws or "
        f"groups.max_restarts, or ask for fewer groups (groups.final_group_count)."
    )


def grow_groups(
    normed: np.ndarray,
    kind: str,
    sizes: tuple[int, int],
    n_groups: int,
    td: float,
    ts: float,
    rng: np.random.Generator,
    max_draws: int = 1000,
    max_restarts: int = 100_000,
    block_bytes: int = 64 * 2**20,
) -> tuple[np.ndarray, np.ndarray, GrowStats]:
    """Grow ``n_groups`` groups of one kind side by side.

    Returns ``(members, rank, stats)``: pool rows ``[n, a + b]`` with subgroup 0 in the first
    ``a`` columns and subgroup 1 in the last ``b``, and the acceptance rank of each member
    (0 = the start user).
    Raises :class:`GroupSamplingError` when more than ``max_restarts`` restarts would be needed.
    """
    a, b = sizes
    size = a + b
    pool, dim = normed.shape
    if pool < size:
        raise _impossible(
            kind,
            sizes,
            GrowStats(),
            n_groups,
            pool,
            td,
            ts,
            f"the pool has only {pool} users for groups of {size}",
        )
    normed = np.ascontiguousarray(normed, dtype=np.float32)
    stats = GrowStats()
    members = np.full((n_groups, size), -1, dtype=np.int64)
    fill = np.zeros((n_groups, 2), dtype=np.int64)  # members in subgroup 0 / 1
    sums = np.zeros((n_groups, 2, dim), dtype=np.float32)  # sum of member embeddings per subgroup
    rank = np.zeros((n_groups, size), dtype=np.int64)  # acceptance order of each member
    draws = np.zeros(n_groups, dtype=np.int64)  # draws of the current attempt
    parity = np.ones(n_groups, dtype=np.int64)  # research code: draw t grows subgroup t % 2, t from 1
    done = np.zeros(n_groups, dtype=bool)
    cap = np.array([a, b])

    def restart(rows: np.ndarray) -> None:
        members[rows] = -1
        members[rows, 0] = rng.integers(0, pool, size=len(rows))
        sums[rows] = 0.0
        sums[rows, 0] = normed[members[rows, 0]]
        fill[rows] = (1, 0)
        draws[rows] = 0
        parity[rows] = 1
        stats.attempts += len(rows)

    restart(np.arange(n_groups))
    # candidates per row and step: ~1.5 expected acceptances at the observed rate
    block = 1
    bar = progress(total=n_groups, desc=f"{kind} {a}-{b}" if b else f"{kind} {a}", unit="group", leave=False)
    while not done.all():
        active = np.flatnonzero(~done)
        if kind != "random":
            rate = stats.acceptance_rate if stats.draws else 0.25
            block = int(min(max_draws, max(block, 4, math.ceil(1.5 / max(rate, 1e-6)))))
        chunk = max(1, int(block_bytes // (block * dim * 4)))
        for lo in range(0, len(active), chunk):
            _step(
                normed,
                rng,
                active[lo : lo + chunk],
                members,
                rank,
                sums,
                fill,
                draws,
                parity,
                cap,
                kind,
                td,
                ts,
                block,
                max_draws,
                stats,
            )
        stats.steps += 1
        complete = ~done & (fill[:, 0] == a) & (fill[:, 1] == b)
        done |= complete
        stats.groups += int(complete.sum())
        bar.update(int(complete.sum()))
        exhausted = np.flatnonzero(~done & (draws >= max_draws))
        stats.restarts += len(exhausted)
        if len(exhausted):
            restart(exhausted)
        if stats.restarts > max_restarts:
            bar.close()
            raise _impossible(
                kind,
                sizes,
                stats,
                n_groups,
                pool,
                td,
                ts,
                f"more than groups.max_restarts={max_restarts} restarts",
            )
        finished = stats.groups + stats.restarts
        # early rows finish by failing before any can succeed: with no success yet, wait until
        # every row has failed twice on average before trusting the (pessimistic) estimate
        trusted = stats.groups > 0 or stats.restarts >= 2 * n_groups
        if finished >= _MIN_ATTEMPTS_FOR_ESTIMATE and trusted:
            success = max(stats.groups, 1) / finished
            projected = stats.restarts + (n_groups - stats.groups) * (1 - success) / success
            if projected > max_restarts:
                bar.close()
                raise _impossible(
                    kind,
                    sizes,
                    stats,
                    n_groups,
                    pool,
                    td,
                    ts,
                    f"at the observed success rate of {stats.groups}/{finished} attempts "
                    f"about {projected:.3g} restarts would be needed "
                    f"(groups.max_restarts={max_restarts})",
                )
    bar.close()
    return members, rank, stats


def _step(
    normed: np.ndarray,
    rng: np.random.Generator,
    rows: np.ndarray,
    members: np.ndarray,
    rank: np.ndarray,
    sums: np.ndarray,
    fill: np.ndarray,
    draws: np.ndarray,
    parity: np.ndarray,
    cap: np.ndarray,
    kind: str,
    td: float,
    ts: float,
    block: int,
    max_draws: int,
    stats: GrowStats,
) -> None:
    """One block of draws for ``rows``: accept each row's first acceptable candidate, in place.

    The mean similarity of candidate ``c`` to the members ``M`` of a subgroup is linear in the
    members' embeddings: ``mean_m (e_c . e_m + 1) / 2 = (e_c . sum_m e_m / |M| + 1) / 2``, so
    only the running sum of each subgroup's normalised embeddings is kept (``sums [n, 2, d]``).
    """
    pool = normed.shape[0]
    mem = members[rows]  # [B, S], -1 = empty
    n_mem = (mem >= 0).sum(axis=1)
    # uniform over the pool users not in the group: draw in [0, pool - m), skip past sorted members
    cand = rng.integers(0, (pool - n_mem)[:, None], size=(len(rows), block))
    for col in np.sort(np.where(mem >= 0, mem, pool), axis=1).T:
        cand += cand >= col[:, None]
    remaining = max_draws - draws[rows]
    valid = np.arange(block)[None, :] < remaining[:, None]
    f = fill[rows]
    both_open = (f[:, 0] < cap[0]) & (f[:, 1] < cap[1])
    # subgroup grown by each draw: alternating while both are open, else the open one
    target = np.where(
        both_open[:, None],
        (parity[rows][:, None] + np.arange(block)) % 2,
        np.where(f[:, 0] < cap[0], 0, 1)[:, None],
    )
    if kind == "random":
        ok = np.ones_like(valid)
    else:
        n_sub = 2 if kind == "opposing" else 1
        dots = np.matmul(np.take(normed, cand, axis=0), sums[rows, :n_sub].transpose(0, 2, 1))  # [B, C, k]
        has = f[:, None, :n_sub] > 0
        means = (dots / np.maximum(f[:, None, :n_sub], 1) + 1.0) / 2.0
        sim_ok = (means >= td) | ~has  # "similar to" subgroup k (empty: no condition)
        div_ok = (means <= ts) | ~has  # "divergent to" subgroup k
        if kind == "similar":
            ok = sim_ok[..., 0]
        elif kind == "divergent":
            ok = div_ok[..., 0]
        else:  # opposing: similar to the grown subgroup, divergent to the other
            ok = np.where(target == 0, sim_ok[..., 0] & div_ok[..., 1], sim_ok[..., 1] & div_ok[..., 0])
    acc = ok & valid
    has_acc = acc.any(axis=1)
    first = acc.argmax(axis=1)
    used = np.where(has_acc, first + 1, np.minimum(block, remaining))
    stats.draws += int(used.sum())
    stats.accepted += int(has_acc.sum())
    draws[rows] += used
    parity[rows] = np.where(both_open, (parity[rows] + used) % 2, parity[rows])
    hit = np.flatnonzero(has_acc)
    if len(hit):
        r = rows[hit]
        sub = target[hit, first[hit]]
        user = cand[hit, first[hit]]
        slot = np.where(sub == 0, fill[r, 0], cap[0] + fill[r, 1])
        members[r, slot] = user
        rank[r, slot] = fill[r].sum(axis=1)
        sums[r, sub] += normed[user]
        fill[r, sub] += 1


# ----------------------------------------------------------------------------- filters
def unique_group_index(groups: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct member *set*, in original order."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(np.sort(groups, axis=1), axis=0, return_index=True)
    return np.sort(first)


def common_items(rows: sp.csr_matrix, groups: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Number of items every member of a group interacted with, ``|∩_u items(u)|``, per group."""
    groups = np.asarray(groups, dtype=np.int64)
    out = np.zeros(len(groups), dtype=np.int32)
    for lo in range(0, len(groups), chunk):
        part = groups[lo : lo + chunk]
        common = rows[part[:, 0]]
        for col in range(1, part.shape[1]):
            common = common.multiply(rows[part[:, col]])
        out[lo : lo + chunk] = np.asarray((sp.csr_matrix(common) > 0).sum(axis=1)).ravel()
    return out


def count_common_targets(
    rows: sp.csr_matrix,
    groups: np.ndarray,
    target_ratio: float = 0.5,
    seed: int = 42,
    shared_mask: bool = False,
    max_bytes: int = 64 * 2**20,
) -> np.ndarray:
    """Items held out by every member under the group evaluation split, per group.

    The same calls as the evaluation: ``group_target_masks`` + ``group_split`` + ``common_targets``,
    in chunks of groups bounded by ``max_bytes`` of dense member rows.
    """
    groups = np.asarray(groups, dtype=np.int64)
    n_items = rows.shape[1]
    out = np.zeros(len(groups), dtype=np.int32)
    if len(groups) == 0:
        return out
    # dense member rows: float32 from toarray plus three bool arrays -> about 8 bytes per entry
    chunk = max(1, int(max_bytes // max(1, groups.shape[1] * n_items * 8)))
    for lo in range(0, len(groups), chunk):
        part = groups[lo : lo + chunk]
        masks = group_target_masks(part, n_items, target_ratio, seed, shared_mask)
        _, targets = group_split(rows, part, masks)
        out[lo : lo + chunk] = common_targets(targets).sum(axis=1)
    return out


def member_overlap_pairs(groups: np.ndarray, threshold: float = OVERLAP_REPORT_THRESHOLD) -> np.ndarray:
    """Pairs ``(i, j, shared)`` with ``i < j`` whose share ``|G_i ∩ G_j| / size`` is >= threshold."""
    n, size = groups.shape
    if n == 0:
        return np.zeros((0, 3), dtype=np.int64)
    incidence = sp.csr_matrix(
        (np.ones(groups.size, dtype=np.int32), (np.repeat(np.arange(n), size), groups.reshape(-1))),
        shape=(n, int(groups.max()) + 1),
    )
    shared = sp.triu(incidence @ incidence.T, k=1).tocoo()
    keep = shared.data >= threshold * size - 1e-9
    return np.stack([shared.row[keep], shared.col[keep], shared.data[keep]], axis=1).astype(np.int64)


def cap_overlap(groups: np.ndarray, order: np.ndarray, max_overlap: float | None, limit: int) -> np.ndarray:
    """Greedy in ``order``: keep a group unless it shares more than ``max_overlap`` of its members
    with a group kept before it; stop at ``limit`` kept groups. Returns the kept indices."""
    if max_overlap is None:
        return order[:limit]
    size = groups.shape[1]
    kept: list[int] = []
    by_user: dict[int, list[int]] = {}
    for g in order:
        counts: dict[int, int] = {}
        for u in groups[g]:
            for other in by_user.get(int(u), ()):
                counts[other] = counts.get(other, 0) + 1
        if counts and max(counts.values()) / size > max_overlap + 1e-12:
            continue
        kept.append(int(g))
        for u in groups[g]:
            by_user.setdefault(int(u), []).append(int(g))
        if len(kept) >= limit:
            break
    return np.asarray(kept, dtype=np.int64)


# ----------------------------------------------------------------------------- small-data honesty
#: A group set whose median number of common held-out items is at most this is flagged: its
#: NDCG_com rests on one or two items per group.
FEW_COMMON_TARGETS = 2
#: A group set is flagged for heavy overlap when at least this share of its groups shares at least
#: HEAVY_OVERLAP_THRESHOLD of its members with another group of the set (a near-duplicate). The
#: research diagnostic's 30% (OVERLAP_REPORT_THRESHOLD, kept in the summary) is one member of a
#: group of 3, which nearly every group set of a realistic pool reaches, so it cannot be the flag.
HEAVY_OVERLAP_THRESHOLD = 0.5
HEAVY_OVERLAP_SHARE = 0.25


def small_data_flags(
    n_common_targets: np.ndarray, overlapping_groups: int, n_groups: int, size: int, pool_users: int
) -> dict[str, Any]:
    """``common_targets`` statistics, ``flags`` and readable ``warnings`` of one group set.

    Flags: ``few_common_targets`` (median common held-out items <= :data:`FEW_COMMON_TARGETS`),
    ``heavy_overlap`` (share of groups sharing >= :data:`HEAVY_OVERLAP_THRESHOLD` of their members with
    another group >= :data:`HEAVY_OVERLAP_SHARE`; ``overlapping_groups`` counts those groups),
    ``small_pool`` (``size x n_groups`` member slots exceed the pool: groups cannot be disjoint).
    """
    counts = np.asarray(n_common_targets, dtype=np.float64)
    median = float(np.median(counts)) if len(counts) else float("nan")
    share_few = float((counts <= FEW_COMMON_TARGETS).mean()) if len(counts) else float("nan")
    overlap_share = overlapping_groups / n_groups if n_groups else 0.0
    per_user = size * n_groups / pool_users if pool_users else float("inf")
    flags, warnings = [], []
    if len(counts) and median <= FEW_COMMON_TARGETS:
        flags.append("few_common_targets")
        warnings.append(
            f"median {median:g} common held-out items per group ({share_few:.0%} of the groups have at most "
            f"{FEW_COMMON_TARGETS}): NDCG_com rests on one or two items per group; raise groups.common_interactions"
        )
    if overlap_share >= HEAVY_OVERLAP_SHARE:
        flags.append("heavy_overlap")
        warnings.append(
            f"{overlap_share:.0%} of the groups share >= {HEAVY_OVERLAP_THRESHOLD:.0%} of their members with "
            "another group: the groups are not independent samples (paired tests overstate significance)"
        )
    if per_user > 1:
        flags.append("small_pool")
        warnings.append(
            f"the pool of {pool_users} users is too small for {n_groups} groups of {size}: each user is in "
            f"{per_user:.1f} groups on average; use a larger pool (groups.pools, groups.max_pool_users) or fewer "
            "groups (groups.final_group_count)"
        )
    return {
        "common_targets": {
            "median": median,
            "min": float(counts.min()) if len(counts) else float("nan"),
            f"share_at_most_{FEW_COMMON_TARGETS}": share_few,
        },
        "overlap_share": overlap_share,
        "mean_groups_per_user": per_user,
        "flags": flags,
        "warnings": warnings,
    }


# ----------------------------------------------------------------------------- one group set
def _set_seed(seed: int, name: str) -> list[int]:
    """Independent, order-free seed per group set: ``[seed, crc32(name)]``."""
    return [seed, zlib.crc32(name.encode())]


#: Candidates whose common held-out items are counted exactly for the error's advice.
_ADVICE_SAMPLE = 5000


def _filter_error(
    name: str,
    kind: str,
    sizes: tuple[int, int],
    reason: str,
    generated: np.ndarray,
    unique: np.ndarray,
    passing: np.ndarray,
    chosen: np.ndarray,
    n_common: np.ndarray,
    exact: np.ndarray,
    rows: sp.csr_matrix,
    pool: np.ndarray,
    *,
    rounds: int,
    elapsed: float,
    final_group_count: int,
    common_interactions: int,
    max_overlap: float | None,
    max_candidates: int,
    max_seconds: float | None,
    target_ratio: float,
    split_seed: int,
    shared_mask: bool,
    seed: int,
) -> GroupSamplingError:
    """The error of a group set that could not be filled: what was measured and what would work.

    Every suggested value is one the config schema accepts; each is written ``- <key>: <value>``.
    """
    n_gen, n_unique, n_pass = len(generated), len(unique), len(passing)
    pass_rate = n_pass / n_unique if n_unique else 0.0
    keep_per_candidate = len(chosen) / n_gen if n_gen else 0.0
    lines = [
        f"cannot keep groups.final_group_count={final_group_count} groups for {name}: {reason}. "
        f"Measured over {n_gen} candidate groups ({n_unique} distinct) in {rounds} rounds and {elapsed:.0f} s: "
        f"{n_pass} distinct candidates have more than groups.common_interactions={common_interactions} "
        f"common held-out items (pass rate {pass_rate:.3%}), {len(chosen)} kept"
        + (f" after groups.max_overlap={max_overlap}" if max_overlap is not None else "")
        + "."
    ]
    if keep_per_candidate > 0:
        need = math.ceil(final_group_count / keep_per_candidate)
        lines.append(f"At that rate about {need} candidate groups would be needed (budget {max_candidates}).")
    else:
        need = None
        lines.append(
            f"No candidate was kept, so the keep rate is below about {3 / max(n_gen, 1):.1e} and more than "
            f"{math.ceil(final_group_count * max(n_gen, 1) / 3)} candidate groups would be needed."
        )
    options: list[str] = []
    exhausted = n_unique < 0.5 * n_gen
    if need is None and max_seconds is not None and elapsed > max_seconds:
        options.append("- groups.budget.max_seconds: null  (no time limit; groups.budget.max_candidates still applies)")
    if need is not None and not exhausted:
        if need > max_candidates:
            options.append(f"- groups.budget.max_candidates: {math.ceil(need * 1.5)}")
        if max_seconds is not None and elapsed > max_seconds:
            per_candidate = elapsed / max(n_gen, 1)
            options.append(f"- groups.budget.max_seconds: {math.ceil(per_candidate * need * 1.5)}")
    if common_interactions > 0 and n_unique:
        # exact common held-out counts of a seeded sample of distinct candidates, for lower settings
        sample = unique[np.random.default_rng([seed, 0xAD]).permutation(n_unique)[:_ADVICE_SAMPLE]]
        counts = n_common[sample].copy()
        todo = ~exact[sample] & (counts > 0)
        counts[todo] = count_common_targets(rows, pool[generated[sample[todo]]], target_ratio, split_seed, shared_mask)
        distinct_share = n_unique / n_gen
        for lower in range(common_interactions - 1, -1, -1):
            rate = float((counts > lower).mean())
            if rate > 0 and final_group_count / (rate * distinct_share) * 1.25 <= max_candidates:
                options.append(
                    f"- groups.common_interactions: {lower}  (pass rate there about {rate:.2%} on "
                    f"{len(sample)} sampled candidates; fewer common items make NDCG_com noisier)"
                )
                break
    if 0 < keep_per_candidate and not exhausted:
        feasible = int(keep_per_candidate * max_candidates / 1.25)
        if 1 <= feasible < final_group_count:
            options.append(f"- groups.final_group_count: {feasible}")
    elif 0 < len(chosen) < final_group_count:
        options.append(f"- groups.final_group_count: {len(chosen)}")
    if max_overlap is not None:
        options.append("- groups.max_overlap: null")
    key = f"groups.kinds.{kind}"
    size = f"[{sizes[0]}, {sizes[1]}]" if kind == "opposing" else str(sizes[0])
    options.append(
        f"- or drop this group set: remove {size} from {key} (or the key {key} itself)"
        + ("; a larger pool also helps (groups.pools, groups.max_pool_users)" if exhausted else "")
    )
    return GroupSamplingError(" ".join(lines) + " Options (each accepted by the config schema):\n" + "\n".join(options))


def sample_group_set(
    name: str,
    normed: np.ndarray,
    pool: np.ndarray,
    rows: sp.csr_matrix,
    thresholds: Thresholds,
    *,
    final_group_count: int = 1000,
    common_interactions: int = 5,
    max_draws: int = 1000,
    max_restarts: int = 100_000,
    max_overlap: float | None = None,
    seed: int = 42,
    target_ratio: float = 0.5,
    split_seed: int = 42,
    shared_mask: bool = False,
    max_candidates: int = 1_000_000,
    max_seconds: float | None = None,
    oversample: float = 1.25,
) -> GroupSet:
    """Sample, filter and select one group set (e.g. ``similar_3``, ``opposing_2-1``).

    ``normed``: normalised embeddings of the pool users (row i = user ``pool[i]``); ``rows``: the
    full user x item matrix. Candidate groups are grown in rounds (batches sized from the keep
    rate measured so far, growing 4x while nothing passed) until ``final_group_count`` pass the
    filters (unique sets; more than ``common_interactions`` common held-out items; optional
    overlap cap) or the budget runs out: ``max_candidates`` candidate groups, ``max_seconds`` of
    wall-clock time (None: no limit). Then a seeded permutation picks the groups. When the
    budget runs out, or cannot suffice even at an optimistic pass rate, the error reports the
    measured pass rate, the candidates it would need and settings that would work.
    """
    kind, size_list = parse_group_set(name)
    sizes = kind_sizes(kind, size_list)
    rng = np.random.default_rng(_set_seed(seed, name))
    stats = GrowStats()
    generated = np.zeros((0, sum(sizes)), dtype=np.int64)  # pool rows
    n_common = np.zeros(0, dtype=np.int32)  # held-out items common to all members; exact where `exact`
    exact = np.zeros(0, dtype=bool)  # False: only known to be <= common_interactions (pre-filter)
    first_round = math.ceil(final_group_count * oversample) + 8
    round_cap = max(first_round, 50 * final_group_count)  # bounds the memory of one round
    to_generate = min(first_round, max_candidates)
    started = time.monotonic()
    rounds = 0
    while True:
        rounds += 1
        try:
            new, _, round_stats = grow_groups(
                normed,
                kind,
                sizes,
                to_generate,
                thresholds.similar,
                thresholds.divergent,
                rng,
                max_draws,
                max_restarts - stats.restarts,
            )
        except GroupSamplingError as err:
            if rounds == 1:
                raise
            raise GroupSamplingError(
                f"{err} (in round {rounds} of {name}, after {len(generated)} candidate groups of which "
                f"{int((n_common > common_interactions).sum())} passed the common held-out items filter)"
            ) from err
        stats.add(round_stats)
        generated = np.concatenate([generated, new])
        # held-out items common to all members are a subset of the items common to all members:
        # groups sharing too few items at all fail without building their masks
        counts = common_items(rows, pool[new])
        maybe = np.flatnonzero(counts > common_interactions)
        counts[maybe] = count_common_targets(rows, pool[new[maybe]], target_ratio, split_seed, shared_mask)
        n_common = np.concatenate([n_common, counts])
        new_exact = np.zeros(len(new), dtype=bool)
        new_exact[maybe] = True
        exact = np.concatenate([exact, new_exact])
        unique = unique_group_index(generated)
        passing = unique[n_common[unique] > common_interactions]
        # seeded permutation over all passing groups of every round so far
        order = passing[np.random.default_rng([*_set_seed(seed, name), 1]).permutation(len(passing))]
        chosen = cap_overlap(generated, order, max_overlap, final_group_count)
        log.info(
            "%s round %d: generated %d, unique %d, > %d common targets %d, kept %d",
            name,
            rounds,
            len(generated),
            len(unique),
            common_interactions,
            len(passing),
            len(chosen),
        )
        if len(chosen) >= final_group_count:
            break
        elapsed = time.monotonic() - started
        left = max_candidates - len(generated)
        # optimistic keep rate (~95% upper bound of a Poisson count; 3/n when nothing was kept)
        optimistic = (len(chosen) + 2 * math.sqrt(len(chosen)) + 3) / len(generated)
        reason = None
        if len(unique) < 0.5 * len(generated):
            reason = "the pool is exhausted: most new candidates repeat a group already drawn"
        elif left <= 0:
            reason = f"the budget groups.budget.max_candidates={max_candidates} is used up"
        elif max_seconds is not None and elapsed > max_seconds:
            reason = f"the budget groups.budget.max_seconds={max_seconds:g} is used up ({elapsed:.0f} s)"
        elif final_group_count / optimistic > max_candidates:
            reason = (
                f"even at an optimistic keep rate of {optimistic:.2e} more than "
                f"groups.budget.max_candidates={max_candidates} candidates would be needed"
            )
        if reason is not None:
            raise _filter_error(
                name, kind, sizes, reason, generated, unique, passing, chosen, n_common, exact, rows, pool,
                rounds=rounds, elapsed=elapsed, final_group_count=final_group_count,
                common_interactions=common_interactions, max_overlap=max_overlap, max_candidates=max_candidates,
                max_seconds=max_seconds, target_ratio=target_ratio, split_seed=split_seed, shared_mask=shared_mask,
                seed=seed,
            )  # fmt: skip
        keep_rate = len(chosen) / len(generated)
        if keep_rate > 0:
            to_generate = math.ceil((final_group_count - len(chosen)) / keep_rate * oversample) + 8
        else:  # nothing passed yet: grow the rounds geometrically
            to_generate = 4 * to_generate
        to_generate = max(1, min(to_generate, round_cap, left))

    chosen_rows = generated[chosen]
    sims = group_similarities(normed, chosen_rows, sizes)
    overlap = member_overlap_pairs(pool[chosen_rows])
    summary = {
        "kind": kind,
        "sizes": list(sizes) if kind == "opposing" else [sizes[0]],
        "paper_name": PAPER_GROUP_NAMES.get(name),
        **stats.as_dict(),
        "rounds": rounds,
        "generated": int(len(generated)),
        "distinct": int(len(unique)),
        "passed_common_targets": int(len(passing)),
        "kept": int(len(chosen)),
        "mean_group_similarity": float(np.nanmean(sims["group_similarity"])),
        "mean_common_targets": float(n_common[chosen].mean()),
        "overlapping_pairs": {
            "threshold": OVERLAP_REPORT_THRESHOLD,
            "pairs": int(len(overlap)),
            "groups_involved": int(len(np.unique(overlap[:, :2]))) if len(overlap) else 0,
            "examples": [{"groups": [int(i), int(j)], "shared_members": int(k)} for i, j, k in overlap[:10]],
        },
        "budget": {"max_candidates": max_candidates, "max_seconds": max_seconds},
    }
    heavy = member_overlap_pairs(pool[chosen_rows], HEAVY_OVERLAP_THRESHOLD)
    involved = int(len(np.unique(heavy[:, :2]))) if len(heavy) else 0
    summary.update(small_data_flags(n_common[chosen], involved, len(chosen), sum(sizes), len(pool)))
    for warning in summary["warnings"]:
        log.warning("%s: %s", name, warning)
    subgroup = np.r_[np.zeros(sizes[0], dtype=np.int8), np.ones(sizes[1], dtype=np.int8)]
    return GroupSet(
        name=name,
        kind=kind,
        members=pool[chosen_rows],
        subgroup=subgroup,
        n_common_targets=n_common[chosen],
        similarity=sims,
        summary=summary,
    )


# ----------------------------------------------------------------------------- all sets of a pool
def sample_pool(users: np.ndarray, max_pool_users: int, seed: int = 42) -> np.ndarray:
    """At most ``max_pool_users`` of ``users``, chosen uniformly with the seed, sorted."""
    users = np.sort(np.asarray(users, dtype=np.int64))
    if len(users) <= max_pool_users:
        return users
    rng = np.random.default_rng([seed, 0x9001])
    return np.sort(rng.choice(users, size=max_pool_users, replace=False))


def sample_group_sets(
    embeddings: np.ndarray,
    users: np.ndarray,
    rows: sp.csr_matrix,
    group_sets: list[str],
    *,
    max_pool_users: int = 20_000,
    similar_quantile: float = 0.75,
    divergent_quantile: float = 0.25,
    n_pairs: int = 100_000,
    seed: int = 42,
    **set_kwargs: Any,
) -> tuple[dict[str, GroupSet], dict[str, Any]]:
    """Every group set of one pool: ``embeddings`` of all users, ``users`` the pool's split users.

    Returns the group sets and the summary (pool, thresholds, one entry per set).
    ``set_kwargs`` go to :func:`sample_group_set`.
    """
    if len(embeddings) != rows.shape[0]:
        raise ValueError(
            f"{len(embeddings)} user embeddings but {rows.shape[0]} users in the interactions; "
            "the ELSA user embeddings must come from the same dataset"
        )
    pool = sample_pool(users, max_pool_users, seed)
    normed = normalize_rows(embeddings[pool])
    thresholds = estimate_thresholds(normed, n_pairs, similar_quantile, divergent_quantile, seed)
    log.info(
        "pool of %d users (of %d); Td=%.4f Ts=%.4f",
        len(pool),
        len(users),
        thresholds.similar,
        thresholds.divergent,
    )
    sets = {
        name: sample_group_set(name, normed, pool, rows, thresholds, seed=seed, **set_kwargs)
        for name in group_sets
    }
    summary = {
        "pool": {"users": int(len(users)), "pool_users": int(len(pool)), "max_pool_users": max_pool_users},
        "thresholds": {
            "Td": thresholds.similar,
            "Ts": thresholds.divergent,
            "similar_quantile": similar_quantile,
            "divergent_quantile": divergent_quantile,
            "n_pairs": n_pairs,
            "pair_similarity_mean": thresholds.pair_mean,
            "pair_similarity_std": thresholds.pair_std,
        },
        "parameters": {"seed": seed, **set_kwargs},
        "sets": {name: s.summary for name, s in sets.items()},
        "warnings": {name: s.summary["warnings"] for name, s in sets.items() if s.summary["warnings"]},
    }
    return sets, summary


def group_set_frame(groups: GroupSet, original_ids: np.ndarray | None = None) -> pd.DataFrame:
    """Long form of a group set: one row per member, columns as docs/ARCHITECTURE.md."""
    n, size = groups.members.shape
    users = groups.members.reshape(-1)
    rep = lambda key: np.repeat(groups.similarity[key], size).astype(np.float32)  # noqa: E731
    return pd.DataFrame(
        {
            "group": np.repeat(np.arange(n, dtype=np.int32), size),
            "member": np.tile(np.arange(size, dtype=np.int16), n),
            "user": users.astype(np.int32),
            "original_id": (np.asarray(original_ids)[users] if original_ids is not None else users).astype(
                str
            ),
            "subgroup": np.tile(groups.subgroup.astype(np.int8), n),
            "group_similarity": rep("group_similarity"),
            "subgroup_similarity_0": rep("subgroup_similarity_0"),
            "subgroup_similarity_1": rep("subgroup_similarity_1"),
            "between_similarity": rep("between_similarity"),
            "n_common_targets": np.repeat(groups.n_common_targets, size).astype(np.int32),
        }
    )
