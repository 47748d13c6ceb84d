"""Shared pieces of the group recommenders: model interfaces, exclusion, stable top-k.

Every strategy works on a chunk of groups at once: member inputs ``[B, m, I]`` (0/1), the
group's seen items ``[B, I]`` (union of the members' inputs), and returns the top-k items
``[B, k]`` (int64, ``-1`` pads a list when fewer than k unseen items exist).

Tie-breaking (documented, deterministic): on equal scores the lower item index comes first.
Seen items are never recommended: their score is set to ``-inf`` and any ``-inf`` pick is
replaced by the padding value ``-1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch


class ElsaLike(Protocol):
    """What the recommenders need from ELSA: ``encode(x [B, I]) -> [B, d]``, ``decode(e) -> [B, I]``."""

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, e: torch.Tensor) -> torch.Tensor: ...


class SaeLike(Protocol):
    """What SAGEA needs from the SAE (``sagea.models.sae.SAE``)."""

    def encode(
        self, x: torch.Tensor, topk_inference: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...

    def decode(self, code: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor: ...


@dataclass
class Recommendation:
    """Output of one strategy on one chunk: the lists and optional per-group extras."""

    items: torch.Tensor  # [B, k] int64, -1 = padding
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [B]


class GroupRecommender(Protocol):
    """Two timed phases: ``score`` (member-level work) then ``aggregate`` (fusion and top-k)."""

    name: str

    def score(self, inputs: torch.Tensor) -> object: ...

    def aggregate(self, state: object, seen: torch.Tensor, k: int) -> Recommendation: ...


def exclude(scores: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Scores with seen items at ``-inf`` (defects 6, 7 fixed: seen items are never candidates)."""
    return scores.masked_fill(seen, float("-inf"))


def stable_topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest scores along the last axis, ties -> lower index first.

    NaN counts as larger than every number (like ``torch.sort``); ``-inf`` entries are returned
    as ``-1`` (no candidate). Cost: one ``topk`` and one comparison pass; only rows with more
    items equal to the k-th value than places left take the slower exact path.
    """
    n = scores.shape[-1]
    k_eff = min(k, n)
    s = torch.nan_to_num(scores, nan=float("inf"), posinf=float("inf"), neginf=float("-inf"))
    flat = s.reshape(-1, n)
    idx = torch.topk(flat, k_eff, dim=-1).indices
    thr = flat.gather(-1, idx[:, -1:])
    ambiguous = ((flat >= thr).sum(-1) > k_eff).nonzero()[:, 0]
    if len(ambiguous):  # ties across the cut: keep the lowest indices among the tied items
        sub, t = flat[ambiguous], thr[ambiguous]
        equal = sub == t
        need = k_eff - (sub > t).sum(-1, keepdim=True)
        chosen = (sub > t) | (equal & (equal.cumsum(-1) <= need))
        idx = idx.index_put((ambiguous,), chosen.nonzero()[:, 1].reshape(-1, k_eff))
    idx = idx.sort(dim=-1).values  # ascending index, then a stable sort by score
    vals = flat.gather(-1, idx)
    order = torch.sort(vals, dim=-1, descending=True, stable=True).indices
    idx = idx.gather(-1, order)
    vals = vals.gather(-1, order)
    idx = idx.masked_fill(vals == float("-inf"), -1).reshape(*s.shape[:-1], k_eff)
    if k_eff < k:
        pad = idx.new_full((*idx.shape[:-1], k - k_eff), -1)
        idx = torch.cat([idx, pad], dim=-1)
    return idx


def minmax(scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Per-row min-max normalisation to [0, 1]: ``(s - min) / (max - min)`` (constant rows -> 0)."""
    lo = scores.amin(dim=dim, keepdim=True)
    hi = scores.amax(dim=dim, keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (scores - lo) / torch.where(span > 0, span, torch.ones_like(span)), 0.0)


def member_elsa_scores(elsa: ElsaLike, inputs: torch.Tensor) -> torch.Tensor:
    """Each member's ELSA scores ``x A Aᵀ - x`` (docs/method.md §2), ``[B, m, I]`` (float inputs)."""
    b, m, n = inputs.shape
    x = inputs.reshape(b * m, n)
    return (elsa.decode(elsa.encode(x)) - x).reshape(b, m, n)


def member_relevance(elsa: ElsaLike, inputs: torch.Tensor) -> torch.Tensor:
    """Each member's ELSA scores min-max normalised over all items to [0, 1], ``[B, m, I]``."""
    return minmax(member_elsa_scores(elsa, inputs), dim=-1)
