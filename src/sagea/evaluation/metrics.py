"""Top-k ranking metrics, one pure batched function each (binary relevance).

All take ``hits``: a bool array ``[n, k]`` saying whether the item at each rank is relevant
(see :func:`hits_at_k`), and where needed ``n_relevant``: the number of relevant items per row.
Rows with no relevant item score 0 (and are usually excluded by the caller).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def hits_at_k(topk: np.ndarray, relevant: sp.csr_matrix | np.ndarray) -> np.ndarray:
    """``hits[r, j]`` = item ``topk[r, j]`` is relevant for row r (``relevant``: [n, items] 0/1)."""
    topk = np.asarray(topk)
    rows = np.repeat(np.arange(topk.shape[0]), topk.shape[1])
    if sp.issparse(relevant):
        values = np.asarray(relevant[rows, topk.reshape(-1)]).reshape(topk.shape)
    else:
        values = np.asarray(relevant)[rows, topk.reshape(-1)].reshape(topk.shape)
    return values > 0


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def dcg(hits: np.ndarray) -> np.ndarray:
    """Σ_rank (2^rel − 1) / log2(rank + 1) with binary rel."""
    return (hits * _discounts(hits.shape[1])).sum(axis=1)


def ndcg(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """DCG / IDCG, IDCG from ``min(k, n_relevant)`` relevant items at the top."""
    k = hits.shape[1]
    ideal = np.concatenate([[0.0], np.cumsum(_discounts(k))])[np.minimum(n_relevant, k)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ideal > 0, dcg(hits) / np.where(ideal > 0, ideal, 1.0), 0.0)


def recall(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Hits / min(k, n_relevant) (docs/method.md §2's denominator)."""
    denom = np.minimum(n_relevant, hits.shape[1])
    return np.where(denom > 0, hits.sum(axis=1) / np.maximum(denom, 1), 0.0)


def precision(hits: np.ndarray) -> np.ndarray:
    """Hits / k."""
    return hits.sum(axis=1) / hits.shape[1]


def hit_rate(hits: np.ndarray, min_hits: int = 1) -> np.ndarray:
    """1 where the list holds at least ``min_hits`` relevant items (research code: ``min_hits=2``, defect 1)."""
    return (hits.sum(axis=1) >= min_hits).astype(np.float64)


def mrr(hits: np.ndarray) -> np.ndarray:
    """Reciprocal rank of the first relevant item (0 if none)."""
    any_hit = hits.any(axis=1)
    first = hits.argmax(axis=1)
    return np.where(any_hit, 1.0 / (first + 1), 0.0)


def coverage(topk: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    return float(np.unique(np.asarray(topk)).size / n_items)
