"""Small clustered users for the group sampling tests (planted taste clusters)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def clustered_users(
    n_users: int = 400,
    n_clusters: int = 4,
    dim: int = 16,
    n_items: int = 200,
    items_per_user: int = 40,
    spread: float = 0.35,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """Embeddings around orthogonal cluster centres, the cluster labels, and interactions where
    each user mostly picks items of its cluster's block (so similar users share many items)
    plus 12 of 16 popular items shared by everyone (so any group has some common items)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_clusters, n_users)
    centres = np.eye(n_clusters, dim) * 1.0
    emb = (centres[labels] + spread * rng.normal(size=(n_users, dim)) / np.sqrt(dim)).astype(np.float32)
    block = n_items // n_clusters  # item blocks of the clusters (items 0..15 are also popular)
    rows, cols = [], []
    for u, c in enumerate(labels):  # fixture construction only, tiny
        own = rng.choice(block, size=int(items_per_user * 0.8), replace=False) + c * block
        other = rng.choice(n_items, size=items_per_user - len(own), replace=False)
        popular = rng.choice(16, size=12, replace=False)
        items = np.unique(np.r_[own, other, popular])
        rows.append(np.full(len(items), u))
        cols.append(items)
    r, c = np.concatenate(rows), np.concatenate(cols)
    x = sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(n_users, n_items))
    return emb, labels, x


def write_stage_inputs(
    root,
    elsa_run: str = "f64-s42",
    dataset: str = "synthetic",
    n_users: int = 1000,
    dim: int = 64,
    seed: int = 0,
    rep: str = "s42",
) -> None:
    """The data and ELSA files the group stage reads, in the contract's formats, under ``root``."""
    import os

    import pandas as pd

    from sagea.io import write_embeddings, write_parquet

    emb, _, x = clustered_users(n_users=n_users, n_clusters=6, dim=dim, n_items=300, seed=seed)
    data = os.path.join(root, "results", dataset, rep, "data")
    coo = x.tocoo()
    order = np.lexsort((coo.col, coo.row))
    write_parquet(
        pd.DataFrame({"user": coo.row[order].astype(np.int32), "item": coo.col[order].astype(np.int32)}),
        os.path.join(data, "interactions.parquet"),
    )
    counts = np.diff(x.indptr).astype(np.int32)
    write_parquet(
        pd.DataFrame(
            {
                "user": np.arange(n_users, dtype=np.int32),
                "original_id": [f"user{u}" for u in range(n_users)],
                "n_interactions": counts,
            }
        ),
        os.path.join(data, "users.parquet"),
    )
    write_parquet(
        pd.DataFrame(
            {
                "item": np.arange(x.shape[1], dtype=np.int32),
                "original_id": [f"item{i}" for i in range(x.shape[1])],
                "n_interactions": np.asarray(x.sum(0)).ravel().astype(np.int32),
            }
        ),
        os.path.join(data, "items.parquet"),
    )
    split = np.array(["train"] * n_users, dtype=object)
    perm = np.random.default_rng(seed).permutation(n_users)
    split[perm[: n_users // 5]] = "valid"
    split[perm[n_users // 5 : 2 * n_users // 5]] = "test"
    write_parquet(
        pd.DataFrame({"user": np.arange(n_users, dtype=np.int32), "split": split.astype(str)}),
        os.path.join(root, "results", dataset, rep, "split.parquet"),
    )
    write_embeddings(
        emb, "user", os.path.join(root, "results", dataset, rep, "elsa", elsa_run, "user_embeddings.parquet")
    )
