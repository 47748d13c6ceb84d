"""Every seeded split of the study.

- :func:`split_users`: the user-level train/valid/test split (docs/method.md §1).
- :func:`user_input_target_split`: each evaluated user's interactions into inputs and targets
  (single-user evaluation).
- :func:`group_target_masks`, :func:`group_split`, :func:`common_targets`: the group evaluation
  split (docs/method.md §5), shared by the group sampling filter and the evaluation.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.sparse as sp

SPLIT_NAMES = ("train", "valid", "test")
#: ``ours``: NumPy ``Generator`` permutation, rows of each split in increasing user order;
#: ``research``: the research code's legacy global-RNG stream, rows in permuted order.
SPLIT_METHODS = ("ours", "research")


def split_users(
    n_users: int,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
    method: str = "ours",
) -> pd.DataFrame:
    """Permute users with ``seed``; the first ``n_valid`` are valid, the next ``n_test`` test, the
    rest train. Returns ``user`` int32, ``split`` string and ``position`` int32 (the user's row in
    its split's matrix), sorted by user.

    ``method="ours"``: ``n_valid = floor(valid_fraction * n)`` (likewise test), the permutation of
    ``numpy.random.default_rng(seed)``, and rows of each split in increasing user order.
    ``method="research"``: exactly the research code — ``np.random.seed(seed)`` then
    ``np.random.permutation(n)``, ``n_valid = int(n * valid_fraction)``, and the rows of each split
    in permuted order (the order its single-user targets are drawn in).
    """
    if method not in SPLIT_METHODS:
        raise ValueError(f"datasets.<name>.split.method is {method!r}; expected one of {SPLIT_METHODS}")
    if valid_fraction + test_fraction >= 1:
        raise ValueError(
            f"split.valid_fraction + split.test_fraction = {valid_fraction + test_fraction} leaves no "
            "training users; keep their sum below 1"
        )
    if method == "research":
        n_valid, n_test = int(n_users * valid_fraction), int(n_users * test_fraction)
        order = np.random.RandomState(seed).permutation(n_users)  # = np.random.seed + permutation
    else:
        n_valid = int(np.floor(valid_fraction * n_users + 1e-9))
        n_test = int(np.floor(test_fraction * n_users + 1e-9))
        order = np.random.default_rng(seed).permutation(n_users)
    if n_users - n_valid - n_test < 1:
        raise ValueError(f"{n_users} users are too few for the split fractions; no training user left")
    labels = np.empty(n_users, dtype=object)
    position = np.empty(n_users, dtype=np.int32)
    bounds = {"valid": (0, n_valid), "test": (n_valid, n_valid + n_test), "train": (n_valid + n_test, n_users)}
    for name, (lo, hi) in bounds.items():
        members = order[lo:hi] if method == "research" else np.sort(order[lo:hi])
        labels[members] = name
        position[members] = np.arange(len(members), dtype=np.int32)
    return pd.DataFrame(
        {"user": np.arange(n_users, dtype=np.int32), "split": labels.astype(str), "position": position}
    )


#: ``ours``: one vectorised draw; ``research``: the research code's per-row legacy-RNG stream.
TARGET_METHODS = ("ours", "research")


def user_input_target_split(
    rows: sp.csr_matrix, target_fraction: float = 0.2, seed: int = 42, method: str = "ours"
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per row, ``ceil(target_fraction * n_u)`` interactions chosen at random become targets.

    Returns ``(inputs, targets)`` with the shape of ``rows``. Deterministic in ``seed``.
    ``method="ours"``: one uniform key per stored interaction, the smallest keys of a row are its
    targets. ``method="research"``: :func:`research_target_mask` — the research code's stream,
    which depends on the order of the rows.
    """
    if method not in TARGET_METHODS:
        raise ValueError(f"datasets.<name>.split.target_method is {method!r}; expected one of {TARGET_METHODS}")
    rows = sp.csr_matrix(rows, dtype=np.float32, copy=True)
    rows.sum_duplicates()
    rows.data[:] = 1.0
    if method == "research":
        return _apply_target_mask(rows, research_target_mask(np.diff(rows.indptr), target_fraction, seed))
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
    return _apply_target_mask(rows, is_target)


def research_target_mask(counts: np.ndarray, target_fraction: float = 0.2, seed: int = 42) -> np.ndarray:
    """The research code's targets: one bool per stored interaction, rows one after another.

    ``np.random.seed(seed)`` once, then per row with ``n`` interactions (in row order)
    ``np.random.permutation`` of ``ceil(target_fraction * n)`` True (float ``ceil``, no tolerance)
    followed by False, aligned with the row's column-sorted entries. One RNG call per row: a Python
    loop by nature (a private ``RandomState``, so the global NumPy state is untouched).
    """
    rng = np.random.RandomState(seed)
    parts = []
    for n in np.asarray(counts, dtype=np.int64).tolist():
        n_target = int(np.ceil(n * target_fraction))
        parts.append(rng.permutation(np.arange(n) < n_target))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def _apply_target_mask(rows: sp.csr_matrix, is_target: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(inputs, targets) of canonical 0/1 ``rows`` from one bool per stored entry."""
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
    """One item mask per group (docs/method.md §5): True = the item is a target for every member.

    ``groups``: int array ``[n_groups, size]`` of member indices. The mask of a group depends only
    on ``seed`` and the *set* of its members (so it is the same wherever the group is evaluated)
    and holds exactly ``round(target_ratio * n_items)`` items. ``shared_mask`` reproduces the
    research code's defect 3 bit for bit: one mask for every group, drawn from ``seed`` alone as
    ``np.random.seed(seed); np.random.random(n_items) < target_ratio`` over the item index order
    (so the number of target items is random, not exactly the ratio).
    """
    groups = np.asarray(groups)
    if shared_mask:
        mask = research_group_mask(n_items, target_ratio, seed)
        return np.broadcast_to(mask, (len(groups), n_items)).copy()
    n_target = int(round(target_ratio * n_items))
    member_sets = np.sort(groups.astype(np.int64), axis=-1).tolist()
    chosen = np.empty((len(groups), n_target), dtype=np.int64)
    # The one step per group: the mask *is* the permutation of a generator seeded by the group's
    # member set, so the draw cannot be batched across groups without changing every mask.
    # Sorting, the seeds and the scatter into the masks are array operations.
    for g, members in enumerate(member_sets):
        chosen[g] = np.random.default_rng([seed, *members]).permutation(n_items)[:n_target]
    masks = np.zeros((len(groups), n_items), dtype=bool)
    np.put_along_axis(masks, chosen, True, axis=1)
    return masks


def research_group_mask(n_items: int, target_ratio: float = 0.5, seed: int = 42) -> np.ndarray:
    """The research code's one group mask ``[n_items]`` (True = target); legacy-RNG stream of
    ``np.random.seed(seed); np.random.random(n_items) < target_ratio`` without touching global state."""
    return np.random.RandomState(seed).random_sample(n_items) < target_ratio


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
