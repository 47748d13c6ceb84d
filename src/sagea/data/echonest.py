"""Echo Nest Taste Profile subset parser: ``train_triplets.txt`` (tab: user, song, play count).

Every (user, song) pair is positive (docs/method.md §1); with ``threshold`` only pairs with
play count >= threshold. Malformed lines stop with the file and line.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa

from sagea.data.raw import DataError, RawData
from sagea.data.readers import dictionary_codes, empty_mask, find_file, read_delimited

FILE_NAME = "train_triplets.txt"


def read(path: str | os.PathLike, threshold: float | None = None) -> RawData:
    """Parse the triplets (folder or the file itself)."""
    txt = find_file(path, [FILE_NAME], "Echo Nest triplets")
    table, _ = read_delimited(
        txt,
        ["user", "item", "count"],
        "\t",
        header=False,
        include=["user", "item", "count"],
        types={"user": pa.string(), "item": pa.string(), "count": pa.int64()},
    )
    counts = table.column("count").to_numpy()
    users = dictionary_codes(table.column("user"))
    items = dictionary_codes(table.column("item"))
    del table
    empty = empty_mask(users) | empty_mask(items)
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise DataError(f"{txt}: empty user or song id on line {row + 1}")
    keep = np.ones(len(counts), dtype=bool) if threshold is None else counts >= threshold
    interactions = pd.DataFrame({"user": users[keep], "item": items[keep]})
    stats = {
        "file": str(txt),
        "rows_read": len(counts),
        "threshold": threshold,
        "below_threshold": int((~keep).sum()),
    }
    return RawData("echonest", interactions, stats=stats)
