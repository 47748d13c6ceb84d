"""Fixture files in the upstream stages' contract formats (docs/ARCHITECTURE.md) for report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sagea.io import write_json, write_parquet
from sagea import plan_report


def _per_group(n_groups: int, rng: np.random.Generator, level: float, sagea: bool) -> pd.DataFrame:
    com = np.clip(rng.normal(level, 0.1, n_groups), 0, 1)
    mn = np.clip(com - rng.uniform(0.0, 0.1, n_groups), 0, 1)
    mx = np.clip(com + rng.uniform(0.0, 0.1, n_groups), 0, 1)
    df = pd.DataFrame(
        {
            "group": np.arange(n_groups, dtype=np.int32),
            "NDCG20_com": com,
            "NDCG20_min": mn,
            "NDCG20_mean": (mn + mx + com) / 3,
            "NDCG20_max": mx,
            "Popularity": rng.uniform(0.3, 0.6, n_groups),
            "NDCG20_jain": rng.uniform(0.7, 1.0, n_groups),
            "ZeroRecall": rng.uniform(0.0, 0.3, n_groups),
            "MProportionality": rng.uniform(0.5, 1.0, n_groups),
            "Time_scoring": rng.uniform(1e-4, 2e-4, n_groups),
            "Time_aggregation": rng.uniform(1e-5, 5e-5, n_groups),
        }
    )
    if sagea:
        df["CommonFeatures"] = rng.integers(0, 10, n_groups).astype(np.float64)
    return df


def write_results(config: dict, root: str | Path, n_groups: int = 12, seed: int = 0) -> dict[str, list[dict]]:
    """Write every file the report of ``config`` reads under ``root/results`` with random values.

    Returns the entries (with absolute paths) as :func:`sagea.plan_report.report_entries`.
    """
    rng = np.random.default_rng(seed)
    results = str(Path(root) / "results")
    entries = plan_report.report_entries(config, results)
    for e in entries["per_group"]:
        level = 0.6 if e["family"] == "sagea" else 0.5
        write_parquet(_per_group(n_groups, rng, level, e["family"] == "sagea"), e["path"])
    for e in entries["single_user"]:
        split = lambda: {"NDCG20": float(rng.uniform(0.3, 0.5)), "R20": float(rng.uniform(0.3, 0.5))}  # noqa: E731
        write_json({"valid": split(), "test": split(), "history": [], "best_epoch": 3}, e["elsa_metrics"])
        write_json(
            {"POP": {"valid": split(), "test": split()}, "EASE": {"valid": split(), "test": split()}}, e["baselines"]
        )
    for e in entries["sae"]:
        split = lambda: {
            "CosineSim": float(rng.uniform(0.9, 1)),
            "L0": 16.0,
            "DeadNeurons": 0.0,  # noqa: E731
            "NDCG20": float(rng.uniform(0.3, 0.4)),
            "R20": 0.3,
            "NDCG20_Degradation": -0.01,
        }
        write_json({"valid": split(), "test": split(), "history": []}, e["path"])
    for e in entries["history"]:
        epochs = np.arange(5)
        hist = pd.DataFrame({"epoch": epochs, "loss": 1.0 / (1 + epochs), "seconds": 0.1})
        if e["model"] == "ELSA":
            hist["NDCG20_valid"] = 0.1 * epochs
        write_parquet(hist, e["path"])
    for e in entries["groups"]:
        size = 3
        opposing = e["groupset"].startswith("opposing")
        members = pd.DataFrame(
            {
                "group": np.repeat(np.arange(n_groups, dtype=np.int32), size),
                "member": np.tile(np.arange(size, dtype=np.int16), n_groups),
                "user": np.arange(n_groups * size, dtype=np.int32),
                "original_id": [str(i) for i in range(n_groups * size)],
                "subgroup": np.tile(np.array([0, 0, 1] if opposing else [0, 0, 0], dtype=np.int8), n_groups),
                "group_similarity": np.repeat(rng.uniform(0, 1, n_groups), size).astype(np.float32),
                "subgroup_similarity_0": np.float32(0.8) if opposing else np.float32(np.nan),
                "subgroup_similarity_1": np.float32(np.nan),
                "between_similarity": np.float32(0.2) if opposing else np.float32(np.nan),
                "n_common_targets": np.int32(7),
            }
        )
        write_parquet(members, e["path"])
    return entries
