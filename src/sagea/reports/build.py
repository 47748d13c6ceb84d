"""Every table of a study by its file stem (:func:`build_table`), the small-data flags some tables
carry, and one table across the seeds of a study (:func:`seeds_table`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sagea.plan_report import DATASET_TABLES, GLOBAL_TABLES
from sagea.reports import paper_tables, thesis_tables
from sagea.reports.options import ReportOptions
from sagea.reports.selection import require_pool
from sagea.reports.table_data import Table, mark_best

# ----------------------------------------------------------------------------- small-data flags
#: Marks appended to a group kind's column label (and explained in a footnote).
FEW_ITEMS_MARK, OVERLAP_MARK = "†", "‡"


def small_data_flags(
    pg: pd.DataFrame, groups: pd.DataFrame | None, pool: str, dataset: str | None = None
) -> tuple[dict[str, str], list[str]]:
    """Kind -> flagged label and the footnotes, for the group sets of ``pool`` (and ``dataset``) whose
    NDCG_com rests on one or two common held-out items per group (median ``GT_group`` <=
    ``FEW_COMMON_TARGETS``: ``†``) or whose groups overlap heavily (a share >= ``HEAVY_OVERLAP_SHARE``
    of the groups shares at least half of its members with another group: ``‡``)."""
    from sagea.groups.diagnostics import FEW_COMMON_TARGETS, HEAVY_OVERLAP_SHARE, HEAVY_OVERLAP_THRESHOLD

    def select(df: pd.DataFrame) -> pd.DataFrame:
        keep = df["pool"] == pool
        if dataset is not None:
            keep &= df["dataset"] == dataset
        return df[keep]

    rows = select(pg)
    marks: dict[str, set[str]] = {}
    notes: list[str] = []
    if "GT_group" in rows.columns:
        per_group = rows.groupby(["dataset", "kind", "group"])["GT_group"].first()
        for (ds, kind), median in per_group.groupby(level=["dataset", "kind"]).median().items():
            if median <= FEW_COMMON_TARGETS:
                marks.setdefault(kind, set()).add(FEW_ITEMS_MARK)
                notes.append(
                    f"{FEW_ITEMS_MARK} {kind} ({ds}): median {median:g} common held-out items per group - "
                    "NDCG_com rests on one or two items per group; read it with care."
                )
    if groups is not None and "overlapping" in groups.columns and len(groups):
        shares = select(groups).groupby(["dataset", "kind"])["overlapping"].mean()
        for (ds, kind), share in shares.items():
            if kind in set(rows["kind"]) and share >= HEAVY_OVERLAP_SHARE:
                marks.setdefault(kind, set()).add(OVERLAP_MARK)
                notes.append(
                    f"{OVERLAP_MARK} {kind} ({ds}): {share:.0%} of the groups share >= "
                    f"{HEAVY_OVERLAP_THRESHOLD:.0%} of their members with another group - the groups are "
                    "not independent, so the paired tests overstate significance."
                )
    order = (FEW_ITEMS_MARK, OVERLAP_MARK)
    return {kind: kind + "".join(m for m in order if m in found) for kind, found in marks.items()}, notes


def flag_small_data(table: Table, labels: dict[str, str], notes: list[str]) -> Table:
    """``table`` with the flagged kinds' column labels marked and the footnotes appended."""
    if not labels:
        return table
    for attr in ("data", "marks", "stars", "pvalues"):
        frame = getattr(table, attr)
        if frame is not None and "kind" in (frame.columns.names or []):
            setattr(table, attr, frame.rename(columns=labels, level="kind"))
    table.notes = list(table.notes) + notes
    return table


