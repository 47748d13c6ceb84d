"""Tiny upstream files in the contract formats of docs/ARCHITECTURE.md, for the evaluation stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sagea.io import write_embeddings, write_parquet, write_torch
from sagea.models.elsa import ELSA
from sagea.models.sae import SAE

N_USERS, N_ITEMS, FACTORS, WIDTH, K_SAE = 60, 80, 8, 16, 4


def write_upstream(root: Path, dataset: str = "synthetic", elsa_run: str = "f8-s42", sae_run: str = "topk-h16-k4-l2",
                   groupsets: dict[str, int] | None = None, seed: int = 0, rep: str = "s42") -> None:
    """data/, split.parquet, elsa/<elsa_run>/, sae/<elsa_run>/<sae_run>/ and groups/test/<groupset>.parquet
    under ``root/results/<dataset>/<rep>`` (a synthetic dataset's replicate folder)."""
    rng = np.random.default_rng(seed)
    res = root / "results" / dataset / rep
    dense = rng.random((N_USERS, N_ITEMS)) < 0.3
    users, items = np.nonzero(dense)
    data = res / "data"
    write_parquet(pd.DataFrame({"user": users.astype(np.int32), "item": items.astype(np.int32)}), data / "interactions.parquet")
    write_parquet(pd.DataFrame({"user": np.arange(N_USERS, dtype=np.int32), "original_id": [f"u{u}" for u in range(N_USERS)],
                                "n_interactions": dense.sum(1).astype(np.int32)}), data / "users.parquet")
    write_parquet(pd.DataFrame({"item": np.arange(N_ITEMS, dtype=np.int32), "original_id": [f"i{i}" for i in range(N_ITEMS)],
                                "n_interactions": dense.sum(0).astype(np.int32)}), data / "items.parquet")
    split = np.array(["train"] * N_USERS, dtype=object)
    split[:12], split[12:24] = "test", "valid"
    write_parquet(pd.DataFrame({"user": np.arange(N_USERS, dtype=np.int32), "split": split}), res / "split.parquet")
    elsa = ELSA(N_ITEMS, FACTORS, seed=seed)
    elsa.save(res / "elsa" / elsa_run / "model.pt", hyperparameters={"factors": FACTORS})
    write_embeddings(elsa.item_embeddings().numpy(), "item", res / "elsa" / elsa_run / "item_embeddings.parquet")
    sae = SAE(FACTORS, WIDTH, k=K_SAE, seed=seed)
    write_torch(sae.checkpoint(), res / "sae" / elsa_run / sae_run / "model.pt")
    for name, size in (groupsets or {"similar_3": 3}).items():
        n_groups = 10
        members = np.stack([rng.choice(12, size, replace=False) for _ in range(n_groups)])
        frame = pd.DataFrame({
            "group": np.repeat(np.arange(n_groups), size).astype(np.int32),
            "member": np.tile(np.arange(size), n_groups).astype(np.int16),
            "user": members.reshape(-1).astype(np.int32),
            "original_id": [f"u{u}" for u in members.reshape(-1)],
            "subgroup": np.zeros(n_groups * size, dtype=np.int8),
            "group_similarity": np.zeros(n_groups * size, dtype=np.float32),
            "subgroup_similarity_0": np.full(n_groups * size, np.nan, dtype=np.float32),
            "subgroup_similarity_1": np.full(n_groups * size, np.nan, dtype=np.float32),
            "between_similarity": np.full(n_groups * size, np.nan, dtype=np.float32),
            "n_common_targets": np.zeros(n_groups * size, dtype=np.int32),
        })  # fmt: skip
        write_parquet(frame, res / "groups" / "test" / f"{name}.parquet")
