"""Atomic file writes and the project's on-disk formats.

Every writer goes to a temporary name in the destination folder and renames it into place,
so an interrupted job never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write JSON atomically (numpy scalars/arrays converted, NaN/inf written as null)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame to Parquet atomically (pyarrow, no index)."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, engine="pyarrow", index=False)


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    return pd.read_parquet(path, engine="pyarrow", columns=columns)


def write_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_figure(fig: Any, *paths: str | os.PathLike) -> None:
    """Save a matplotlib figure atomically to each path (format from the suffix)."""
    for path in paths:
        suffix = Path(path).suffix.lstrip(".") or "png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix, bbox_inches="tight", dpi=120)


# ----------------------------------------------------------------------------- embeddings
def write_embeddings(matrix: np.ndarray, index_name: str, path: str | os.PathLike) -> None:
    """Write a dense ``[n, d]`` matrix as Parquet rows ``(index_name, embedding)``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n, d = matrix.shape
    table = pa.table(
        {
            index_name: pa.array(np.arange(n, dtype=np.int32)),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), d),
        }
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_embeddings(path: str | os.PathLike) -> np.ndarray:
    """Read a matrix written by :func:`write_embeddings` back as ``float32 [n, d]`` (row = index)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    index = table.column(0).to_numpy()
    col = table.column("embedding").combine_chunks()
    d = col.type.list_size
    values = col.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    matrix = values.reshape(-1, d)
    if not np.array_equal(index, np.arange(len(index))):
        out = np.empty_like(matrix)
        out[index] = matrix
        matrix = out
    return matrix
