"""Shared pieces of the group recommenders: the strategy interface and its output.

Every strategy works on a chunk of groups at once: member inputs ``[B, m, I]`` (0/1), the
group's seen items ``[B, I]`` (union of the members' inputs), and returns the top-k items
``[B, k]`` (int64, ``-1`` pads a list when fewer than k unseen items exist).

Tie-breaking (documented, deterministic): on equal scores the lower item index comes first.
Seen items are never recommended: their score is set to ``-inf`` and any ``-inf`` pick is
replaced by the padding value ``-1`` (:func:`sagea.scoring.exclude`, :func:`sagea.scoring.stable_topk`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch


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
