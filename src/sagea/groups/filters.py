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

from sagea.data.splits import group_target_masks


def unique_group_index(groups: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct member *set*, in original order."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(np.sort(groups, axis=1), axis=0, return_index=True)
    return np.sort(first)


def _common_member_items(rows: sp.csr_matrix, groups: np.ndarray) -> sp.csr_matrix:
    """Bool CSR ``[n_groups, items]``: the items every member holds (a stored value > 0)."""
    common = rows[groups[:, 0]] > 0
    for col in range(1, groups.shape[1]):
        common = common.multiply(rows[groups[:, col]] > 0)
    common = sp.csr_matrix(common)
    common.eliminate_zeros()
    return common


def common_items(rows: sp.csr_matrix, groups: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Number of items every member of a group interacted with, ``|∩_u items(u)|``, per group."""
    groups = np.asarray(groups, dtype=np.int64)
    out = np.zeros(len(groups), dtype=np.int32)
    for lo in range(0, len(groups), chunk):
        out[lo : lo + chunk] = np.diff(_common_member_items(rows, groups[lo : lo + chunk]).indptr)
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

    The evaluation's masks (``group_target_masks``) applied to the items every member holds (a
    sparse intersection of their rows): the count of ``common_targets(group_split(...))`` without
    dense member rows. Groups are taken in chunks bounded by ``max_bytes`` of masks.
    """
    groups = np.asarray(groups, dtype=np.int64)
    n_items = rows.shape[1]
    out = np.zeros(len(groups), dtype=np.int32)
    chunk = max(1, int(max_bytes // max(1, n_items)))  # masks: one byte per (group, item)
    for lo in range(0, len(groups), chunk):
        part = groups[lo : lo + chunk]
        masks = group_target_masks(part, n_items, target_ratio, seed, shared_mask)
        common = _common_member_items(rows, part).tocoo()
        held_out = masks[common.row, common.col]
        out[lo : lo + chunk] = np.bincount(common.row[held_out], minlength=len(part))
    return out


def _incidence(groups: np.ndarray, n_users: int) -> sp.csr_matrix:
    """Group x user 0/1 matrix of ``groups [n, size]`` (int32 counts of shared members by product)."""
    n, size = groups.shape
    return sp.csr_matrix(
        (np.ones(groups.size, dtype=np.int32), (np.repeat(np.arange(n), size), groups.reshape(-1))),
        shape=(n, n_users),
    )


def _greedy_in_order(edges_later: np.ndarray, edges_earlier: np.ndarray, dropped: np.ndarray) -> np.ndarray:
    """The greedy choice in index order on a conflict graph, in vectorised rounds.

    Candidate ``i`` is kept unless an earlier kept candidate conflicts with it; the edges join a
    later candidate to an earlier one; ``dropped`` marks candidates already excluded. Each round
    drops the undecided candidates with a kept earlier neighbour and keeps those whose earlier
    neighbours are all dropped, so the earliest undecided candidate is always decided and the
    rounds follow the longest chain of conflicts (a few rounds in practice).
    """
    state = np.where(dropped, 2, 0).astype(np.int8)  # 0 undecided, 1 kept, 2 dropped
    later, earlier = edges_later, edges_earlier
    while (state == 0).any():
        state[later[state[earlier] == 1]] = 2  # a kept earlier neighbour (kept rows have none kept)
        blocked = np.zeros(len(state), dtype=bool)
        blocked[later[state[earlier] == 0]] = True
        state[(state == 0) & ~blocked] = 1
        live = state[later] == 0
        later, earlier = later[live], earlier[live]
    return state == 1


def cap_overlap(
    groups: np.ndarray, order: np.ndarray, max_overlap: float | None, limit: int, block: int | None = None
) -> np.ndarray:
    """Greedy in ``order``: keep a group unless it shares more than ``max_overlap`` of its members
    with a group kept before it; stop at ``limit`` kept groups. Returns the kept indices.

    Vectorised over groups: ``order`` is taken in blocks (``block`` groups; default twice the
    groups still needed, at least 1024); a block's groups conflicting with a group kept in an
    earlier block are dropped, the rest are resolved among themselves by :func:`_greedy_in_order`
    on their sparse conflict graph (shared members from the product of group x user incidences).
    """
    order = np.asarray(order, dtype=np.int64)
    if max_overlap is None:
        return order[:limit]
    groups = np.asarray(groups, dtype=np.int64)
    size = groups.shape[1]
    n_users = int(groups.max()) + 1 if groups.size else 0
    kept = np.zeros(0, dtype=np.int64)
    kept_incidence = _incidence(groups[kept], n_users)
    start = 0
    while start < len(order) and len(kept) < limit:
        part = order[start : start + (block or max(1024, 2 * (limit - len(kept))))]
        start += len(part)
        incidence = _incidence(groups[part], n_users)
        # conflicts: shared / size > max_overlap + 1e-12, the same float test as a loop over pairs
        with_kept = (incidence @ kept_incidence.T).tocoo()
        dropped = np.zeros(len(part), dtype=bool)
        dropped[with_kept.row[with_kept.data / size > max_overlap + 1e-12]] = True
        among = sp.tril(incidence @ incidence.T, k=-1).tocoo()
        conflict = among.data / size > max_overlap + 1e-12
        keep = _greedy_in_order(among.row[conflict], among.col[conflict], dropped)
        new = part[keep][: limit - len(kept)]
        kept = np.concatenate([kept, new])
        kept_incidence = sp.vstack([kept_incidence, _incidence(groups[new], n_users)]).tocsr()
    return kept
