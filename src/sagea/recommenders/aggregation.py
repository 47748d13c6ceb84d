"""Dense ELSA group baselines (docs/method.md §5).

- ``ELSA``: decode the mean of the members' dense embeddings, ``(1/m Σ_u x_u A) Aᵀ``.
- ``ELSA_INT``: the union of the members' inputs as one user, ``x_G A Aᵀ - x_G``.
- Score aggregation over each member's relevance ``r_u = minmax(x_u A Aᵀ - x_u)`` (over all
  items): ``ADD`` Σ_u r_u, ``MUL`` Π_u r_u, ``LMS`` min_u r_u, ``MPL`` max_u r_u.

Seen items (union of the members' inputs) are excluded for every strategy (defects 6 and 7
fixed); ties go to the lower item index. ``seen_at_zero`` reproduces the research code: seen items
stay candidates with score 0 (ELSA: raw decoded score 0, defect 6; ADD/MUL/LMS/MPL: relevance 0
for every member, so the aggregate is 0, defect 7), so they fill the list where the other items
score below (ELSA: negative scores) or equal to 0.
"""

from __future__ import annotations

import torch

from sagea.recommenders.base import Recommendation
from sagea.scoring import ElsaLike, elsa_scores, exclude, member_relevance, stable_topk

SCORE_AGGREGATIONS = ("ADD", "MUL", "LMS", "MPL")


def aggregate_scores(relevance: torch.Tensor, method: str) -> torch.Tensor:
    """Group scores ``[B, I]`` from member relevance ``[B, m, I]`` by ADD/MUL/LMS/MPL."""
    if method == "ADD":
        return relevance.sum(dim=1)
    if method == "MUL":
        return relevance.prod(dim=1)
    if method == "LMS":
        return relevance.amin(dim=1)
    if method == "MPL":
        return relevance.amax(dim=1)
    raise ValueError(f"unknown score aggregation {method!r}; expected one of {SCORE_AGGREGATIONS}")


def _drop_seen(scores: torch.Tensor, seen: torch.Tensor, seen_at_zero: bool) -> torch.Tensor:
    """Seen items excluded (``-inf``), or with ``seen_at_zero`` (research defects 6/7) scored 0."""
    return scores.masked_fill(seen, 0.0) if seen_at_zero else exclude(scores, seen)


class ScoreAggregation:
    """ADD / MUL / LMS / MPL as a group recommender; all four share one scoring per chunk."""

    def __init__(self, elsa: ElsaLike, method: str, seen_at_zero: bool = False) -> None:
        if method not in SCORE_AGGREGATIONS:
            raise ValueError(f"unknown score aggregation {method!r}; expected one of {SCORE_AGGREGATIONS}")
        self.name, self.elsa, self.method = method, elsa, method
        self.seen_at_zero = seen_at_zero  # defect 7
        self.score_key = ("relevance", id(elsa))

    def score(self, inputs: torch.Tensor) -> torch.Tensor:
        return member_relevance(self.elsa, inputs)

    def aggregate(self, state: torch.Tensor, seen: torch.Tensor, k: int) -> Recommendation:
        return Recommendation(stable_topk(_drop_seen(aggregate_scores(state, self.method), seen, self.seen_at_zero), k))


class ElsaMean:
    """``ELSA``: the mean of the members' dense embeddings, decoded."""

    name = "ELSA"

    def __init__(self, elsa: ElsaLike, seen_at_zero: bool = False) -> None:
        self.elsa = elsa
        self.seen_at_zero = seen_at_zero  # defect 6
        self.score_key = ("elsa_embeddings", id(elsa))

    def score(self, inputs: torch.Tensor) -> torch.Tensor:
        b, m, n = inputs.shape
        return self.elsa.encode(inputs.reshape(b * m, n)).reshape(b, m, -1)

    def aggregate(self, state: torch.Tensor, seen: torch.Tensor, k: int) -> Recommendation:
        return Recommendation(stable_topk(_drop_seen(self.elsa.decode(state.mean(dim=1)), seen, self.seen_at_zero), k))


class ElsaUnion:
    """``ELSA_INT``: the union of the members' inputs treated as one user."""

    name = "ELSA_INT"

    def __init__(self, elsa: ElsaLike) -> None:
        self.elsa = elsa
        self.score_key = ("elsa_union", id(elsa))

    def score(self, inputs: torch.Tensor) -> torch.Tensor:
        union = inputs.amax(dim=1)
        return elsa_scores(self.elsa, union)

    def aggregate(self, state: torch.Tensor, seen: torch.Tensor, k: int) -> Recommendation:
        return Recommendation(stable_topk(exclude(state, seen), k))
