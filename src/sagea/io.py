"""Atomic file writes, safe reads and the project's on-disk formats.

Every writer goes to a temporary name in the destination folder and renames it into place,
so an interrupted job never leaves a file that looks complete; the file gets the mode the
user's umask allows (as ``open`` would), and temporary files left by a killed job are removed
at the next write of the same file.

Readers of our outputs (:func:`read_torch`, :func:`read_parquet`, :func:`read_embeddings`) never
unpickle: checkpoints load with ``torch.load(weights_only=True)``. A file that cannot be read
(truncated, random bytes) is moved aside to ``<name>.corrupt`` and the error says so: the path is
then free, so rerunning the workflow regenerates it with the rule that writes it — no manual
deletion. A checkpoint that holds Python objects is refused and left in place (it is not ours).
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

CORRUPT_SUFFIX = ".corrupt"


def current_umask() -> int:
    """The process umask; read from /proc where it can be (setting it to read it races with threads)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed writer of ``path`` left next to it (``.<name>.*.tmp``)."""
    path = Path(path)
    removed = []
    for stale in glob.glob(os.path.join(glob.escape(str(path.parent)), f".{glob.escape(path.name)}.*.tmp")):
        stale_path = Path(stale)
        try:
            if stale_path.is_dir():
                shutil.rmtree(stale_path)
            else:
                stale_path.unlink()
        except FileNotFoundError:
            continue
        removed.append(stale_path)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted write of %s", len(removed), path)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the file the mode a plain open() would (0644 under umask 022)
        os.chmod(tmp_path, 0o666 & ~current_umask())
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


class UnreadableFileError(ValueError):
    """An input file cannot be read; the message names it and says what to do."""


def quarantine(path: str | os.PathLike) -> Path:
    """Move an unreadable ``path`` aside to ``<path>.corrupt`` (replacing an older one) and return it."""
    path = Path(path)
    aside = path.with_name(path.name + CORRUPT_SUFFIX)
    os.replace(path, aside)
    return aside


def unreadable(path: str | os.PathLike, what: str, error: BaseException, heal: bool) -> UnreadableFileError:
    """The error for an unreadable ``path``; with ``heal`` the file is first moved aside.

    Moving (not deleting) keeps the bytes for inspection while freeing the path, so the next
    ``snakemake`` run sees the output missing and regenerates it with the rule that writes it.
    """
    path = Path(path)
    reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'file ends early'}"
    if heal and path.exists():
        aside = quarantine(path)
        log.error("%s is unreadable (%s); moved it to %s", path, reason, aside)
        return UnreadableFileError(
            f"{path} is not a readable {what} (truncated by a killed job, damaged, or not this format; {reason}). "
            f"It was moved aside to {aside}; run the workflow again and the rule that writes {path.name} "
            "regenerates it (outside the workflow: write or copy the file again)."
        )
    return UnreadableFileError(
        f"{path} is not a readable {what} (truncated, damaged, or not this format; {reason}). "
        f"Replace it with a good copy, or delete it so the workflow regenerates it."
    )


def read_parquet(
    path: str | os.PathLike, columns: list[str] | None = None, *, heal: bool = True
) -> pd.DataFrame:
    """A Parquet file as a DataFrame; an unreadable file is moved aside (``heal``) and named in the error."""
    try:
        return pd.read_parquet(path, engine="pyarrow", columns=columns)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as error:  # pyarrow.ArrowInvalid is a ValueError
        if "No match for FieldRef" in str(error) or "not in schema" in str(error):
            raise ValueError(f"{path}: columns {columns} not all present ({error})") from None
        raise unreadable(path, "Parquet file", error, heal) from None


def plain(obj: Any) -> Any:
    """``obj`` with NumPy scalars/arrays and paths made plain Python, so ``weights_only`` loading accepts it.

    Tensors pass through; dicts, lists and tuples are converted recursively.
    """
    import torch

    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(plain(v) for v in obj)
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically, with NumPy values made plain (:func:`plain`)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(plain(obj), tmp)


class UnsafeCheckpointError(ValueError):
    """A checkpoint holds Python objects (unpickling could run code); it is refused, never loaded."""


def read_torch(path: str | os.PathLike, *, heal: bool = True, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain Python values only.

    A file that pickles Python objects (classes, functions — a crafted file could run code) is
    refused with :class:`UnsafeCheckpointError` and left in place. An unreadable file (truncated,
    random bytes, empty) raises :class:`UnreadableFileError`; with ``heal`` it is moved aside first
    (:func:`unreadable`), so a rerun regenerates it.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "GLOBAL" in str(error):
            offending = next((line.strip() for line in str(error).splitlines() if "GLOBAL" in line), "")
            raise UnsafeCheckpointError(
                f"{path} refused: it stores Python objects, not only tensors and plain values ({offending}); "
                "loading it could run arbitrary code. Our checkpoints never hold such objects. If it comes "
                "from the research code, import it with `python -m sagea.research` (docs/importing.md); "
                "otherwise delete it and rerun."
            ) from None
        raise unreadable(path, what, error, heal) from None
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, IndexError, AttributeError) as error:
        raise unreadable(path, what, error, heal) from None


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

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as error:
        raise unreadable(path, "embeddings Parquet file", error, heal=True) from None
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
