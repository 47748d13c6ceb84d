"""Similarity of users and the thresholds of the group kinds (docs/method.md §4).

Similarity of two users is ``sim(u, v) = (cos(e_u, e_v) + 1) / 2`` in [0, 1], computed from
row-normalised embeddings, always for given pairs or groups in blocks (never a pool x pool
matrix). Thresholds are quantiles of ``sim`` over random non-self pairs of the pool: ``Td``
(similar) and ``Ts`` (divergent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sagea.groups.errors import GroupSamplingError


@dataclass(frozen=True)
class Thresholds:
    """``similar`` = Td, ``divergent`` = Ts, estimated on ``n_pairs`` random non-self pairs."""

    similar: float
    divergent: float
    similar_quantile: float
    divergent_quantile: float
    n_pairs: int
    pair_mean: float
    pair_std: float


def normalize_rows(embeddings: np.ndarray) -> np.ndarray:
    """``e / ||e||`` per row as float32 (an all-zero row stays zero: similarity 0.5 to anyone)."""
    emb = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return (emb / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


def pair_similarity(normed: np.ndarray, left: np.ndarray, right: np.ndarray, block: int = 4096) -> np.ndarray:
    """``(cos + 1) / 2`` of the pairs ``(left[i], right[i])`` of rows of ``normed``, in blocks."""
    out = np.empty(len(left), dtype=np.float32)
    for start in range(0, len(left), block):
        sl = slice(start, start + block)
        out[sl] = (np.einsum("ij,ij->i", normed[left[sl]], normed[right[sl]]) + 1.0) / 2.0
    return out


def estimate_thresholds(
    normed: np.ndarray,
    n_pairs: int = 100_000,
    similar_quantile: float = 0.75,
    divergent_quantile: float = 0.25,
    seed: int = 42,
) -> Thresholds:
    """Td / Ts = quantiles of the similarity of ``n_pairs`` uniformly random pairs ``i != j``."""
    n = len(normed)
    if n < 2:
        raise GroupSamplingError(
            f"the user pool has {n} user(s); at least 2 are needed to estimate thresholds"
        )
    rng = np.random.default_rng([seed, 0x7D])
    left = rng.integers(0, n, size=n_pairs)
    right = rng.integers(0, n - 1, size=n_pairs)
    right += right >= left  # uniform over j != i
    sims = pair_similarity(normed, left, right)
    td, ts = np.quantile(sims.astype(np.float64), [similar_quantile, divergent_quantile])
    return Thresholds(
        similar=float(td),
        divergent=float(ts),
        similar_quantile=similar_quantile,
        divergent_quantile=divergent_quantile,
        n_pairs=int(n_pairs),
        pair_mean=float(sims.mean()),
        pair_std=float(sims.std()),
    )


def group_similarities(
    normed: np.ndarray, groups: np.ndarray, sizes: tuple[int, int], max_bytes: int = 64 * 2**20
) -> dict[str, np.ndarray]:
    """Mean pairwise similarity of each group, of each subgroup and between the subgroups.

    ``groups`` holds rows of ``normed`` (subgroup 0 first). Subgroup values are NaN for
    non-opposing sets (``sizes[1] == 0``) and for a subgroup of one member. Groups are taken in
    chunks of about ``max_bytes`` of gathered float64 member embeddings; the means do not depend on
    the chunking.
    """
    groups = np.asarray(groups, dtype=np.int64)
    n, size = groups.shape
    a, b = sizes
    everyone, first, second = np.arange(size), np.arange(a), np.arange(a, a + b)
    triu = np.triu(np.ones((size, size), dtype=bool), k=1)

    def pair_mask(rows: np.ndarray, cols: np.ndarray, upper: bool) -> np.ndarray:
        mask = np.zeros((size, size), dtype=bool)
        mask[np.ix_(rows, cols)] = True
        return mask & triu if upper else mask

    masks = {"group_similarity": pair_mask(everyone, everyone, upper=True)}
    if b > 0:
        masks["subgroup_similarity_0"] = pair_mask(first, first, upper=True)
        masks["subgroup_similarity_1"] = pair_mask(second, second, upper=True)
        masks["between_similarity"] = pair_mask(first, second, upper=False)
    out = {key: np.full(n, np.nan) for key in
           ("group_similarity", "subgroup_similarity_0", "subgroup_similarity_1", "between_similarity")}  # fmt: skip
    chunk = max(1, int(max_bytes // max(1, size * normed.shape[1] * 8)))
    for lo in range(0, n, chunk):
        emb = np.take(normed, groups[lo : lo + chunk], axis=0).astype(np.float64)
        sim = (np.matmul(emb, emb.transpose(0, 2, 1)) + 1.0) / 2.0  # [chunk, size, size]
        for key, mask in masks.items():
            if mask.any():
                out[key][lo : lo + chunk] = _row_mean(sim[:, mask])
    return out


def _row_mean(values: np.ndarray) -> np.ndarray:
    """Mean of each row, summed left to right: the same bits whatever the number of rows (numpy's
    ``mean(axis=1)`` sums a single row pairwise but several rows of this layout left to right)."""
    total = values[:, 0].copy()
    for col in range(1, values.shape[1]):  # over member pairs, never over groups
        total += values[:, col]
    return total / values.shape[1]
