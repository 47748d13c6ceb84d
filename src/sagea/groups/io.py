"""Group set files: ``results/<dataset>/groups/<pool>/<groupset>.parquet`` (docs/ARCHITECTURE.md).

One row per member: ``group`` int32, ``member`` int16, ``user`` int32, ``original_id`` string,
``subgroup`` int8, ``group_similarity``, ``subgroup_similarity_0``, ``subgroup_similarity_1``,
``between_similarity`` float32, ``n_common_targets`` int32.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from sagea.io import read_parquet, write_parquet

COLUMNS = {
    "group": "int32",
    "member": "int16",
    "user": "int32",
    "original_id": "string",
    "subgroup": "int8",
    "group_similarity": "float32",
    "subgroup_similarity_0": "float32",
    "subgroup_similarity_1": "float32",
    "between_similarity": "float32",
    "n_common_targets": "int32",
}


def _check(frame: pd.DataFrame, where: str) -> None:
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: group set is missing columns {missing}; expected {list(COLUMNS)}")


def write_groups(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a group set frame atomically with the contract's column order and dtypes."""
    _check(frame, str(path))
    out = frame[list(COLUMNS)].astype({k: v for k, v in COLUMNS.items() if k != "original_id"})
    out["original_id"] = out["original_id"].astype(str)
    out = out.sort_values(["group", "member"], kind="stable").reset_index(drop=True)
    write_parquet(out, path)


def load_groups_frame(path: str | os.PathLike) -> pd.DataFrame:
    """The full member table of a group set, sorted by group then member position."""
    frame = read_parquet(path)
    _check(frame, str(path))
    return frame.sort_values(["group", "member"], kind="stable").reset_index(drop=True)


def load_groups(path: str | os.PathLike) -> np.ndarray:
    """Members as user indices ``int64 [n_groups, size]`` (row = group id, column = member position)."""
    frame = load_groups_frame(path)
    n_groups = int(frame["group"].max()) + 1 if len(frame) else 0
    size = int(frame["member"].max()) + 1 if len(frame) else 0
    if len(frame) != n_groups * size:
        raise ValueError(f"{path}: {len(frame)} rows do not form {n_groups} groups of {size} members")
    groups = np.full((n_groups, size), -1, dtype=np.int64)
    groups[frame["group"].to_numpy(), frame["member"].to_numpy()] = frame["user"].to_numpy()
    if (groups < 0).any():
        raise ValueError(f"{path}: some (group, member) positions are missing")
    return groups


def load_subgroups(path: str | os.PathLike) -> np.ndarray:
    """Subgroup label of each member position ``int8 [size]`` (all 0 except for opposing sets)."""
    frame = load_groups_frame(path)
    first = frame[frame["group"] == frame["group"].min()]
    return first["subgroup"].to_numpy().astype(np.int8)
