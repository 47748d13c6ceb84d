"""Growing groups of one kind: the research code's acceptance loop, vectorised over groups.

A group *attempt* follows the research code (seed notebook 001) exactly:

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
when the observed success rate shows the budget cannot suffice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sagea.groups.errors import GroupSamplingError
from sagea.runtime import progress

#: Attempts that must have finished before the success rate is trusted for an early stop.
_MIN_ATTEMPTS_FOR_ESTIMATE = 500


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


@dataclass(frozen=True)
class GrowRule:
    """What a group of one kind must satisfy: subgroup sizes ``(a, b)`` (``b == 0`` unless
    opposing), thresholds ``td`` / ``ts`` and the draws an attempt may use."""

    kind: str
    sizes: tuple[int, int]
    td: float
    ts: float
    max_draws: int

    @property
    def name(self) -> str:
        a, b = self.sizes
        return f"opposing groups {a}-{b}" if self.kind == "opposing" else f"{self.kind} groups of size {a}"


def _impossible(rule: GrowRule, stats: GrowStats, n_groups: int, pool: int, reason: str) -> GroupSamplingError:
    return GroupSamplingError(
        f"cannot form {rule.name}: {reason}. Seen so far: {stats.groups} of {n_groups} groups "
        f"after {stats.attempts} attempts ({stats.restarts} restarts), candidate acceptance rate "
        f"{stats.acceptance_rate:.2e} over {stats.draws} draws; thresholds Td={rule.td:.4f}, Ts={rule.ts:.4f}; "
        f"pool of {pool} users. To fix: loosen groups.similar_quantile / groups.divergent_quantile, "
        f"use a larger pool (groups.pools, groups.max_pool_users), raise groups.max_draws or "
        f"groups.max_restarts, or ask for fewer groups (groups.final_group_count)."
    )


class Attempts:
    """``n`` group attempts growing side by side (one row each) and their counters.

    ``members [n, a + b]`` holds pool rows (-1 = empty; subgroup 0 in the first ``a`` columns),
    ``rank`` the acceptance order of each member (0 = the start user), ``fill [n, 2]`` the
    members per subgroup, ``sums [n, 2, d]`` the sum of each subgroup's normalised embeddings,
    ``draws`` the draws of the current attempt and ``parity`` which subgroup the next draw grows.
    """

    def __init__(self, normed: np.ndarray, rule: GrowRule, n: int, rng: np.random.Generator) -> None:
        a, b = rule.sizes
        self.normed, self.rule, self.rng = normed, rule, rng
        self.stats = GrowStats()
        self.cap = np.array([a, b])
        self.members = np.full((n, a + b), -1, dtype=np.int64)
        self.fill = np.zeros((n, 2), dtype=np.int64)
        self.sums = np.zeros((n, 2, normed.shape[1]), dtype=np.float32)
        self.rank = np.zeros((n, a + b), dtype=np.int64)
        self.draws = np.zeros(n, dtype=np.int64)
        self.parity = np.ones(n, dtype=np.int64)  # research code: draw t grows subgroup t % 2, t from 1

    def complete(self) -> np.ndarray:
        """Rows whose both subgroups are full."""
        return (self.fill[:, 0] == self.cap[0]) & (self.fill[:, 1] == self.cap[1])

    def restart(self, rows: np.ndarray) -> None:
        """New attempts for ``rows``: one uniformly random start user each."""
        self.members[rows] = -1
        self.members[rows, 0] = self.rng.integers(0, self.normed.shape[0], size=len(rows))
        self.sums[rows] = 0.0
        self.sums[rows, 0] = self.normed[self.members[rows, 0]]
        self.fill[rows] = (1, 0)
        self.draws[rows] = 0
        self.parity[rows] = 1
        self.stats.attempts += len(rows)

    def step(self, rows: np.ndarray, block: int) -> None:
        """One block of draws for ``rows``: accept each row's first acceptable candidate, in place.

        The mean similarity of candidate ``c`` to the members ``M`` of a subgroup is linear in the
        members' embeddings: ``mean_m (e_c . e_m + 1) / 2 = (e_c . sum_m e_m / |M| + 1) / 2``, so
        only the running sum of each subgroup's normalised embeddings is kept (``sums [n, 2, d]``).
        """
        normed, rule, cap, stats = self.normed, self.rule, self.cap, self.stats
        members, rank, sums, fill, draws, parity = (
            self.members, self.rank, self.sums, self.fill, self.draws, self.parity
        )  # fmt: skip
        pool = normed.shape[0]
        mem = members[rows]  # [B, S], -1 = empty
        n_mem = (mem >= 0).sum(axis=1)
        # uniform over the pool users not in the group: draw in [0, pool - m), skip past sorted members
        cand = self.rng.integers(0, (pool - n_mem)[:, None], size=(len(rows), block))
        for col in np.sort(np.where(mem >= 0, mem, pool), axis=1).T:
            cand += cand >= col[:, None]
        remaining = rule.max_draws - draws[rows]
        valid = np.arange(block)[None, :] < remaining[:, None]
        f = fill[rows]
        both_open = (f[:, 0] < cap[0]) & (f[:, 1] < cap[1])
        # subgroup grown by each draw: alternating while both are open, else the open one
        target = np.where(
            both_open[:, None],
            (parity[rows][:, None] + np.arange(block)) % 2,
            np.where(f[:, 0] < cap[0], 0, 1)[:, None],
        )
        if rule.kind == "random":
            ok = np.ones_like(valid)
        else:
            n_sub = 2 if rule.kind == "opposing" else 1
            dots = np.matmul(np.take(normed, cand, axis=0), sums[rows, :n_sub].transpose(0, 2, 1))  # [B, C, k]
            has = f[:, None, :n_sub] > 0
            means = (dots / np.maximum(f[:, None, :n_sub], 1) + 1.0) / 2.0
            sim_ok = (means >= rule.td) | ~has  # "similar to" subgroup k (empty: no condition)
            div_ok = (means <= rule.ts) | ~has  # "divergent to" subgroup k
            if rule.kind == "similar":
                ok = sim_ok[..., 0]
            elif rule.kind == "divergent":
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
    (0 = the start user). Candidate blocks are chunked over rows to about ``block_bytes`` of
    gathered embeddings.
    Raises :class:`GroupSamplingError` when more than ``max_restarts`` restarts would be needed.
    """
    rule = GrowRule(kind, sizes, td, ts, max_draws)
    a, b = sizes
    pool, dim = normed.shape
    if pool < a + b:
        raise _impossible(rule, GrowStats(), n_groups, pool, f"the pool has only {pool} users for groups of {a + b}")
    normed = np.ascontiguousarray(normed, dtype=np.float32)
    state = Attempts(normed, rule, n_groups, rng)
    stats = state.stats
    done = np.zeros(n_groups, dtype=bool)
    state.restart(np.arange(n_groups))
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
            state.step(active[lo : lo + chunk], block)
        stats.steps += 1
        complete = ~done & state.complete()
        done |= complete
        stats.groups += int(complete.sum())
        bar.update(int(complete.sum()))
        exhausted = np.flatnonzero(~done & (state.draws >= max_draws))
        stats.restarts += len(exhausted)
        if len(exhausted):
            state.restart(exhausted)
        if stats.restarts > max_restarts:
            bar.close()
            raise _impossible(rule, stats, n_groups, pool, f"more than groups.max_restarts={max_restarts} restarts")
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
                    rule,
                    stats,
                    n_groups,
                    pool,
                    f"at the observed success rate of {stats.groups}/{finished} attempts "
                    f"about {projected:.3g} restarts would be needed "
                    f"(groups.max_restarts={max_restarts})",
                )
    bar.close()
    return state.members, state.rank, stats
