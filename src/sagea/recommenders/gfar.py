"""GFAR (Kaya, Bridge & Tintarev, RecSys 2020), vectorised across groups.

Relevance: member u's top-N candidate items (N = ``n_relevant``, default k) get Borda points
``N - r`` for 0-based rank r (ties -> lower item index ranks higher), normalised to a
probability ``p(u, i) = b(u, i) / Σ_j b(u, j)``; other items have ``p = 0``. Greedy: for each
of the k ranks pick the unseen, not yet chosen item maximising

    Σ_u p(u, i) · Π_{j chosen} (1 - p(u, j))

(ties -> lower item index). Only the k ranks are a Python loop; each step is one tensor
operation over ``[B, m, I]``.
"""

from __future__ import annotations

import torch

from sagea.recommenders.base import ElsaLike, Recommendation, exclude, member_elsa_scores, stable_topk


def borda_probabilities(scores: torch.Tensor, seen: torch.Tensor, n_relevant: int) -> torch.Tensor:
    """``p(u, i)`` ``[B, m, I]`` from member scores ``[B, m, I]`` over unseen items ``seen [B, I]``."""
    top = stable_topk(exclude(scores, seen[:, None, :]), n_relevant)  # [B, m, N], -1 = none
    points = torch.arange(n_relevant, 0, -1, dtype=scores.dtype, device=scores.device).expand_as(top)
    points = points * (top >= 0)
    p = torch.zeros_like(scores)
    p.scatter_add_(-1, top.clamp_min(0), points)
    total = p.sum(dim=-1, keepdim=True)
    return p / torch.where(total > 0, total, torch.ones_like(total))


def gfar_select(p: torch.Tensor, seen: torch.Tensor, k: int) -> torch.Tensor:
    """Greedy GFAR lists ``[B, k]`` from relevance probabilities ``p [B, m, I]``."""
    b, m, n = p.shape
    blocked = seen.clone()
    not_relevant = torch.ones(b, m, 1, dtype=p.dtype, device=p.device)  # Π (1 - p(u, j))
    out = torch.full((b, k), -1, dtype=torch.long, device=p.device)
    rows = torch.arange(b, device=p.device)
    for rank in range(min(k, n)):
        gain = (p * not_relevant).sum(dim=1).masked_fill(blocked, float("-inf"))
        best = gain.argmax(dim=-1)  # first maximum = lower item index
        ok = torch.isfinite(gain[rows, best])
        out[:, rank] = torch.where(ok, best, -1)
        blocked[rows, best] = True
        not_relevant = not_relevant * (1 - p[rows, :, best] * ok[:, None]).unsqueeze(-1)
    return out


class GFAR:
    """GFAR over the members' ELSA scores ``x A Aᵀ - x``."""

    name = "GFAR"

    def __init__(self, elsa: ElsaLike, n_relevant: int | None = None) -> None:
        self.elsa, self.n_relevant = elsa, n_relevant
        self.score_key = ("elsa_scores", id(elsa))

    def score(self, inputs: torch.Tensor) -> torch.Tensor:
        return member_elsa_scores(self.elsa, inputs)

    def aggregate(self, state: torch.Tensor, seen: torch.Tensor, k: int) -> Recommendation:
        p = borda_probabilities(state, seen, self.n_relevant or k)
        return Recommendation(gfar_select(p, seen, k))
