"""GFAR (Kaya, Bridge & Tintarev, RecSys 2020), vectorised across groups.

Relevance: member u's top-N candidate items (N = ``n_relevant``, default k) get Borda points
``N - r`` for 0-based rank r (ties -> lower item index ranks higher), normalised to a
probability ``p(u, i) = b(u, i) / Σ_j b(u, j)``; other items have ``p = 0``. Greedy: for each
of the k ranks pick the unseen, not yet chosen item maximising

    Σ_u p(u, i) · Π_{j chosen} (1 - p(u, j))

(ties -> lower item index). Only items in some member's top-N can have a positive gain, so the
greedy loop runs over that union (≤ m·N items per group) instead of the catalogue; when no
item has a positive gain any more, the lowest-index unseen item is taken, exactly as an
arg-max over the whole catalogue would. Only the k ranks are a Python loop.

Precision: probabilities, the products ``Π (1 - p)`` and the gains are float64 (float32 on Apple
MPS, which has no float64), as in the research code's pandas implementation, so exact ties
between gains fall as there: to the lower item index (pandas ``idxmax`` over item ids sorted
ascending). In float32, gains that differ in float64 can round to a tie (and the reverse), which
changes lists. The sum over members repeats the research's pandas ``groupby().sum()`` bit for
bit: Kahan-compensated, in the order of its data frame (rows by list position, then member),
i.e. a candidate's terms by decreasing ``p(u, i)`` (members with equal p in member order), zero
terms last. (That order equals list position whenever every member has N candidates.)
"""

from __future__ import annotations

import torch

from sagea.recommenders.base import Recommendation
from sagea.scoring import ElsaLike, exclude, member_elsa_scores, stable_topk


def borda_candidates(scores: torch.Tensor, seen: torch.Tensor, n_relevant: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Union of the members' top-N unseen items and their relevance probabilities.

    Returns ``items [B, C]`` (ascending item index; ``n_items`` marks an empty slot, C = m·N)
    and ``p [B, m, C]`` with ``p(u, i) = (N - rank_u(i)) / Σ_r (N - r)`` (0 outside u's list).
    """
    b, m, n = scores.shape
    top = stable_topk(exclude(scores, seen[:, None, :]), n_relevant)  # [B, m, N], -1 = none
    dtype = torch.float32 if scores.device.type == "mps" else torch.float64  # float64 gains (module docstring)
    points = torch.arange(n_relevant, 0, -1, dtype=dtype, device=scores.device).expand_as(top) * (top >= 0)
    total = points.sum(-1, keepdim=True)
    prob = points / torch.where(total > 0, total, torch.ones_like(total))
    items = torch.where(top >= 0, top, n).reshape(b, m * n_relevant).sort(dim=-1).values
    dup = torch.zeros_like(items, dtype=torch.bool)
    dup[:, 1:] = items[:, 1:] == items[:, :-1]
    items = items.masked_fill(dup, n)
    match = top[:, :, :, None] == items[:, None, None, :]  # [B, m, N, C]
    p = (match * prob[..., None]).sum(dim=2)
    return items, p


def gfar_select(items: torch.Tensor, p: torch.Tensor, seen: torch.Tensor, k: int) -> torch.Tensor:
    """Greedy GFAR lists ``[B, k]`` over candidates ``items [B, C]`` with ``p [B, m, C]``."""
    b, m, c = p.shape
    n = seen.shape[1]
    taken = items >= n  # empty slots count as taken
    not_relevant = torch.ones(b, m, 1, dtype=p.dtype, device=p.device)  # Π (1 - p(u, j))
    out = torch.full((b, k), -1, dtype=torch.long, device=p.device)
    rows = torch.arange(b, device=p.device)
    order = torch.sort(-p, dim=1, stable=True).indices  # research summation order of each candidate's terms
    p_sorted = p.gather(1, order)
    for rank in range(min(k, n)):
        terms = p_sorted * not_relevant.expand(b, m, c).gather(1, order)
        gain = _kahan_sum(terms).masked_fill(taken, float("-inf"))
        pos = gain.argmax(dim=-1)  # candidates ascend by item index: first maximum = lower index
        positive = gain[rows, pos] > 0
        best = items[rows, pos]
        ok = positive
        if not bool(positive.all()):  # no positive gain left: lowest-index unseen, unchosen item
            lost = (~positive).nonzero()[:, 0]
            free = ~seen[lost]
            chosen = out[lost, :rank]
            valid = chosen >= 0
            owner = torch.arange(len(lost), device=p.device)[:, None].expand_as(chosen)
            free[owner[valid], chosen[valid]] = False
            first = free.to(torch.uint8).argmax(dim=-1)
            best = best.index_put((lost,), first)
            ok = ok.index_put((lost,), free[torch.arange(len(lost), device=p.device), first])
        out[:, rank] = torch.where(ok, best, -1)
        hit = (items == best[:, None]) & ok[:, None]
        taken |= hit
        p_best = (p * hit[:, None, :]).sum(dim=-1, keepdim=True)
        not_relevant = not_relevant * (1 - p_best)
    return out


def _kahan_sum(terms: torch.Tensor) -> torch.Tensor:
    """Sum over dim 1 with pandas' compensated summation (``groupby().sum()``), terms in their order."""
    total = torch.zeros_like(terms[:, 0])
    compensation = torch.zeros_like(total)
    for j in range(terms.shape[1]):  # group members: a handful
        y = terms[:, j] - compensation
        t = total + y
        compensation = (t - total) - y
        total = t
    return total


class GFAR:
    """GFAR over the members' ELSA scores ``x A Aᵀ - x``."""

    name = "GFAR"

    def __init__(self, elsa: ElsaLike, n_relevant: int | None = None) -> None:
        self.elsa, self.n_relevant = elsa, n_relevant
        self.score_key = ("elsa_scores", id(elsa))

    def score(self, inputs: torch.Tensor) -> torch.Tensor:
        return member_elsa_scores(self.elsa, inputs)

    def aggregate(self, state: torch.Tensor, seen: torch.Tensor, k: int) -> Recommendation:
        items, p = borda_candidates(state, seen, self.n_relevant or k)
        return Recommendation(gfar_select(items, p, seen, k))
