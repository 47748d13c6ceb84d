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
    normed: np.ndarray, groups: np.ndarray, sizes: tuple[int, int]
) -> dict[str, np.ndarray]:
    """Mean pairwise similarity of each group, of each subgroup and between the subgroups.

    ``groups`` holds rows of ``normed`` (subgroup 0 first). Subgroup values are NaN for
    non-opposing sets (``sizes[1] == 0``) and for a subgroup of one member.
    """
    n, size = groups.shape
    emb = np.take(normed, np.asarray(groups, dtype=np.int64), axis=0).astype(np.float64)
    sim = (np.matmul(emb, emb.transpose(0, 2, 1)) + 1.0) / 2.0  # [n, size, size]

    def mean_over(rows: np.ndarray, cols: np.ndarray, upper: bool) -> np.ndarray:
        mask = np.zeros((size, size), dtype=bool)
        mask[np.ix_(rows, cols)] = True
        if upper:
            mask &= np.triu(np.ones((size, size), dtype=bool), k=1)
        if not mask.any():
            return np.full(n, np.nan)
        return sim[:, mask].mean(axis=1)

    a, b = sizes
    everyone = np.arange(size)
    out = {"group_similarity": mean_over(everyone, everyone, upper=True)}
    nan = np.full(n, np.nan)
    if b == 0:
        out.update(subgroup_similarity_0=nan, subgroup_similarity_1=nan, between_similarity=nan)
    else:
        first, second = np.arange(a), np.arange(a, a + b)
        out["subgroup_similarity_0"] = mean_over(first, first, upper=True)
        out["subgroup_similarity_1"] = mean_over(second, second, upper=True)
        out["between_similarity"] = mean_over(first, second, upper=False)
    return out

