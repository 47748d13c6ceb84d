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
#: What to do about non-finite embeddings (they are written by the rule extract_elsa_embeddings).
EMBEDDINGS_READ_HINT = (
    "rerun the rule that wrote it: `snakemake --forcerun extract_elsa_embeddings`; if it comes back "
    "non-finite, retrain ELSA: `snakemake --forcerun train_elsa`"
)
EMBEDDINGS_WRITE_HINT = "the model that computed them has non-finite weights; retrain it: `snakemake --forcerun train_elsa`"

def write_embeddings(matrix: np.ndarray, index_name: str, path: str | os.PathLike) -> None:
    """Write a dense ``[n, d]`` matrix as Parquet rows ``(index_name, embedding)``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    check_finite(matrix, path, f"{index_name} embeddings to write", EMBEDDINGS_WRITE_HINT)
    n, d = matrix.shape
    table = pa.table(
        {
            index_name: pa.array(np.arange(n, dtype=np.int32)),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), d),
        }
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_embeddings(path: str | os.PathLike, hint: str | None = None) -> np.ndarray:
    """Read a matrix written by :func:`write_embeddings` back as ``float32 [n, d]`` (row = index).

    Raises :class:`NonFiniteError` (naming the file and ``hint``, by default the ELSA rules to
    rerun) when a value is NaN or infinite.
    """
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
    return check_finite(matrix, path, "embeddings", hint if hint is not None else EMBEDDINGS_READ_HINT)


# ----------------------------------------------------------------------------- finite checks
class NonFiniteError(ValueError):
    """A file or array the workflow reads or writes holds NaN or infinite numbers."""


def check_finite(
    values: Any,
    path: str | os.PathLike | None,
    what: str,
    hint: str = "",
    allow: Any = None,
    max_listed: int = 10,
) -> Any:
    """Raise :class:`NonFiniteError` if ``values`` holds NaN/inf; return ``values`` unchanged.

    ``values``: a NumPy array, torch tensor, pandas Series/DataFrame (numeric columns) or a dict
    of those (a state dict). The message names ``path``, ``what``, the number of bad values, the
    first ``max_listed`` bad rows (first axis) and ends with ``hint`` (what to rerun).
    ``allow``: boolean rows (first axis) where NaN (an undefined value) is legitimate;
    infinities are never allowed.
    """
    if isinstance(values, dict):
        for key, value in values.items():
            check_finite(value, path, f"{what} {key!r}", hint, allow, max_listed)
        return values
    if isinstance(values, pd.DataFrame):
        for col in values.columns:
            check_finite(values[col], path, f"{what}, column {col!r}", hint, allow, max_listed)
        return values
    array = _as_numpy(values)
    if array is None or array.size == 0 or not np.issubdtype(array.dtype, np.floating):
        return values
    # fast path: one float64 sum is finite iff no element is NaN/inf (barring overflow of huge values)
    with np.errstate(all="ignore"):
        if np.isfinite(array.sum(dtype=np.float64)):
            return values
    bad = ~np.isfinite(array).reshape(len(array), -1)
    if allow is not None:
        bad &= ~(np.isnan(array).reshape(len(array), -1) & np.asarray(allow, dtype=bool).reshape(-1, 1))
    rows = bad.any(axis=1)
    if not rows.any():
        return values
    index = np.flatnonzero(rows)
    listed = ", ".join(str(i) for i in index[:max_listed]) + (", ..." if len(index) > max_listed else "")
    count = int(bad[index].sum())
    where = f"{path}: " if path is not None else ""
    raise NonFiniteError(
        f"{where}{what}: {count} non-finite value(s) (NaN/inf) in {len(index)} of {len(array)} rows "
        f"[{listed}]" + (f"; {hint}" if hint else "")
    )


def _as_numpy(values: Any) -> np.ndarray | None:
    if hasattr(values, "detach"):  # torch tensor: one reduction on its device before copying
        import torch

        if not values.is_floating_point() or bool(torch.isfinite(values).all()):
            return None
        values = values.detach().float().cpu().numpy()
    if isinstance(values, pd.Series):
        if not pd.api.types.is_float_dtype(values.dtype):
            return None
        values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    array = np.asarray(values)
    if array.ndim == 0:
        array = array.reshape(1)
    return array


def rerun_hint(rule: str, upstream: str | None = None) -> str:
    """Standard advice of a finite check: rerun the rule that wrote the file (then its upstream)."""
    text = f"rerun the rule that wrote it: `snakemake --forcerun {rule}`"
    if upstream:
        text += f"; if it comes back non-finite, retrain upstream: `snakemake --forcerun {upstream}`"
    return text
