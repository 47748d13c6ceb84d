"""The :class:`Table` every builder returns and the writers render (CSV, LaTeX, Markdown).

A table is a numeric DataFrame (row and column MultiIndexes allowed) plus, per cell, a mark
(``best`` -> bold, ``second`` -> underlined), a significance star and optionally the p-value.
Marks compare values *as displayed* (rounded to the column's decimals), so visible ties share
the mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

BEST, SECOND = "best", "second"


@dataclass
class Table:
    """A finished report table."""

    name: str
    title: str
    data: pd.DataFrame
    marks: pd.DataFrame | None = None
    stars: pd.DataFrame | None = None
    pvalues: pd.DataFrame | None = None
    decimals: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def column_decimals(self, col) -> int:
        label = col[-1] if isinstance(col, tuple) else col
        return self.decimals.get(str(label), 3)

    def cell(self, i: int, j: int) -> tuple[str, str, bool]:
        """``(formatted number, mark, star)`` of cell ``(i, j)``; NaN formats as ``–``."""
        value = self.data.iat[i, j]
        col = self.data.columns[j]
        text = "–" if pd.isna(value) else f"{float(value):.{self.column_decimals(col)}f}"
        mark = "" if self.marks is None else str(self.marks.iat[i, j] or "")
        star = False if self.stars is None else bool(self.stars.iat[i, j])
        return text, mark, star


def mark_best(
    data: pd.DataFrame,
    higher_is_better: dict[str, bool] | bool = True,
    within: str | list[str] | None = None,
    decimals: dict[str, int] | None = None,
    skip: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Marks per column: ``best`` on the best displayed value, ``second`` on the next one.

    ``higher_is_better`` maps a column label (last level) to its direction (default True);
    ``within`` names row index level(s) inside which the ranking is done (e.g. the group kind);
    columns whose label is in ``skip`` get no marks.
    """
    decimals = decimals or {}
    marks = pd.DataFrame("", index=data.index, columns=data.columns, dtype=object)
    if data.empty:
        return marks
    if within is None:
        blocks = [np.arange(len(data))]
    else:
        keys = data.index.to_frame(index=False)[within if isinstance(within, list) else [within]]
        blocks = [np.asarray(idx) for idx in keys.groupby(list(keys.columns), sort=False).indices.values()]
    for j, col in enumerate(data.columns):
        label = str(col[-1] if isinstance(col, tuple) else col)
        if label in skip:
            continue
        hib = higher_is_better.get(label, True) if isinstance(higher_is_better, dict) else higher_is_better
        shown = data.iloc[:, j].astype("float64").round(decimals.get(label, 3)).to_numpy()
        for rows in blocks:
            vals = shown[rows]
            finite = np.unique(vals[np.isfinite(vals)])
            if finite.size < 2:
                continue
            ranked = finite[::-1] if hib else finite
            for target, mark in ((ranked[0], BEST), (ranked[1], SECOND)):
                hit = rows[vals == target]
                marks.iloc[hit, j] = mark
    return marks


def flatten_columns(columns: pd.Index) -> list[str]:
    """``("sim", "NDCG20_com")`` -> ``"sim/NDCG20_com"``; plain labels unchanged."""
    return ["/".join(str(p) for p in c) if isinstance(c, tuple) else str(c) for c in columns]
