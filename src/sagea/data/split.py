"""User-level train/valid/test split (REFERENCE.md §1).

The single-user input/target split used for evaluating valid/test users is
:func:`sagea.evaluation.splits.user_input_target_split`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLIT_NAMES = ("train", "valid", "test")


def split_users(
    n_users: int, valid_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 42
) -> pd.DataFrame:
    """Permute users with ``seed``; the first ``floor(valid_fraction * n)`` are valid, the next
    ``floor(test_fraction * n)`` test, the rest train. Returns ``user`` int32, ``split`` string,
    sorted by user."""
    if valid_fraction + test_fraction >= 1:
        raise ValueError(
            f"split.valid_fraction + split.test_fraction = {valid_fraction + test_fraction} leaves no "
            "training users; keep their sum below 1"
        )
    n_valid = int(np.floor(valid_fraction * n_users + 1e-9))
    n_test = int(np.floor(test_fraction * n_users + 1e-9))
    if n_users - n_valid - n_test < 1:
        raise ValueError(f"{n_users} users are too few for the split fractions; no training user left")
    order = np.random.default_rng(seed).permutation(n_users)
    labels = np.empty(n_users, dtype=object)
    labels[order[:n_valid]] = "valid"
    labels[order[n_valid : n_valid + n_test]] = "test"
    labels[order[n_valid + n_test :]] = "train"
    return pd.DataFrame({"user": np.arange(n_users, dtype=np.int32), "split": labels.astype(str)})
