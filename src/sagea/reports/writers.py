"""Markdown and CSV rendering of a :class:`~sagea.reports.table.Table`, and writing all three formats."""

from __future__ import annotations

import io
import os

import pandas as pd

from sagea.io import write_text
from sagea.reports.latex import to_latex
from sagea.reports.table import BEST, SECOND, Table, flatten_columns


def _md_escape(text: object) -> str:
    return str(text).replace("|", r"\|")


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table: best ``**bold**``, second ``<u>underlined</u>``, ``*`` stars."""
    data = table.data
    names = [str(n or "") for n in data.index.names]
    header = names + flatten_columns(data.columns)
    lines = [f"### {table.title}", "", "| " + " | ".join(_md_escape(h) for h in header) + " |"]
    lines.append("|" + "|".join([":--"] * len(names) + ["--:"] * data.shape[1]) + "|")
    for i, row in enumerate(data.index):
        labels = list(row) if isinstance(row, tuple) else [row]
        cells = []
        for j in range(data.shape[1]):
            text, mark, star = table.cell(i, j)
            if mark == BEST:
                text = f"**{text}**"
            elif mark == SECOND:
                text = f"<u>{text}</u>"
            cells.append(text + ("\\*" if star else ""))
        lines.append("| " + " | ".join(_md_escape(v) for v in labels + cells) + " |")
    if table.notes:
        lines.append("")
        lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """Numbers at full precision with flattened column names; p-values as extra ``<col> p`` columns."""
    df = table.data.copy()
    df.columns = flatten_columns(df.columns)
    if table.pvalues is not None:
        p = table.pvalues.copy()
        p.columns = [f"{c} p" for c in flatten_columns(p.columns)]
        df = pd.concat([df, p], axis=1)
    buf = io.StringIO()
    df.reset_index().to_csv(buf, index=False)
    return buf.getvalue()


def write_table(table: Table, csv: str | os.PathLike, tex: str | os.PathLike, md: str | os.PathLike) -> None:
    """Write the three renderings atomically."""
    write_text(to_csv(table), csv)
    write_text(to_latex(table), tex)
    write_text(to_markdown(table), md)
