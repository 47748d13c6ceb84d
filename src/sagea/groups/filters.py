"""The filters that decide which grown groups a group set keeps (docs/method.md §4).

* distinct member *sets* only (:func:`unique_group_index`);
* more than ``common_interactions`` items held out by every member under the group evaluation
  split (:func:`count_common_targets`, with the cheaper bound :func:`common_items` first);
* optionally at most ``max_overlap`` of a group's members shared with a group kept before it
  (:func:`cap_overlap`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from sagea.evaluation.splits import common_targets, group_split, group_target_masks


def unique_group_index(groups: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct member *set*, in original order."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(np.sort(groups, axis=1), axis=0, return_index=True)
    return np.sort(first)


def common_items(rows: sp.csr_matrix, groups: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Number of items every member of a group interacted with, ``|∩_u items(u)|``, per group."""
    groups = np.asarray(groups, dtype=np.int64)
    out = np.zeros(len(groups), dtype=np.int32)
    for lo in range(0, len(groups), chunk):
        part = groups[lo : lo + chunk]
        common = rows[part[:, 0]]
        for col in range(1, part.shape[1]):
            common = common.multiply(rows[part[:, col]])
        out[lo : lo + chunk] = np.asarray((sp.csr_matrix(common) > 0).sum(axis=1)).ravel()
    return out


def count_common_targets(
    rows: sp.csr_matrix,
    groups: np.ndarray,
    target_ratio: float = 0.5,
    seed: int = 42,
    shared_mask: bool = False,
    max_bytes: int = 64 * 2**20,
) -> np.ndarray:
    """Items held out by every member under the group evaluation split, per group.

    The same calls as the evaluation: ``group_target_masks`` + ``group_split`` + ``common_targets``,
    in chunks of groups bounded by ``max_bytes`` of dense member rows.
    """
    groups = np.asarray(groups, dtype=np.int64)
    n_items = rows.shape[1]
    out = np.zeros(len(groups), dtype=np.int32)
    if len(groups) == 0:
        return out
    # dense member rows: float32 from toarray plus three bool arrays -> about 8 bytes per entry
    chunk = max(1, int(max_bytes // max(1, groups.shape[1] * n_items * 8)))
    for lo in range(0, len(groups), chunk):
        part = groups[lo : lo + chunk]
        masks = group_target_masks(part, n_items, target_ratio, seed, shared_mask)
        _, targets = group_split(rows, part, masks)
        out[lo : lo + chunk] = common_targets(targets).sum(axis=1)
    return out


def cap_overlap(groups: np.ndarray, order: np.ndarray, max_overlap: float | None, limit: int) -> np.ndarray:
    """Greedy in ``order``: keep a group unless it shares more than ``max_overlap`` of its members
    with a group kept before it; stop at ``limit`` kept groups. Returns the kept indices."""
    if max_overlap is None:
        return order[:limit]
    size = groups.shape[1]
    kept: list[int] = []
    by_user: dict[int, list[int]] = {}
    for g in order:
        counts: dict[int, int] = {}
        for u in groups[g]:
            for other in by_user.get(int(u), ()):
                counts[other] = counts.get(other, 0) + 1
        if counts and max(counts.values()) / size > max_overlap + 1e-12:
            continue
        kept.append(int(g))
        for u in groups[g]:
            by_user.setdefault(int(u), []).append(int(g))
        if len(kept) >= limit:
            break
    return np.asarray(kept, dtype=np.int64)

