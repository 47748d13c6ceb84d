"""Report stage jobs: collect upstream outputs, build every table and every figure of a replicate."""

from __future__ import annotations

import logging
import os

import pandas as pd

from sagea.io import read_parquet, save_figure, write_parquet
from sagea.reports import build, collect, paper_tables, writers
from sagea.reports.options import ReportOptions

log = logging.getLogger(__name__)

_COLLECTORS = {
    "per_group": collect.collect_per_group,
    "single_user": collect.collect_single_user,
    "sae": collect.collect_sae,
    "history": collect.collect_history,
    "groups": collect.collect_groups,
}


def collect_results(entries: dict[str, list[dict]], outputs: dict[str, str | os.PathLike]) -> None:
    """Write one long Parquet table per kind of upstream output (see :mod:`sagea.reports.collect`)."""
    for kind, path in outputs.items():
        frame = _COLLECTORS[kind](entries.get(kind, []))
        write_parquet(frame, path)
        log.info("collected %s: %d rows -> %s", kind, len(frame), path)


def _load(collected: dict[str, str | os.PathLike]) -> dict[str, pd.DataFrame]:
    return {kind: read_parquet(path) for kind, path in collected.items()}


def make_tables(
    names: list[str], collected: dict[str, str | os.PathLike], options: dict, outputs: list[str | os.PathLike]
) -> None:
    """Build every table in ``names`` (rule report_tables); ``outputs``: per table its CSV,
    LaTeX, Markdown and HTML paths, in ``names`` order. The collected files are read once; each
    table gets its own copy of them."""
    if len(outputs) != 4 * len(names):
        raise ValueError(f"{len(names)} tables need {4 * len(names)} output paths, got {len(outputs)}")
    frames, report_options = _load(collected), ReportOptions(**options)
    for i, name in enumerate(names):
        table = build.build_table(name, {kind: frame.copy() for kind, frame in frames.items()}, report_options)
        writers.write_table(table, *outputs[4 * i : 4 * i + 4])
        log.info("table %s: %d rows x %d columns", name, *table.data.shape)


def make_figures(
    names: list[str], collected: dict[str, str | os.PathLike], options: dict, outputs: list[str | os.PathLike]
) -> None:
    """Build every figure in ``names`` (rule report_figures); ``outputs``: per figure its PNG and
    SVG paths, in ``names`` order."""
    import matplotlib.pyplot as plt

    from sagea.reports import figures

    if len(outputs) != 2 * len(names):
        raise ValueError(f"{len(names)} figures need {2 * len(names)} output paths, got {len(outputs)}")
    frames, report_options = _load(collected), ReportOptions(**options)
    for i, name in enumerate(names):
        fig = figures.build_figure(name, {kind: frame.copy() for kind, frame in frames.items()}, report_options)
        save_figure(fig, *outputs[2 * i : 2 * i + 2])
        plt.close(fig)
        log.info("figure %s written", name)


def make_front(
    study: str,
    config: dict,
    cards: dict[str, str | os.PathLike],
    collected: dict[str, str | os.PathLike],
    heatmaps: dict[str, str | os.PathLike],
    options: dict,
    out: str | os.PathLike,
    seeds: list[int] | None = None,
    seeds_tables: list[str | os.PathLike] | None = None,
) -> None:
    """Write the report's landing page (reST) of the study."""
    import json
    from pathlib import Path

    from sagea.io import write_text
    from sagea.reports.front import front_page

    loaded_cards = {dataset: json.loads(Path(path).read_text()) for dataset, path in cards.items()}
    extra = [Path(p).read_text() for p in seeds_tables or []]
    page = front_page(study, config, loaded_cards, _load(collected), heatmaps, ReportOptions(**options),
                      seeds=seeds, seeds_tables=extra)  # fmt: skip
    write_text(page, out)
    log.info("front page of %s -> %s", study, out)


def make_seeds_table(
    dataset: str,
    per_group: dict[int, str | os.PathLike],
    options: list[dict],
    csv: str | os.PathLike,
    tex: str | os.PathLike,
    md: str | os.PathLike,
    html: str | os.PathLike,
) -> None:
    """The overall table of ``dataset`` across seeds (one collected per_group file per seed)."""
    per_seed = {
        seed: paper_tables.overall_table(read_parquet(path), dataset, ReportOptions(**opts))
        for (seed, path), opts in zip(per_group.items(), options)
    }
    table = build.seeds_table(per_seed, f"overall-{dataset}")
    writers.write_table(table, csv, tex, md, html)
    log.info("overall-%s across seeds %s", dataset, list(per_seed))
