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
    """``split.parquet`` (user, split) -> {"train": users, "valid": users, "test": users}, sorted."""
    frame = read_parquet(path, columns=["user", "split"])
    return {
        name: np.sort(frame.loc[frame["split"] == name, "user"].to_numpy().astype(np.int64))
        for name in SPLITS
    }


def pool_users(split: dict[str, np.ndarray], pool: str) -> np.ndarray:
    """Users of a pool name: a split name or ``full`` (every user)."""
    if pool == "full":
        return np.sort(np.concatenate([split[s] for s in SPLITS]))
    if pool not in split:
        raise ValueError(f"unknown user pool {pool!r}; expected one of {SPLITS + ('full',)}")
    return split[pool]