# ----------------------------------------------------------------------------- dispatch
def build_table(name: str, collected: dict[str, pd.DataFrame], opts: ReportOptions) -> Table:
    """Build the table called ``name`` (see :func:`sagea.plan_report.table_names`) from the collected frames.

    ``collected`` holds ``per_group``, ``single_user`` and ``sae`` (see :mod:`sagea.reports.collect`).
    """
    base, _, arg = name.partition("-")
    pg = collected.get("per_group")
    if base == "single_user":
        return paper_tables.single_user_table(collected["single_user"], opts)
    if base == "sae_reconstruction":
        return paper_tables.sae_reconstruction_table(collected["sae"], opts)
    if base == "common_features":
        return thesis_tables.common_features_table(pg, opts)
    if base == "fusions":
        pool = require_pool(pg[pg["family"] == "sagea"], opts.report_pool, "fusions")
        flags = small_data_flags(pg, collected.get("groups"), pool)
        return flag_small_data(thesis_tables.fusions_table(pg, opts), *flags)
    if base == "timing":
        return thesis_tables.timing_table(pg, opts)
    if base == "sagea_grid":
        return paper_tables.sagea_grid_table(pg, arg, opts)
    if base == "overall":
        pool = require_pool(pg[pg["dataset"] == arg], opts.report_pool, f"report on {arg}")
        flags = small_data_flags(pg, collected.get("groups"), pool, arg)
        return flag_small_data(paper_tables.overall_table(pg, arg, opts), *flags)
    if base == "fairness":
        return thesis_tables.fairness_table(pg, arg, opts)
    if base == "comparison":
        for comp in opts.comparisons:
            if comp["name"] == arg:
                return thesis_tables.comparison_table(pg, comp, opts)
        raise KeyError(f"table {name!r}: no comparison named {arg!r} in config key reports.comparisons")
    raise KeyError(f"unknown table {name!r}; known: {GLOBAL_TABLES + DATASET_TABLES + ('comparison',)}")


def seeds_table(per_seed: dict[int, Table], name: str, confidence: float = 0.95) -> Table:
    """One table across seeds: per cell of the per-seed tables, the mean over seeds and the
    half-width of its ``confidence`` interval, ``t_{(1+c)/2, n-1} · sd / sqrt(n)`` with the sample
    standard deviation of the per-seed values (no interval with one seed). Rows and columns are the
    union of the per-seed tables; a cell missing in some seed averages the seeds that have it."""
    from scipy import stats as sps

    seeds = list(per_seed)
    frames = [per_seed[s].data for s in seeds]
    index = frames[0].index.append([f.index for f in frames[1:]]).unique() if len(frames) > 1 else frames[0].index
    columns = frames[0].columns
    stack = np.stack([f.reindex(index=index, columns=columns).to_numpy(dtype=float) for f in frames])
    import warnings

    n = np.isfinite(stack).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # one seed: no standard deviation
        mean = np.nanmean(np.where(np.isfinite(stack), stack, np.nan), axis=0)
        sd = np.nanstd(stack, axis=0, ddof=1)
        t = np.where(n > 1, sps.t.ppf((1 + confidence) / 2, np.maximum(n - 1, 1)), np.nan)
        half = t * sd / np.sqrt(n)
    tuples = [(*(c if isinstance(c, tuple) else (c,)), stat) for c in columns for stat in ("mean", "±95% CI")]
    data = pd.DataFrame(
        np.stack([mean, half], axis=-1).reshape(len(index), -1),
        index=index,
        columns=pd.MultiIndex.from_tuples(tuples, names=[*(columns.names or [None]), "stat"]),
    )
    means = data.loc[:, [c for c in data.columns if c[-1] == "mean"]]
    marks = mark_best(means, True).reindex(columns=data.columns, fill_value="")
    first = per_seed[seeds[0]]
    return Table(
        f"{name}-seeds",
        f"{first.title} — mean over seeds {', '.join(map(str, seeds))} with 95% CI",
        data,
        marks=marks,
        notes=[
            f"Each cell: the mean over {len(seeds)} seeds of the per-seed mean, ± the half-width of its 95% "
            "confidence interval (Student t, n − 1 degrees of freedom). Best mean bold, second underlined.",
            "Every seed reruns the whole chain (split, ELSA, SAEs, groups) and chooses its own SAE configuration "
            "on its validation groups; the per-seed tables are in results/<study>/s<seed>/tables/.",
        ],
    )
