"""Fixture files of the SAE stage's inputs in the contract's formats (docs/ARCHITECTURE.md).

A small clustered interaction matrix (every user likes items of two of ``n_clusters`` clusters)
and an ELSA model whose item rows point to their cluster's direction plus noise, so user
embeddings ``x A`` have the low-rank, clustered structure of trained ELSA embeddings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from sagea.io import write_embeddings, write_parquet, write_torch
from sagea.models.elsa import ELSA


def clustered_matrix(n_users: int = 300, n_items: int = 120, n_clusters: int = 6, seed: int = 0):
    """0/1 CSR ``[n_users, n_items]`` and the item clusters (each user: 2 clusters, 8-20 items)."""
    rng = np.random.default_rng(seed)
    item_cluster = np.arange(n_items) % n_clusters
    liked = np.argsort(rng.random((n_users, n_clusters)), axis=1)[:, :2]
    allowed = (item_cluster[None, :, None] == liked[:, None, :]).any(axis=2)  # [users, items]
    keys = np.where(allowed, rng.random((n_users, n_items)), np.inf)
    counts = rng.integers(8, 21, size=n_users)
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    dense = (rank < counts[:, None]) & allowed
    return sp.csr_matrix(dense.astype(np.float32)), item_cluster


def clustered_elsa(item_cluster: np.ndarray, factors: int = 16, seed: int = 0, noise: float = 0.5) -> ELSA:
    """ELSA with unit rows ``normalize(center[cluster] + noise·N(0, 1))``."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((item_cluster.max() + 1, factors))
    rows = centers[item_cluster] + noise * rng.standard_normal((len(item_cluster), factors))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    model = ELSA(len(item_cluster), factors)
    with torch.no_grad():
        model.encoder.copy_(torch.as_tensor(rows, dtype=torch.float32))
    return model.eval()


def embeddings_of(elsa: ELSA, matrix: sp.csr_matrix) -> np.ndarray:
    with torch.no_grad():
        return elsa.encode(torch.as_tensor(matrix.toarray())).numpy()


def write_stage_inputs(
    root: Path, dataset: str = "synthetic", elsa_run: str = "f16-s42", n_users: int = 300, n_items: int = 120,
    factors: int = 16, titles: bool = True, seed: int = 0, rep: str = "s42",
) -> dict[str, Path]:
    """Write data/, split.parquet and elsa/<run>/ files under ``root/results/<dataset>/<rep>`` (a
    synthetic dataset's replicate folder) as upstream stages would."""
    matrix, item_cluster = clustered_matrix(n_users, n_items, seed=seed)
    elsa = clustered_elsa(item_cluster, factors, seed=seed)
    data = root / "results" / dataset / rep / "data"
    coo = matrix.tocoo()
    order = np.lexsort((coo.col, coo.row))
    write_parquet(
        pd.DataFrame({"user": coo.row[order].astype(np.int32), "item": coo.col[order].astype(np.int32)}),
        data / "interactions.parquet",
    )
    counts = np.diff(matrix.indptr).astype(np.int32)
    write_parquet(pd.DataFrame({"user": np.arange(n_users, dtype=np.int32),
                                "original_id": [f"u{u}" for u in range(n_users)],
                                "n_interactions": counts}), data / "users.parquet")  # fmt: skip
    items = pd.DataFrame({"item": np.arange(n_items, dtype=np.int32),
                          "original_id": [f"i{i}" for i in range(n_items)],
                          "n_interactions": np.asarray(matrix.sum(0)).ravel().astype(np.int32)})  # fmt: skip
    if titles:
        items["title"] = [f"item {i} (cluster {c})" for i, c in enumerate(item_cluster)]
    write_parquet(items, data / "items.parquet")
    perm = np.random.default_rng(42).permutation(n_users)
    n_hold = n_users // 10
    split = np.empty(n_users, dtype=object)
    split[perm[:n_hold]], split[perm[n_hold : 2 * n_hold]], split[perm[2 * n_hold :]] = "valid", "test", "train"
    write_parquet(pd.DataFrame({"user": np.arange(n_users, dtype=np.int32), "split": split.astype(str)}),
                  data.parent / "split.parquet")  # fmt: skip
    folder = root / "results" / dataset / rep / "elsa" / elsa_run
    write_torch({"model_state_dict": {"encoder": elsa.encoder.detach().clone()}, "hyperparameters": {},
                 "n_items": n_items, "factors": factors, "version": "test"}, folder / "model.pt")  # fmt: skip
    write_embeddings(embeddings_of(elsa, matrix), "user", folder / "user_embeddings.parquet")
    return {"data": data, "elsa": folder}
