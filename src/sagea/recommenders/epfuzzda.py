"""EP-FuzzDA (Malecek & Peska, UMAP 2021), vectorised across groups.

Relevance ``r(u, i)``: member u's ELSA scores min-max normalised to [0, 1]. Uniform weights
``w_u = 1/m``. Greedy: for each of the k ranks pick the unseen, not yet chosen item maximising

    gain(i) = Σ_u min(r(u, i), max(0, w_u · (T + R_i) - a_u)),   R_i = Σ_v r(v, i)

with ``a_u`` the relevance already awarded to u and ``T = Σ_u a_u``; then ``a_u += r(u, i*)``.
Ties -> lower item index. Only the k ranks are a Python loop.

Exact pruning: ``gain(i) <= R_i``, so the loop scores only the ``candidates`` unseen items of
largest ``R`` and accepts the best one when its gain beats the largest ``R`` left outside;
rows where that test fails (rare) are scored over the whole catalogue for that step.
"""

from __future__ import annotations

import torch

from sagea.recommenders.base import Recommendation
from sagea.scoring import ElsaLike, exclude, member_relevance, stable_topk


def _gains(r: torch.Tensor, total_r: torch.Tensor, awarded: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``gain [B, C]`` for relevance ``r [B, m, C]``, ``R [B, C]``, awarded ``[B, m]``, weights ``[B, m]``."""
    total = awarded.sum(dim=1, keepdim=True)
    allowed = w[:, :, None] * (total + total_r)[:, None, :] - awarded[:, :, None]
    return torch.minimum(r, allowed.clamp_min(0)).sum(dim=1)


def epfuzzda_select(
    r: torch.Tensor, seen: torch.Tensor, k: int, weights: torch.Tensor | None = None, candidates: int = 512
) -> torch.Tensor:
    """Greedy EP-FuzzDA lists ``[B, k]`` from relevance ``r [B, m, I]`` (weights ``[B, m]``, default 1/m)."""
    b, m, n = r.shape
    w = weights if weights is not None else torch.full((b, m), 1.0 / m, dtype=r.dtype, device=r.device)
    total_r = r.sum(dim=1)  # R_i, [B, I]
    c = min(n, max(candidates, k))
    free_r = exclude(total_r, seen)
    top = stable_topk(free_r, min(n, c + 1))
    cand = top[:, :c]
    if c < n:  # the largest R outside the candidate set bounds every outside gain
        last = top[:, c]
        bound = torch.where(last >= 0, free_r.gather(1, last.clamp_min(0)[:, None])[:, 0], float("-inf"))
    else:
        bound = torch.full((b,), float("-inf"), dtype=r.dtype, device=r.device)
    cand = torch.where(cand >= 0, cand, n).sort(dim=-1).values  # ascending index, n = empty slot
    taken = cand >= n
    idx = cand.clamp_max(n - 1)
    r_c = r.gather(2, idx[:, None, :].expand(b, m, c))
    total_c = total_r.gather(1, idx)
    awarded = torch.zeros(b, m, dtype=r.dtype, device=r.device)
    blocked = seen.clone()
    out = torch.full((b, k), -1, dtype=torch.long, device=r.device)
    rows = torch.arange(b, device=r.device)
    for rank in range(min(k, n)):
        gain = _gains(r_c, total_c, awarded, w).masked_fill(taken, float("-inf"))
        pos = gain.argmax(dim=-1)
        best_gain = gain[rows, pos]
        best = cand[rows, pos]
        exact = best_gain > bound
        if not bool(exact.all()):  # score the whole catalogue for the undecided rows
            bad = (~exact).nonzero()[:, 0]
            full = _gains(r[bad], total_r[bad], awarded[bad], w[bad]).masked_fill(blocked[bad], float("-inf"))
            fpos = full.argmax(dim=-1)
            best_gain = best_gain.index_put((bad,), full[torch.arange(len(bad)), fpos])
            best = best.index_put((bad,), fpos)
        ok = torch.isfinite(best_gain)
        out[:, rank] = torch.where(ok, best, -1)
        safe = best.clamp_max(n - 1)
        blocked[rows, safe] |= ok
        taken |= (cand == best[:, None]) & ok[:, None]
        awarded = awarded + r[rows, :, safe] * ok[:, None]
    return out


class EPFuzzDA:
    """EP-FuzzDA over the members' min-max normalised ELSA scores."""

    name = "EPFuzzDA"

    def __init__(self, elsa: ElsaLike, candidates: int = 512) -> None:
        self.elsa, self.candidates = elsa, candidates
        self.score_key = ("relevance", id(elsa))

    def score(self, inputs: torch.Tensor) -> torch.Tensor:
        return member_relevance(self.elsa, inputs)

    def aggregate(self, state: torch.Tensor, seen: torch.Tensor, k: int) -> Recommendation:
        return Recommendation(epfuzzda_select(state, seen, k, candidates=self.candidates))
