"""MovieLens parser: every release (``ratings.csv`` with header, or ``ratings.dat`` with ``::``).

Explicit ratings become implicit feedback: a rating >= ``threshold`` (default 4.0, docs/method.md §1)
is a positive interaction. Titles and genres come from ``movies.csv`` / ``movies.dat`` (ml-1m's is
latin-1). The format is detected from the file name, so any release works from a folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from sagea.data.raw import DataError, RawData
from sagea.data.readers import check_header, find_file, read_delimited

RELEASES = ("ml-latest-small", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m")
RATINGS_FILES = ("ratings.csv", "ratings.dat")


def read_ratings(path: Path) -> pd.DataFrame:
    """``user`` int64, ``item`` int64, ``rating`` float32 of a ratings.csv / ratings.dat file."""
    types = {"user": pa.int64(), "item": pa.int64(), "rating": pa.float32()}
    if path.suffix == ".dat":  # UserID::MovieID::Rating::Timestamp -> split on ':' (empty fields between)
        names = ["user", "_1", "item", "_3", "rating", "_5", "timestamp"]
        table, _ = read_delimited(
            path, names, ":", header=False, include=["user", "item", "rating"], types=types
        )
    else:
        columns = check_header(path, ["userId", "movieId", "rating"], ",")
        rename = {"userId": "user", "movieId": "item", "rating": "rating"}
        names = [rename.get(c, c) for c in columns]
        table, _ = read_delimited(
            path, names, ",", header=True, include=["user", "item", "rating"], types=types
        )
    frame = table.to_pandas()
    nulls = frame.isna().any(axis=1).to_numpy()
    if nulls.any():
        row = int(np.flatnonzero(nulls)[0])
        raise DataError(f"{path}: empty user, movie or rating on data row {row + 1}; the file looks damaged")
    return frame


def read_movies(folder: Path) -> pd.DataFrame | None:
    """``original_id``, ``title``, ``genres`` from movies.csv / movies.dat next to the ratings (or None)."""
    csv = folder / "movies.csv"
    if csv.exists():
        movies = pd.read_csv(
            csv,
            dtype={"movieId": np.int64, "title": str, "genres": str},
            usecols=["movieId", "title", "genres"],
        )
        return movies.rename(columns={"movieId": "original_id"})
    dat = folder / "movies.dat"
    if dat.exists():
        raw = dat.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:  # ml-1m is latin-1
            text = raw.decode("latin-1")
        lines = pd.Series([line for line in text.splitlines() if line])
        parts = lines.str.split("::", n=2, expand=True)
        if parts.shape[1] != 3:
            raise DataError(f"{dat}: expected MovieID::Title::Genres lines")
        bad = parts[2].isna() | ~parts[0].str.fullmatch(r"\d+")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{dat}: line {row + 1} is malformed (expected MovieID::Title::Genres): {lines.iloc[row]!r}"
            )
        return pd.DataFrame({"original_id": parts[0].astype(np.int64), "title": parts[1], "genres": parts[2]})
    return None


def read(path: str | os.PathLike, release: str = "ml-32m", threshold: float = 4.0) -> RawData:
    """Parse a MovieLens release folder (or its ratings file) into positive interactions."""
    ratings_path = find_file(path, RATINGS_FILES, f"MovieLens {release} ratings")
    frame = read_ratings(ratings_path)
    positive = frame["rating"].to_numpy() >= threshold
    interactions = pd.DataFrame(
        {"user": frame["user"].to_numpy()[positive], "item": frame["item"].to_numpy()[positive]}
    )
    stats = {
        "file": str(ratings_path),
        "rows_read": len(frame),
        "threshold": threshold,
        "below_threshold": int((~positive).sum()),
    }
    return RawData("movielens", interactions, items=read_movies(ratings_path.parent), stats=stats)
