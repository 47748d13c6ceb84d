"""Fast delimited-text reading with precise error locations (pyarrow's multithreaded C++ parser).

Malformed rows (wrong number of fields) either raise :class:`DataError` naming the file and the
line, or are skipped, counted and reported (``bad_lines="skip"``, for sources known to contain
a few damaged lines). Values that do not convert to the requested type are located by a slow
second pass that only runs on the error path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from sagea.data.raw import DataError

#: Keep this many examples of skipped lines in the dataset card.
MAX_EXAMPLES = 10


@dataclass
class BadLines:
    count: int = 0
    examples: list[dict] = field(default_factory=list)

    def as_stats(self) -> dict:
        return {"malformed_lines": self.count, "malformed_examples": self.examples}


def find_file(path: str | os.PathLike, names: Iterable[str], what: str) -> Path:
    """``path`` itself when it is a file, else the first of ``names`` found under the folder."""
    path = Path(path)
    if path.is_file() and path.name.endswith((".zip", ".tar.gz", ".tgz")):
        raise DataError(
            f"{path} is an archive; extract it and point datasets.<name>.path at the folder, or put it at "
            "results/<name>/raw/<archive name> (path: null) and the download rule extracts it"
        )
    if path.is_file():
        return path
    names = list(names)
    if path.is_dir():
        for name in names:
            hits = sorted(path.rglob(name))
            if hits:
                return hits[0]
    raise DataError(
        f"no {what} file ({' or '.join(names)}) found at {path}; point datasets.<name>.path at it"
    )


def _text_encoding(encoding: str) -> str:
    """Python codec for reading header lines: UTF-8 with an optional byte-order mark stripped."""
    return "utf-8-sig" if encoding.lower().replace("-", "") == "utf8" else encoding


def check_not_empty(path: str | os.PathLike) -> None:
    """:class:`DataError` naming ``path`` when it holds nothing but whitespace (or a byte-order mark)."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head.removeprefix(b"\xef\xbb\xbf").strip():
        if path.stat().st_size <= len(head):
            raise DataError(f"{path} is empty ({path.stat().st_size} bytes, no lines); check the file or re-download it")


def first_line(path: str | os.PathLike, encoding: str = "utf8") -> str:
    """The first line of a text file without its line ending or a UTF-8 byte-order mark."""
    check_not_empty(path)
    with open(path, encoding=_text_encoding(encoding), errors="replace") as fh:
        return fh.readline().rstrip("\r\n")


def no_rows_error(path: str | os.PathLike, header: bool, skipped: int = 0) -> DataError:
    """The error for a file that parsed to zero data rows."""
    what = "only a header line" if header else "no data lines"
    if skipped:
        what = f"no usable data rows ({skipped} malformed lines skipped)"
    return DataError(f"{path} has {what}: there are no interactions to read; check the file")


def _locate_conversion_error(
    path: Path, names: list[str], sep: str, header: bool, types: dict[str, pa.DataType], encoding: str
) -> str:
    """Slow path: find the first line whose value does not convert (after a conversion error)."""
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(
            column_names=names, skip_rows=int(header), use_threads=False, encoding=encoding
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=sep, quote_char=False, invalid_row_handler=lambda row: "skip"
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            include_columns=list(types),
            strings_can_be_null=False,
        ),
    )
    for name, typ in types.items():
        values = table.column(name).to_pandas()
        if pa.types.is_integer(typ) or pa.types.is_floating(typ):
            converted = pd.to_numeric(values, errors="coerce")
            bad = np.flatnonzero(converted.isna().to_numpy())
            if len(bad):
                row = int(bad[0])
                return f"column {name!r}, data row {row + 1} (line {row + 1 + int(header)} if no line was skipped): value {values.iloc[row]!r}"
    return "could not locate the offending line"


def read_delimited(
    path: str | os.PathLike,
    names: list[str],
    sep: str,
    header: bool,
    include: list[str],
    types: dict[str, pa.DataType] | None = None,
    bad_lines: Literal["error", "skip"] = "error",
    encoding: str = "utf8",
    quoting: bool = False,
    _threads: bool | None = None,
) -> tuple[pa.Table, BadLines]:
    """Read columns ``include`` of a delimited file whose columns are ``names`` (the header line,
    when present, is skipped and checked by the caller). Returns the table and the skipped lines."""
    path = Path(path)
    types = dict(types or {})
    bad = BadLines()
    # line numbers of invalid rows are only known single-threaded (used where rows are skipped)
    threads = bad_lines == "error" if _threads is None else _threads
    errors: list[tuple[int | None, str]] = []
    check_not_empty(path)

    def handler(row: pacsv.InvalidRow) -> str:
        if bad_lines == "error":
            errors.append((row.number, row.text))
            return "error"
        bad.count += 1
        if len(bad.examples) < MAX_EXAMPLES:
            bad.examples.append(
                {
                    "line": row.number,
                    "fields": row.actual_columns,
                    "expected": row.expected_columns,
                    "text": row.text[:200],
                }
            )
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                column_names=names,
                skip_rows=int(header),
                use_threads=threads,
                encoding=encoding,
                block_size=1 << 24,
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=sep, quote_char='"' if quoting else False, invalid_row_handler=handler
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=types, include_columns=include, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if errors:
            line, text = errors[0]
            if line is None and threads:  # multithreaded parse: find the line number single-threaded
                return read_delimited(
                    path, names, sep, header, include, types, "error", encoding, quoting, _threads=False
                )
            raise DataError(
                f"{path}: line {line} is malformed (expected {len(names)} fields separated by {sep!r}): {text[:200]!r}"
            ) from None
        if "conversion error" in message:
            where = _locate_conversion_error(
                path, names, sep, header, {k: v for k, v in types.items() if k in include}, encoding
            )
            raise DataError(f"{path}: a value does not convert ({message}); {where}") from None
        raise DataError(f"{path}: could not be parsed: {message}") from None
    if table.num_rows == 0:
        raise no_rows_error(path, header, bad.count)
    return table, bad


def check_header(path: Path, required: list[str], sep: str, encoding: str = "utf8") -> list[str]:
    """Columns of the header line; :class:`DataError` when one of ``required`` is missing."""
    first = first_line(path, encoding)
    columns = [c.strip().strip('"') for c in first.split(sep)]
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing} in the header; found {columns}")
    return columns


def dictionary_codes(column: pa.ChunkedArray) -> pd.Categorical:
    """A string column as a pandas Categorical (dictionary-encoded in Arrow, no Python objects per row)."""
    encoded = (
        column.combine_chunks().dictionary_encode()
        if column.num_chunks != 1
        else column.chunk(0).dictionary_encode()
    )
    return pd.Categorical.from_codes(
        encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False),
        categories=pd.Index(encoded.dictionary.to_pandas()),
        validate=False,
    )


def empty_mask(values: pd.Categorical) -> np.ndarray:
    """True where a dictionary-encoded string value is empty (compares codes, not strings)."""
    hits = np.flatnonzero(np.asarray(values.categories == ""))
    return np.isin(values.codes, hits) if len(hits) else np.zeros(len(values), dtype=bool)
