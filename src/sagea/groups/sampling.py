"""Group sets of a user pool (docs/method.md §4): the orchestration of the groups package.

For each group set (e.g. ``similar_3``, ``opposing_2-1``) of a pool: grow candidate groups of
its kind (:mod:`sagea.groups.grow`, with the thresholds of :mod:`sagea.groups.similarity`) in
rounds until enough pass the filters (:mod:`sagea.groups.filters`) or its budget
(``max_candidates``, ``max_seconds``) runs out; the error then reports the measured pass rate and
settings that work. A seeded permutation picks the kept groups; their statistics and flags come
from :mod:`sagea.groups.diagnostics`.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from sagea.groups.diagnostics import (
    HEAVY_OVERLAP_THRESHOLD,
    OVERLAP_REPORT_THRESHOLD,
    member_overlap_pairs,
    small_data_flags,
)
from sagea.groups.errors import GroupSamplingError
from sagea.groups.filters import cap_overlap, common_items, count_common_targets, unique_group_index
from sagea.groups.grow import GrowStats, grow_groups, kind_sizes
from sagea.groups.io import GroupSet
from sagea.groups.similarity import Thresholds, estimate_thresholds, group_similarities, normalize_rows
from sagea.plan import PAPER_GROUP_NAMES, parse_group_set

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupSetSettings:
    """How one group set is sampled and filtered (config ``groups``; the defaults are the paper's).

    ``final_group_count`` groups are kept among those with more than ``common_interactions``
    items held out by every member under the group split (``target_ratio``, ``split_seed``,
    ``shared_mask``), optionally at most ``max_overlap`` of their members shared with a group kept
    before. ``max_draws`` / ``max_restarts`` bound the growing (:func:`sagea.groups.grow.grow_groups`);
    ``max_candidates`` / ``max_seconds`` (None: no limit) the candidate groups of all rounds;
    ``oversample`` sizes a round from the keep rate measured so far.
    """

    final_group_count: int = 1000
    common_interactions: int = 5
    max_draws: int = 1000
    max_restarts: int = 100_000
    max_overlap: float | None = None
    seed: int = 42
    target_ratio: float = 0.5
    split_seed: int = 42
    shared_mask: bool = False
    max_candidates: int = 1_000_000
    max_seconds: float | None = None
    oversample: float = 1.25


@dataclass
class _Candidates:
    """The candidate groups of a group set so far (pool rows) and what the filters found.

    ``n_common``: held-out items common to all members, exact where ``exact`` (else only known to
    be <= common_interactions, from the cheaper common-items bound); ``unique``, ``passing`` and
    ``chosen`` index ``generated``.
    """

    generated: np.ndarray
    n_common: np.ndarray
    exact: np.ndarray
    unique: np.ndarray
    passing: np.ndarray
    chosen: np.ndarray


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
    candidates: _Candidates,
    rows: sp.csr_matrix,
    pool: np.ndarray,
    settings: GroupSetSettings,
    rounds: int,
    elapsed: float,
) -> GroupSamplingError:
    """The error of a group set that could not be filled: what was measured and what would work.

    Every suggested value is one the config schema accepts; each is written ``- <key>: <value>``.
    """
    c, s = candidates, settings
    n_gen, n_unique, n_pass = len(c.generated), len(c.unique), len(c.passing)
    pass_rate = n_pass / n_unique if n_unique else 0.0
    keep_per_candidate = len(c.chosen) / n_gen if n_gen else 0.0
    lines = [
        f"cannot keep groups.final_group_count={s.final_group_count} groups for {name}: {reason}. "
        f"Measured over {n_gen} candidate groups ({n_unique} distinct) in {rounds} rounds and {elapsed:.0f} s: "
        f"{n_pass} distinct candidates have more than groups.common_interactions={s.common_interactions} "
        f"common held-out items (pass rate {pass_rate:.3%}), {len(c.chosen)} kept"
        + (f" after groups.max_overlap={s.max_overlap}" if s.max_overlap is not None else "")
        + "."
    ]
    if keep_per_candidate > 0:
        need = math.ceil(s.final_group_count / keep_per_candidate)
        lines.append(f"At that rate about {need} candidate groups would be needed (budget {s.max_candidates}).")
    else:
        need = None
        lines.append(
            f"No candidate was kept, so the keep rate is below about {3 / max(n_gen, 1):.1e} and more than "
            f"{math.ceil(s.final_group_count * max(n_gen, 1) / 3)} candidate groups would be needed."
        )
    options: list[str] = []
    exhausted = n_unique < 0.5 * n_gen
    if need is None and s.max_seconds is not None and elapsed > s.max_seconds:
        options.append("- groups.budget.max_seconds: null  (no time limit; groups.budget.max_candidates still applies)")
    if need is not None and not exhausted:
        if need > s.max_candidates:
            options.append(f"- groups.budget.max_candidates: {math.ceil(need * 1.5)}")
        if s.max_seconds is not None and elapsed > s.max_seconds:
            per_candidate = elapsed / max(n_gen, 1)
            options.append(f"- groups.budget.max_seconds: {math.ceil(per_candidate * need * 1.5)}")
    if s.common_interactions > 0 and n_unique:
        # exact common held-out counts of a seeded sample of distinct candidates, for lower settings
        sample = c.unique[np.random.default_rng([s.seed, 0xAD]).permutation(n_unique)[:_ADVICE_SAMPLE]]
        counts = c.n_common[sample].copy()
        todo = ~c.exact[sample] & (counts > 0)
        todo_groups = pool[c.generated[sample[todo]]]
        counts[todo] = count_common_targets(rows, todo_groups, s.target_ratio, s.split_seed, s.shared_mask)
        distinct_share = n_unique / n_gen
        for lower in range(s.common_interactions - 1, -1, -1):
            rate = float((counts > lower).mean())
            if rate > 0 and s.final_group_count / (rate * distinct_share) * 1.25 <= s.max_candidates:
                options.append(
                    f"- groups.common_interactions: {lower}  (pass rate there about {rate:.2%} on "
                    f"{len(sample)} sampled candidates; fewer common items make NDCG_com noisier)"
                )
                break
    if 0 < keep_per_candidate and not exhausted:
        feasible = int(keep_per_candidate * s.max_candidates / 1.25)
        if 1 <= feasible < s.final_group_count:
            options.append(f"- groups.final_group_count: {feasible}")
    elif 0 < len(c.chosen) < s.final_group_count:
        options.append(f"- groups.final_group_count: {len(c.chosen)}")
    if s.max_overlap is not None:
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
    **settings: Any,
) -> GroupSet:
    """Sample, filter and select one group set (e.g. ``similar_3``, ``opposing_2-1``).

    ``normed``: normalised embeddings of the pool users (row i = user ``pool[i]``); ``rows``: the
    full user x item matrix; ``settings``: fields of :class:`GroupSetSettings`. Candidate groups are
    grown in rounds (batches sized from the keep rate measured so far, growing 4x while nothing
    passed) until ``final_group_count`` pass the filters (unique sets; more than
    ``common_interactions`` common held-out items; optional overlap cap) or the budget runs out:
    ``max_candidates`` candidate groups, ``max_seconds`` of wall-clock time (None: no limit).
    Then a seeded permutation picks the groups. When the budget runs out, or cannot suffice even
    at an optimistic pass rate, the error reports the measured pass rate, the candidates it would
    need and settings that would work.
    """
    s = GroupSetSettings(**settings)
    kind, size_list = parse_group_set(name)
    sizes = kind_sizes(kind, size_list)
    rng = np.random.default_rng(_set_seed(s.seed, name))
    stats = GrowStats()
    generated = np.zeros((0, sum(sizes)), dtype=np.int64)  # pool rows
    n_common = np.zeros(0, dtype=np.int32)  # held-out items common to all members; exact where `exact`
    exact = np.zeros(0, dtype=bool)  # False: only known to be <= common_interactions (pre-filter)
    first_round = math.ceil(s.final_group_count * s.oversample) + 8
    round_cap = max(first_round, 50 * s.final_group_count)  # bounds the memory of one round
    to_generate = min(first_round, s.max_candidates)
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
                s.max_draws,
                s.max_restarts - stats.restarts,
            )
        except GroupSamplingError as err:
            if rounds == 1:
                raise
            raise GroupSamplingError(
                f"{err} (in round {rounds} of {name}, after {len(generated)} candidate groups of which "
                f"{int((n_common > s.common_interactions).sum())} passed the common held-out items filter)"
            ) from err
        stats.add(round_stats)
        generated = np.concatenate([generated, new])
        # held-out items common to all members are a subset of the items common to all members:
        # groups sharing too few items at all fail without building their masks
        counts = common_items(rows, pool[new])
        maybe = np.flatnonzero(counts > s.common_interactions)
        counts[maybe] = count_common_targets(rows, pool[new[maybe]], s.target_ratio, s.split_seed, s.shared_mask)
        n_common = np.concatenate([n_common, counts])
        new_exact = np.zeros(len(new), dtype=bool)
        new_exact[maybe] = True
        exact = np.concatenate([exact, new_exact])
        unique = unique_group_index(generated)
        passing = unique[n_common[unique] > s.common_interactions]
        # seeded permutation over all passing groups of every round so far
        order = passing[np.random.default_rng([*_set_seed(s.seed, name), 1]).permutation(len(passing))]
        chosen = cap_overlap(generated, order, s.max_overlap, s.final_group_count)
        log.info(
            "%s round %d: generated %d, unique %d, > %d common targets %d, kept %d",
            name,
            rounds,
            len(generated),
            len(unique),
            s.common_interactions,
            len(passing),
            len(chosen),
        )
        if len(chosen) >= s.final_group_count:
            break
        elapsed = time.monotonic() - started
        left = s.max_candidates - len(generated)
        # optimistic keep rate (~95% upper bound of a Poisson count; 3/n when nothing was kept)
        optimistic = (len(chosen) + 2 * math.sqrt(len(chosen)) + 3) / len(generated)
        reason = None
        if len(unique) < 0.5 * len(generated):
            reason = "the pool is exhausted: most new candidates repeat a group already drawn"
        elif left <= 0:
            reason = f"the budget groups.budget.max_candidates={s.max_candidates} is used up"
        elif s.max_seconds is not None and elapsed > s.max_seconds:
            reason = f"the budget groups.budget.max_seconds={s.max_seconds:g} is used up ({elapsed:.0f} s)"
        elif s.final_group_count / optimistic > s.max_candidates:
            reason = (
                f"even at an optimistic keep rate of {optimistic:.2e} more than "
                f"groups.budget.max_candidates={s.max_candidates} candidates would be needed"
            )
        if reason is not None:
            candidates = _Candidates(generated, n_common, exact, unique, passing, chosen)
            raise _filter_error(name, kind, sizes, reason, candidates, rows, pool, s, rounds, elapsed)
        keep_rate = len(chosen) / len(generated)
        if keep_rate > 0:
            to_generate = math.ceil((s.final_group_count - len(chosen)) / keep_rate * s.oversample) + 8
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
        "budget": {"max_candidates": s.max_candidates, "max_seconds": s.max_seconds},
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
