"""The user's own interaction file: CSV, TSV, Parquet or JSON lines.

Columns are named (or 0-based positions when the file has no header) by ``custom.user_col``,
``item_col``, ``value_col``, ``event_col``. Which rows are positive:

- ``event_col`` + ``event_weights`` (session logs, seed notebook 004): each row weighs
  ``event_weights[event]`` (unknown events 0, counted), summed per (user, item) pair; a pair is
  positive when its score >= ``threshold`` (null: score > 0).
- ``value_col``: a row is positive when value >= ``threshold`` (null: value > 0).
- neither: every row is positive.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sagea.data.raw import DataError, RawData
from sagea.data.readers import check_not_empty, find_file, first_line, no_rows_error, read_delimited


def _resolve(col: Any, columns: list[str], key: str, path: Path, header: bool) -> str:
    """Column name of config value ``col`` (a name, or a 0-based position)."""
    if isinstance(col, int) or (isinstance(col, str) and col.isdigit() and col not in columns):
        pos = int(col)
        if not 0 <= pos < len(columns):
            raise DataError(f"{key}: column position {pos} is outside the {len(columns)} columns of {path}")
        return columns[pos]
    if not header and col not in columns:
        raise DataError(
            f"{key}: {col!r} must be a 0-based column position because custom.header is false ({path})"
        )
    if col not in columns:
        raise DataError(f"{path}: missing column {col!r} (from {key}); columns found: {columns}")
    return col


def _first_line_fields(path: Path, sep: str) -> list[str]:
    return [c.strip().strip('"') for c in first_line(path).split(sep)]


def _read_jsonl(path: Path) -> pd.DataFrame:
    import pyarrow.json as pajson

    check_not_empty(path)
    try:
        frame = pajson.read_json(path).to_pandas()
        if frame.empty:
            raise no_rows_error(path, header=False)
        return frame
    except pa.ArrowInvalid as exc:  # error path: find the offending line
        with open(path, encoding="utf8", errors="replace") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise ValueError("not a JSON object")
                except ValueError as err:
                    raise DataError(
                        f"{path}: line {number} is not a JSON object ({err}): {line[:200]!r}"
                    ) from None
        raise DataError(f"{path}: could not be read as JSON lines: {exc}") from None


def read(
    path: str | os.PathLike, options: dict[str, Any], threshold: float | None = None, name: str = "custom"
) -> RawData:
    """Parse a custom interaction file described by ``options`` (config ``datasets.<name>.custom``)."""
    fmt = options.get("format", "csv")
    header = bool(options.get("header", True))
    key = f"datasets.{name}.custom"
    path = find_file(path, ["*." + ("jsonl" if fmt == "jsonl" else fmt), "*.json", "*.txt"], f"custom {fmt}")
    wanted = {
        "user": options.get("user_col", "user"),
        "item": options.get("item_col", "item"),
        "value": options.get("value_col"),
        "event": options.get("event_col"),
    }
    wanted = {role: col for role, col in wanted.items() if col is not None}
    weights = options.get("event_weights")
    if ("event" in wanted) != (weights is not None):
        raise DataError(f"{key}: event_col and event_weights go together (both set or both null)")

    if fmt in ("csv", "tsv"):
        sep = options.get("sep") or ("\t" if fmt == "tsv" else ",")
        first = _first_line_fields(path, sep)
        columns = first if header else [str(i) for i in range(len(first))]
        resolved = {
            role: _resolve(col, columns, f"{key}.{role}_col", path, header) for role, col in wanted.items()
        }
        names = columns
        types = {resolved[r]: pa.string() for r in ("user", "item", "event") if r in resolved}
        if "value" in resolved:
            types[resolved["value"]] = pa.float64()
        table, _ = read_delimited(
            path,
            names,
            sep,
            header,
            include=list(dict.fromkeys(resolved.values())),
            types=types,
            quoting=True,
        )
        frame = table.to_pandas()
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        columns = pq.read_schema(path).names
        resolved = {
            role: _resolve(col, columns, f"{key}.{role}_col", path, True) for role, col in wanted.items()
        }
        frame = pd.read_parquet(path, columns=list(dict.fromkeys(resolved.values())))
        if frame.empty:
            raise no_rows_error(path, header=True)
    elif fmt == "jsonl":
        frame = _read_jsonl(path)
        columns = list(frame.columns)
        resolved = {
            role: _resolve(col, columns, f"{key}.{role}_col", path, True) for role, col in wanted.items()
        }
    else:
        raise DataError(f"{key}.format: {fmt!r} is not one of csv, tsv, parquet, jsonl")

    frame = pd.DataFrame({role: frame[col] for role, col in resolved.items()})
    rows_read = len(frame)
    missing = (frame["user"].isna() | frame["item"].isna()).to_numpy().copy()
    for role in ("user", "item"):
        if frame[role].dtype == object or pd.api.types.is_string_dtype(frame[role]):
            missing |= (frame[role].astype("string").str.len() == 0).fillna(True).to_numpy()
    frame = frame.loc[~missing]
    stats: dict[str, Any] = {
        "file": str(path),
        "format": fmt,
        "rows_read": rows_read,
        "rows_without_user_or_item": int(missing.sum()),
    }

    if "event" in resolved:
        events = frame["event"].astype("string")
        weight = events.map(weights).astype("float64")
        stats["unknown_events"] = int(weight.isna().sum())
        stats["event_weights"] = dict(weights)
        user_codes, user_ids = pd.factorize(frame["user"], sort=True)
        item_codes, item_ids = pd.factorize(frame["item"], sort=True)
        keys = user_codes.astype(np.int64) * len(item_ids) + item_codes
        pair_keys, inverse = np.unique(keys, return_inverse=True)
        score = np.bincount(inverse, weights=weight.fillna(0.0).to_numpy(), minlength=len(pair_keys))
        positive = score > 0 if threshold is None else score >= threshold
        stats["pairs"] = len(pair_keys)
        stats["pairs_below_threshold"] = int((~positive).sum())
        kept = pair_keys[positive]
        interactions = pd.DataFrame(
            {"user": user_ids[kept // len(item_ids)], "item": item_ids[kept % len(item_ids)]}
        )
    elif "value" in resolved:
        value = pd.to_numeric(frame["value"], errors="coerce")
        if value.isna().any():
            row = int(np.flatnonzero(value.isna().to_numpy())[0])
            raise DataError(
                f"{path}: value column {resolved['value']!r} is not numeric in data row {row + 1}: {frame['value'].iloc[row]!r}"
            )
        positive = (value > 0 if threshold is None else value >= threshold).to_numpy()
        stats["threshold"] = threshold
        stats["below_threshold"] = int((~positive).sum())
        interactions = frame.loc[positive, ["user", "item"]]
    else:
        interactions = frame[["user", "item"]]
    return RawData("custom", interactions.reset_index(drop=True), stats=stats)
