"""The prepared interaction data as sparse matrices and split index arrays."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sagea.io import read_parquet  # unreadable files are moved aside so a rerun regenerates them

SPLITS = ("train", "valid", "test")


def interactions_to_csr(interactions: pd.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix:
    """0/1 user x item CSR (float32) from a frame with int columns ``user``, ``item``."""
    users = interactions["user"].to_numpy()
    items = interactions["item"].to_numpy()
    data = np.ones(len(users), dtype=np.float32)
    csr = sp.csr_matrix((data, (users, items)), shape=(n_users, n_items), dtype=np.float32)
    csr.sum_duplicates()
    csr.data[:] = 1.0
    csr.sort_indices()
    return csr


def load_interactions(data_dir: str | os.PathLike) -> sp.csr_matrix:
    """CSR of ``<data_dir>/interactions.parquet``; shape from users/items.parquet."""
    n_users = len(read_parquet(os.path.join(data_dir, "users.parquet"), columns=["user"]))
    n_items = len(read_parquet(os.path.join(data_dir, "items.parquet"), columns=["item"]))
    frame = read_parquet(os.path.join(data_dir, "interactions.parquet"), columns=["user", "item"])
    return interactions_to_csr(frame, n_users, n_items)


def load_split(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``split.parquet`` -> {"train": users, "valid": users, "test": users} in each split's row order.

    The row order is the ``position`` column (``sagea.data.splits.split_users``): increasing user
    index by default, the research code's permuted order with ``split.method: research``. Files
    without ``position`` give increasing user order. Every consumer that draws something per row
    (single-user targets) or batches the rows iterates in this order.
    """
    frame = read_parquet(path)
    missing = {"user", "split"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: no column(s) {sorted(missing)}; rebuild it with the split rule")
    frame = frame.sort_values(["position", "user"] if "position" in frame.columns else ["user"], kind="stable")
    return {name: frame.loc[frame["split"] == name, "user"].to_numpy().astype(np.int64) for name in SPLITS}


def pool_users(split: dict[str, np.ndarray], pool: str) -> np.ndarray:
    """Users of a pool name: a split name or ``full`` (every user), sorted."""
    if pool == "full":
        return np.sort(np.concatenate([split[s] for s in SPLITS]))
    if pool not in split:
        raise ValueError(f"unknown user pool {pool!r}; expected one of {SPLITS + ('full',)}")
    return np.sort(split[pool])  # a pool is a set: group sampling never depends on the split's row order
