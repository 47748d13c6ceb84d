"""POPULAR: the most frequent items the group has not seen.

Popularity is the number of users holding an item (:func:`sagea.scoring.item_popularity`):
counted over the training users only, or, in research mode (defect 4), over every user.
"""

from __future__ import annotations

import numpy as np
import torch

from sagea.recommenders.base import Recommendation
from sagea.scoring import exclude, stable_topk


class Popular:
    """Most popular unseen items (ties -> lower item index)."""

    name = "POPULAR"

    def __init__(self, popularity: np.ndarray | torch.Tensor) -> None:
        self.popularity = torch.as_tensor(popularity)
        self.score_key = ("none",)

    def score(self, inputs: torch.Tensor) -> None:
        return None

    def aggregate(self, state: None, seen: torch.Tensor, k: int) -> Recommendation:
        pop = self.popularity.to(device=seen.device, dtype=torch.float64)
        return Recommendation(stable_topk(exclude(pop.expand(seen.shape[0], -1), seen), k))
