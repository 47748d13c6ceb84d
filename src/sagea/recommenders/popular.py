"""POPULAR: the most frequent items the group has not seen, and item popularity counts.

Popularity is the number of users holding an item. Fixed behaviour: counted over the training
users only, so no evaluated member's held-out targets leak into it. Research behaviour
(defect 4, config ``evaluation.research.popularity_with_targets``): every interaction of every
user, held-out targets included.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from sagea.recommenders.base import Recommendation, exclude, stable_topk


def item_popularity(rows: sp.csr_matrix, train_users: np.ndarray, with_targets: bool = False) -> np.ndarray:
    """Per-item user counts ``[I]`` (float64): train users' rows, or all rows if ``with_targets``."""
    source = rows if with_targets else rows[np.asarray(train_users)]
    return np.asarray((source > 0).sum(axis=0), dtype=np.float64).reshape(-1)


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
