"""Markdown, CSV and HTML renderings of a :class:`~sagea.reports.table_data.Table`, and writing them."""

from __future__ import annotations

import io
import os

import pandas as pd

from sagea.io import write_text
from sagea.reports.latex import to_latex
from sagea.reports.table_data import BEST, SECOND, Table, flatten_columns


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


def write_table(
    table: Table,
    csv: str | os.PathLike,
    tex: str | os.PathLike,
    md: str | os.PathLike,
    html: str | os.PathLike | None = None,
) -> None:
    """Write the renderings atomically (HTML, for the report, when ``html`` is given)."""
    write_text(to_csv(table), csv)
    write_text(to_latex(table), tex)
    write_text(to_markdown(table), md)
    if html is not None:
        write_text(to_html(table), html)


# ----------------------------------------------------------------------------- HTML
HTML_STYLE = """
table.sagea{border-collapse:collapse;font:13px/1.35 system-ui,sans-serif;margin:.5em 0}
table.sagea th,table.sagea td{border:1px solid #d0d4da;padding:3px 8px}
table.sagea thead th{background:#eef1f5;text-align:center}
table.sagea thead th.sortable{cursor:pointer}
table.sagea thead th.sortable:after{content:" \\2195";color:#999}
table.sagea tbody th{text-align:left;font-weight:normal;background:#fafbfc}
table.sagea td{text-align:right;font-variant-numeric:tabular-nums}
table.sagea td.best{font-weight:bold}
table.sagea td.second{text-decoration:underline}
ul.sagea-notes{font:12px/1.4 system-ui,sans-serif;color:#444}
"""

# Click a header of the last header row to sort the body by that column (numbers numerically,
# "–" last); click again to reverse. Rows keep their label cells.
HTML_SORT_SCRIPT = """
document.querySelectorAll("table.sagea").forEach(function (t) {
  var heads = t.tHead.rows[t.tHead.rows.length - 1].cells, offset = parseInt(t.dataset.offset || "0");
  Array.prototype.forEach.call(heads, function (th, col) {
    if (!th.classList.contains("sortable")) return;
    th.addEventListener("click", function () {
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var dir = th.dataset.dir === "desc" ? 1 : -1; th.dataset.dir = dir === 1 ? "asc" : "desc";
      var key = function (r) {
        var c = r.cells[col + offset], v = c.dataset.value === undefined ? NaN : parseFloat(c.dataset.value);
        return isNaN(v) ? (c.dataset.value === undefined ? c.textContent : null) : v;
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null) return 1; if (y === null) return -1;
        return typeof x === "string" ? dir * x.localeCompare(y) : dir * (x - y);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _esc(text: object) -> str:
    import html

    return html.escape(str(text), quote=True)


def _header_rows(data: pd.DataFrame, n_labels: int) -> list[str]:
    """``<tr>`` rows of the column header: one per column level, equal neighbours merged."""
    columns = data.columns
    levels = columns.nlevels
    names = [str(n or "") for n in data.index.names]
    rows = []
    for level in range(levels):
        last = level == levels - 1
        cells = []
        if level == 0:
            span = f' rowspan="{levels}"' if levels > 1 else ""
            cells += [f'<th class="label{" sortable" if levels == 1 else ""}"{span}>{_esc(n)}</th>' for n in names]
        values = [c[level] if isinstance(c, tuple) else c for c in columns]
        j = 0
        while j < len(values):
            k = j
            if not last:  # merge runs of the same label (with the same parents) above the last row
                parent = lambda c: c[:level] if isinstance(c, tuple) else ()  # noqa: E731
                while k + 1 < len(values) and values[k + 1] == values[j] and parent(columns[k + 1]) == parent(columns[j]):
                    k += 1
            span = f' colspan="{k - j + 1}"' if k > j else ""
            cls = ' class="sortable"' if last else ""
            cells.append(f"<th{cls}{span}>{_esc(values[j])}</th>")
            j = k + 1
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return rows


def to_html(table: Table, standalone: bool = True) -> str:
    """The table as HTML: best bold, second underlined, ``*`` stars (p-value on hover), notes below;
    sortable by clicking a column header. ``standalone`` wraps it in a page with style and script."""
    data = table.data
    n_labels = data.index.nlevels
    # p-values cover the tested columns only (not e.g. a "zero %" column): align them by label
    pvalues = None if table.pvalues is None else table.pvalues.reindex(index=data.index, columns=data.columns)
    offset = n_labels if data.columns.nlevels > 1 else 0
    parts = [f'<table class="sagea" id="{_esc(table.name)}" data-offset="{offset}">', "<caption>" + _esc(table.title) + "</caption>"]
    parts += ["<thead>", *_header_rows(data, n_labels), "</thead>", "<tbody>"]
    for i, row in enumerate(data.index):
        labels = list(row) if isinstance(row, tuple) else [row]
        cells = [f"<th>{_esc('' if pd.isna(v) else v)}</th>" for v in labels]
        for j in range(data.shape[1]):
            text, mark, star = table.cell(i, j)
            value = data.iat[i, j]
            attrs = f' data-value="{"" if pd.isna(value) else float(value)!r}"'
            if mark:
                attrs += f' class="{mark}"'
            if pvalues is not None and not pd.isna(pvalues.iat[i, j]):
                attrs += f' title="p = {float(pvalues.iat[i, j]):.3g}"'
            cells.append(f"<td{attrs}>{_esc(text)}{'*' if star else ''}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts += ["</tbody>", "</table>"]
    if table.notes:
        parts.append('<ul class="sagea-notes">' + "".join(f"<li>{_esc(n)}</li>" for n in table.notes) + "</ul>")
    body = "\n".join(parts)
    if not standalone:
        return body
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(table.title)}</title><style>{HTML_STYLE}</style></head>\n<body>\n{body}\n"
        f"<script>{HTML_SORT_SCRIPT}</script>\n</body></html>\n"
    )
