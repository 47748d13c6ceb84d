"""Seeded input/target splits used by the single-user and group evaluations."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp


def user_input_target_split(
    rows: sp.csr_matrix, target_fraction: float = 0.2, seed: int = 42
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per row, ``ceil(target_fraction * n_u)`` interactions chosen at random become targets.

    Returns ``(inputs, targets)`` with the shape of ``rows``. Deterministic in ``seed``:
    one uniform key per stored interaction, the smallest keys of a row are its targets.
    """
    rows = sp.csr_matrix(rows, dtype=np.float32, copy=True)
    rows.sum_duplicates()
    rows.data[:] = 1.0
    rng = np.random.default_rng(seed)
    keys = rng.random(rows.nnz)
    counts = np.diff(rows.indptr)
    n_targets = np.ceil(target_fraction * counts - 1e-9).astype(np.int64)
    row_of = np.repeat(np.arange(rows.shape[0]), counts)
    # rank of each interaction within its row by key (lexsort: row major, key minor)
    order = np.lexsort((keys, row_of))
    rank = np.empty(rows.nnz, dtype=np.int64)
    rank[order] = np.arange(rows.nnz) - np.repeat(rows.indptr[:-1], counts)
    is_target = rank < np.repeat(n_targets, counts)
    targets = rows.copy()
    targets.data = is_target.astype(np.float32)
    targets.eliminate_zeros()
    inputs = rows.copy()
    inputs.data = (~is_target).astype(np.float32)
    inputs.eliminate_zeros()
    return inputs, targets


def target_count(n: int, target_fraction: float) -> int:
    return math.ceil(target_fraction * n - 1e-9)


def group_target_masks(
    groups: np.ndarray, n_items: int, target_ratio: float = 0.5, seed: int = 42, shared_mask: bool = False
) -> np.ndarray:
    """One item mask per group (REFERENCE.md §5): True = the item is a target for every member.

    ``groups``: int array ``[n_groups, size]`` of member indices. The mask of a group depends only
    on ``seed`` and the *set* of its members (so it is the same wherever the group is evaluated)
    and holds exactly ``round(target_ratio * n_items)`` items. ``shared_mask`` reproduces the
    research code's defect 3: one mask, drawn from ``seed`` alone, for every group.
    """
    groups = np.asarray(groups)
    n_target = int(round(target_ratio * n_items))
    masks = np.zeros((len(groups), n_items), dtype=bool)
    if shared_mask:
        masks[:, np.random.default_rng(seed).permutation(n_items)[:n_target]] = True
        return masks
    for g, members in enumerate(groups):
        rng = np.random.default_rng([seed, *sorted(int(m) for m in members)])
        masks[g, rng.permutation(n_items)[:n_target]] = True
    return masks


def group_split(
    rows: sp.csr_matrix, groups: np.ndarray, masks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Member inputs and targets under the group masks, as dense bool ``[n_groups, size, items]``.

    ``rows``: the full 0/1 user x item matrix; callers chunk ``groups`` to bound memory.
    """
    groups = np.asarray(groups)
    member_rows = rows[groups.reshape(-1)].toarray().reshape(*groups.shape, rows.shape[1]) > 0
    targets = member_rows & masks[:, None, :]
    inputs = member_rows & ~masks[:, None, :]
    return inputs, targets


def common_targets(targets: np.ndarray) -> np.ndarray:
    """Items held out by every member: ``[n_groups, items]`` bool."""
    return targets.all(axis=1)
