"""User-level train/valid/test split (docs/method.md §1).

The single-user input/target split used for evaluating valid/test users is
:func:`sagea.evaluation.splits.user_input_target_split`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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
