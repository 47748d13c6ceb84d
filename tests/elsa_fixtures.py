"""Small data for the ELSA stage's tests: planted-cluster CSR matrices, ml-latest-small, contract files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sagea.io import write_json, write_parquet

#: ml-latest-small thresholds for the tests: rating >= 4, then users >= 20, items >= 10 (one pass,
#: docs/method.md §1). The paper's 50/20 would leave too few users of this 610-user sample.
ML_SMALL_MIN_USER, ML_SMALL_MIN_ITEM = 20, 10


def clustered_interactions(
    n_users: int = 600, n_items: int = 200, n_clusters: int = 8, per_user: int = 20, noise: float = 0.1, seed: int = 0
) -> sp.csr_matrix:
    """Users draw ``per_user`` items mostly from one cluster of items, with Zipf popularity inside it."""
    rng = np.random.default_rng(seed)
    item_cluster = np.arange(n_items) % n_clusters
    pop = 1.0 / (1 + rng.permutation(n_items)) ** 0.7
    rows, cols = [], []
    for u in range(n_users):
        c = rng.integers(n_clusters)
        weights = np.where(item_cluster == c, pop, pop * noise)
        chosen = rng.choice(n_items, size=per_user, replace=False, p=weights / weights.sum())
        rows.append(np.full(per_user, u))
        cols.append(chosen)
    data = np.ones(n_users * per_user, dtype=np.float32)
    return sp.csr_matrix((data, (np.concatenate(rows), np.concatenate(cols))), shape=(n_users, n_items))


def user_split(n_users: int, seed: int = 42, valid: float = 0.1, test: float = 0.1) -> dict[str, np.ndarray]:
    """docs/method.md §1: permute users with the seed; first 10% valid, next 10% test, rest train."""
    perm = np.random.default_rng(seed).permutation(n_users)
    n_valid, n_test = int(round(valid * n_users)), int(round(test * n_users))
    return {
        "valid": np.sort(perm[:n_valid]),
        "test": np.sort(perm[n_valid : n_valid + n_test]),
        "train": np.sort(perm[n_valid + n_test :]),
    }


def ml_small_matrix(ml_dir: Path) -> sp.csr_matrix:
    """ml-latest-small with a plain pandas filter (rating >= 4, users >= 20, then items >= 10)."""
    ratings = pd.read_csv(ml_dir / "ratings.csv")
    pos = ratings[ratings["rating"] >= 4.0][["userId", "movieId"]].drop_duplicates()
    counts = pos["userId"].value_counts()
    pos = pos[pos["userId"].isin(counts[counts >= ML_SMALL_MIN_USER].index)]
    counts = pos["movieId"].value_counts()
    pos = pos[pos["movieId"].isin(counts[counts >= ML_SMALL_MIN_ITEM].index)]
    users = pd.factorize(pos["userId"], sort=True)[0]
    items = pd.factorize(pos["movieId"], sort=True)[0]
    data = np.ones(len(pos), dtype=np.float32)
    return sp.csr_matrix((data, (users, items)), shape=(users.max() + 1, items.max() + 1))


def write_data_dir(matrix: sp.csr_matrix, split: dict[str, np.ndarray], data_dir: Path) -> None:
    """Write a data stage's outputs (docs/ARCHITECTURE.md) for ``matrix``."""
    coo = sp.coo_matrix(matrix)
    order = np.lexsort((coo.col, coo.row))
    inter = pd.DataFrame({"user": coo.row[order].astype(np.int32), "item": coo.col[order].astype(np.int32)})
    n_users, n_items = matrix.shape
    write_parquet(inter, data_dir / "interactions.parquet")
    write_parquet(
        pd.DataFrame({
            "user": np.arange(n_users, dtype=np.int32), "original_id": [f"u{i}" for i in range(n_users)],
            "n_interactions": np.diff(sp.csr_matrix(matrix).indptr).astype(np.int32),
        }),
        data_dir / "users.parquet",
    )  # fmt: skip
    write_parquet(
        pd.DataFrame({
            "item": np.arange(n_items, dtype=np.int32), "original_id": [f"i{i}" for i in range(n_items)],
            "n_interactions": np.asarray(matrix.sum(axis=0)).ravel().astype(np.int32),
        }),
        data_dir / "items.parquet",
    )  # fmt: skip
    frame = pd.concat([pd.DataFrame({"user": split[s].astype(np.int32), "split": s}) for s in ("train", "valid", "test")])
    write_parquet(frame.sort_values("user").reset_index(drop=True), data_dir / "split.parquet")
    write_json({"filter": {"min_user_interactions": 3, "min_item_interactions": 2}}, data_dir / "card.json")
