"""The report's landing page: what the study ran and its headline results, as reStructuredText.

Snakemake's ``--report`` shows this page first (``report:`` in workflow/rules/report.smk). It is
built by the rule ``report_front`` from the dataset cards, the collected results, the overall
tables and the heatmaps, and embeds them (tables as HTML, figures as inline PNG), so a reader
sees the study at a glance before opening single tables.
"""

from __future__ import annotations

import base64
import json
import os
import textwrap
from pathlib import Path

import pandas as pd
import yaml

from sagea import plan
from sagea.reports import paper_tables, writers
from sagea.reports.options import ReportOptions


def _html_table(frame: pd.DataFrame) -> str:
    """A small plain table (no marks) in the report's table style."""
    head = "".join(f"<th>{writers._esc(c)}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for value in row:
            if isinstance(value, float):
                text = f"{value:,.4g}" if abs(value) < 1 else f"{value:,.0f}"
                cells.append(f'<td data-value="{value!r}">{text}</td>')
            elif isinstance(value, int):
                cells.append(f'<td data-value="{value}">{value:,}</td>')
            else:
                cells.append(f"<th>{writers._esc(value)}</th>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="sagea"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _datasets(cards: dict[str, dict], config: dict) -> pd.DataFrame:
    rows = []
    for dataset, card in cards.items():
        c = card.get("counts", {})
        rows.append(
            {
                "dataset": dataset,
                "source": plan.dataset_spec(config, dataset)["source"],
                "users": int(c.get("users", 0)),
                "items": int(c.get("items", 0)),
                "interactions": int(c.get("interactions", 0)),
                "density": float(c.get("density", float("nan"))),
                "popularity Gini": float(card.get("item_popularity_gini", float("nan"))),
            }
        )
    return pd.DataFrame(rows)


def _groups(groups: pd.DataFrame) -> pd.DataFrame:
    if groups.empty:
        return pd.DataFrame(columns=["dataset", "pool", "group set", "groups"])
    counts = groups.groupby(["dataset", "pool", "groupset"], sort=True)["group"].nunique().reset_index()
    counts.columns = ["dataset", "pool", "group set", "groups"]
    counts["groups"] = counts["groups"].astype(int)
    return counts


def _models(config: dict) -> str:
    items = []
    for dataset in plan.datasets(config):
        runs = list(plan.elsa_runs(config, dataset))
        items.append(
            f"<li><b>{writers._esc(dataset)}</b>: ELSA runs {', '.join(writers._esc(r) for r in runs)} "
            f"(main: {writers._esc(runs[0])})</li>"
        )
    saes = list(plan.sae_runs(config))
    items.append(f"<li>SAE variants ({len(saes)}): {', '.join(writers._esc(s) for s in saes)}</li>")
    options = ", ".join(plan.sagea_options(config))
    items.append(
        f"<li>SAGEA fusions: {', '.join(plan.fusions(config)) or '–'}; options {options} "
        "(ti = TopK at inference, nu = normalised member codes)</li>"
    )
    items.append(f"<li>Baselines: {', '.join(plan.baselines(config)) or '–'}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def _png(path: str | os.PathLike) -> str:
    # base64 in lines of 76 (browsers skip whitespace in base64 data; docutils limits line length)
    data = base64.encodebytes(Path(path).read_bytes()).decode("ascii").strip()
    return f'<img alt="{writers._esc(Path(path).stem)}" style="max-width:100%"\nsrc="data:image/png;base64,{data}">'


def _raw(html: str) -> str:
    return ".. raw:: html\n\n" + textwrap.indent(html, "   ") + "\n"


def front_page(
    study: str,
    config: dict,
    cards: dict[str, dict],
    collected: dict[str, pd.DataFrame],
    heatmaps: dict[str, str | os.PathLike],
    opts: ReportOptions,
    seeds: list[int] | None = None,
    seeds_tables: list[str] | None = None,
) -> str:
    """The landing page (reST) of the study's report; with several ``seeds`` the per-seed headline
    is the first seed's, preceded by the across-seed tables (``seeds_tables``: their HTML pages)."""
    title = f"SAGEA study ``{study}``"
    parts = [
        title,
        "=" * len(title),
        "",
        "Every table and figure of the study is listed in the menu: tables under *Tables* (click one "
        "to read it; the CSV and LaTeX files are downloads next to it), figures under *Figures*, "
        "dataset cards under *Data*, group diagnostics under *Groups*.",
        "",
        "What was run",
        "------------",
        "",
        _raw(
            f"<style>{writers.HTML_STYLE}</style>\n<h4>Datasets</h4>\n"
            + _html_table(_datasets(cards, config))
            + "\n<h4>Models and strategies</h4>\n"
            + _models(config)
            + "\n<h4>Groups</h4>\n"
            + _html_table(_groups(collected.get("groups", pd.DataFrame())))
            + f"\n<p>Group kinds: {', '.join(plan.group_sets(config))}; SAE configurations chosen on the "
            f"<b>{writers._esc(opts.selection_pool)}</b> groups, results reported on the "
            f"<b>{writers._esc(opts.report_pool)}</b> groups.</p>"
        ),
        "Headline results",
        "----------------",
        "",
    ]
    seeds = seeds or [config["seed"]]
    if len(seeds) > 1:
        parts += [
            f"The study ran {len(seeds)} times, with seeds {', '.join(map(str, seeds))} (`seeds`): across seeds, each "
            "cell is the mean of the per-seed means ± its 95% confidence interval. Per-seed tables and figures "
            f"are listed under *Tables* and *Figures* (folder ``s<seed>``); below, the first seed ({seeds[0]}).",
            "",
        ]
        for page in seeds_tables or []:
            body = page[page.find("<table"): page.rfind("</ul>") + 5 if "</ul>" in page else page.rfind("</table>") + 8]
            parts.append(_raw(body))
    per_group = collected.get("per_group", pd.DataFrame())
    for dataset in plan.datasets(config):
        html = []
        try:
            html.append(writers.to_html(paper_tables.overall_table(per_group, dataset, opts), standalone=False))
        except (ValueError, KeyError) as err:
            html.append(f"<p>No overall table for {writers._esc(dataset)}: {writers._esc(err)}</p>")
        if dataset in heatmaps and Path(heatmaps[dataset]).exists():
            html.append(_png(heatmaps[dataset]))
        parts.append(_raw("\n".join(html)))
    parts += [
        "Configuration",
        "-------------",
        "",
        "The validated configuration of the run (schema defaults filled in):",
        "",
        ".. code-block:: yaml",
        "",
        textwrap.indent(yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False), "   "),
    ]
    # Snakemake renders the page with Jinja2 first: keep our text (braces in YAML, CSS) literal
    return "{% raw %}\n" + "\n".join(parts) + "\n{% endraw %}\n"
