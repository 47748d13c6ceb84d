"""Group sets in memory (:class:`GroupSet`) and on disk:
``results/<dataset>/groups/<pool>/<groupset>.parquet`` (docs/ARCHITECTURE.md).

One row per member: ``group`` int32, ``member`` int16, ``user`` int32, ``original_id`` string,
``subgroup`` int8, ``group_similarity``, ``subgroup_similarity_0``, ``subgroup_similarity_1``,
``between_similarity`` float32, ``n_common_targets`` int32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class GroupSet:
    """A sampled, filtered group set: global user indices ``[n_groups, size]`` and statistics."""

    name: str
    kind: str
    members: np.ndarray
    subgroup: np.ndarray
    n_common_targets: np.ndarray
    similarity: dict[str, np.ndarray]
    summary: dict[str, Any] = field(default_factory=dict)


def group_set_frame(groups: GroupSet, original_ids: np.ndarray | None = None) -> pd.DataFrame:
    """Long form of a group set: one row per member, columns as docs/ARCHITECTURE.md."""
    n, size = groups.members.shape
    users = groups.members.reshape(-1)
    rep = lambda key: np.repeat(groups.similarity[key], size).astype(np.float32)  # noqa: E731
    return pd.DataFrame(
        {
            "group": np.repeat(np.arange(n, dtype=np.int32), size),
            "member": np.tile(np.arange(size, dtype=np.int16), n),
            "user": users.astype(np.int32),
            "original_id": (np.asarray(original_ids)[users] if original_ids is not None else users).astype(
                str
            ),
            "subgroup": np.tile(groups.subgroup.astype(np.int8), n),
            "group_similarity": rep("group_similarity"),
            "subgroup_similarity_0": rep("subgroup_similarity_0"),
            "subgroup_similarity_1": rep("subgroup_similarity_1"),
            "between_similarity": rep("between_similarity"),
            "n_common_targets": np.repeat(groups.n_common_targets, size).astype(np.int32),
        }
    )


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
