"""EP-FuzzDA (Malecek & Peska, UMAP 2021), vectorised across groups.

Relevance ``r(u, i)``: member u's ELSA scores min-max normalised to [0, 1]. Uniform weights
``w_u = 1/m``. Greedy: for each of the k ranks pick the unseen, not yet chosen item maximising

    Σ_u min(r(u, i), max(0, w_u · (T + Σ_v r(v, i)) - a_u))

with ``a_u`` the relevance already awarded to u and ``T = Σ_u a_u``; then ``a_u += r(u, i*)``.
Ties -> lower item index. Only the k ranks are a Python loop.
"""

from __future__ import annotations

import torch

from sagea.recommenders.base import ElsaLike, Recommendation, member_relevance


def epfuzzda_select(r: torch.Tensor, seen: torch.Tensor, k: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Greedy EP-FuzzDA lists ``[B, k]`` from relevance ``r [B, m, I]`` (weights ``[B, m]``, default 1/m)."""
    b, m, n = r.shape
    w = weights if weights is not None else torch.full((b, m), 1.0 / m, dtype=r.dtype, device=r.device)
    total_r = r.sum(dim=1)  # Σ_v r(v, i), [B, I]
    awarded = torch.zeros(b, m, dtype=r.dtype, device=r.device)
    blocked = seen.clone()
    out = torch.full((b, k), -1, dtype=torch.long, device=r.device)
    rows = torch.arange(b, device=r.device)
    for rank in range(min(k, n)):
        total = awarded.sum(dim=1, keepdim=True)  # T, [B, 1]
        allowed = w[:, :, None] * (total + total_r)[:, None, :] - awarded[:, :, None]
        gain = torch.minimum(r, allowed.clamp_min(0)).sum(dim=1).masked_fill(blocked, float("-inf"))
        best = gain.argmax(dim=-1)
        ok = torch.isfinite(gain[rows, best])
        out[:, rank] = torch.where(ok, best, -1)
        blocked[rows, best] = True
        awarded = awarded + r[rows, :, best] * ok[:, None]
    return out


class EPFuzzDA:
    """EP-FuzzDA over the members' min-max normalised ELSA scores."""

    name = "EPFuzzDA"

    def __init__(self, elsa: ElsaLike) -> None:
        self.elsa = elsa
        self.score_key = ("relevance", id(elsa))

    def score(self, inputs: torch.Tensor) -> torch.Tensor:
        return member_relevance(self.elsa, inputs)

    def aggregate(self, state: torch.Tensor, seen: torch.Tensor, k: int) -> Recommendation:
        return Recommendation(epfuzzda_select(state, seen, k))
