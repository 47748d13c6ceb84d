"""The report's figures (matplotlib, Agg backend); each function returns a Figure to save as PNG + SVG.

- ``heatmap-<dataset>``: SAGEA-Avg NDCG com/min/mean and popularity over width × k per group kind.
- ``bars-<dataset>``: mean NDCG per approach and kind with seeded 95% bootstrap CIs.
- ``group_similarity-<dataset>``: histograms of the groups' mean pairwise similarity per set
  (and subgroup / between similarities of opposing groups), per pool.
- ``training-<dataset>``: ELSA and SAE training curves from ``history.parquet``.
"""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sagea.plan_report import FIGURE_KINDS  # noqa: E402
from sagea.reports import stats  # noqa: E402
from sagea.reports.collect import approach_order, kind_order  # noqa: E402
from sagea.reports.options import ReportOptions  # noqa: E402
from sagea.reports.paper_tables import grid_fusion  # noqa: E402
from sagea.reports.selection import chosen_rows, pick_option, selection_pool  # noqa: E402

#: Training-history columns drawn by ``training-*`` (ELSA: loss, validation NDCG/recall; SAE: below).
CURVE_METRICS = ("loss", "Loss_train", "Loss_valid", "CosineSim_valid", "L0_valid", "DeadNeurons_valid")


def _empty(message: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


#: Short axis labels for approach names too long to read rotated (tables keep the full names).
SHORT_NAMES = {
    "SAE-at_least_2_common_features": "SAE-ComF≥2",
    "SAE-square_average": "SAE-SqAvg",
    "SAE-min": "SAE-Min",
}
#: Readable names of the opposing-group similarity columns.
SIMILARITY_LABELS = {
    "subgroup_similarity_0": "within subgroup A",
    "subgroup_similarity_1": "within subgroup B",
    "between_similarity": "between subgroups",
}


def sagea_heatmap(pg: pd.DataFrame, dataset: str, opts: ReportOptions, fusion: str | None = None) -> plt.Figure:
    """Grid of heatmaps: rows = metric, columns = group kind; cells = SAE variant (width, loss, ...) by k."""
    fusion = fusion or grid_fusion(pg)
    df = pg[(pg["dataset"] == dataset) & (pg["family"] == "sagea") & (pg["strategy"] == fusion)]
    if df.empty:
        return _empty(f"no SAGEA {fusion} results for {dataset}")
    pool = selection_pool(df, opts, f"heatmap-{dataset}")
    option = pick_option(df, opts.main_option)
    df = df[(df["pool"] == pool) & (df["option"] == option)]
    metrics = {**{v: f"NDCG_{n}" for n, v in opts.ndcg.items()}, "Popularity": "Pop"}
    kinds = kind_order(df)
    # One row per SAE variant without its k: "topk-h1024-l2", "topk-h1024-l2-con0.3", ...
    df = df.assign(row=df["sae"].str.replace(r"-k\d+", "", regex=True))
    widths = dict(zip(df["row"], df["width"].astype(int)))
    fig, axes = plt.subplots(len(metrics), len(kinds), figsize=(3.2 * len(kinds), 2.6 * len(metrics)), squeeze=False)
    for i, (col, label) in enumerate(metrics.items()):
        for j, kind in enumerate(kinds):
            ax = axes[i, j]
            grid = df[df["kind"] == kind].pivot_table(index="row", columns="k", values=col, aggfunc="mean")
            grid = grid.reindex(sorted(grid.index, key=lambda r: (widths[r], r)))
            cmap = "viridis_r" if label == "Pop" else "viridis"
            values = grid.to_numpy(dtype=float)
            im = ax.imshow(values, cmap=cmap, aspect="auto")
            lo, hi = (np.nanmin(values), np.nanmax(values)) if np.isfinite(values).any() else (0.0, 1.0)
            ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
            ax.set_yticks(range(grid.shape[0]), list(grid.index))
            for (r, c), v in np.ndenumerate(values):
                if np.isfinite(v):
                    # Dark text on the bright end of the colormap, white on the dark end.
                    bright = (v - lo) / (hi - lo + 1e-12) > 0.5
                    color = "k" if bright != (label == "Pop") else "w"
                    ax.text(c, r, f"{v:.3f}", ha="center", va="center", color=color, fontsize=8)
            ax.set_title(f"{kind}: {label}", fontsize=9)
            ax.set_xlabel("k")
            ax.set_ylabel("SAE")
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(f"{dataset}: SAGEA-{fusion} ({pool} groups, {option})")
    fig.tight_layout()
    return fig


def approach_bars(pg: pd.DataFrame, dataset: str, opts: ReportOptions) -> plt.Figure:
    """Mean NDCG com/min/mean per approach, one bar per group kind, with bootstrap 95% CIs."""
    rows, _, pool = chosen_rows(pg, dataset, opts)
    if rows.empty:
        return _empty(f"no evaluation results for {dataset}")
    approaches = approach_order(rows)
    kinds = kind_order(rows)
    fig, axes = plt.subplots(
        len(opts.ndcg),
        1,
        figsize=(max(6, 0.3 * len(approaches) * max(len(kinds), 2)), 4 * len(opts.ndcg)),
        squeeze=False,
    )
    width = 0.8 / max(len(kinds), 1)
    x = np.arange(len(approaches))
    for i, (label, col) in enumerate(opts.ndcg.items()):
        ax = axes[i, 0]
        for j, kind in enumerate(kinds):
            sub = rows[rows["kind"] == kind]
            means, lows, highs = [], [], []
            for a in approaches:
                v = sub.loc[sub["approach"] == a, col].to_numpy(dtype=float)
                m = np.nanmean(v) if np.isfinite(v).any() else np.nan
                lo, hi = stats.bootstrap_ci(v, opts.bootstrap, opts.seed)
                means.append(m)
                lows.append(m - lo if np.isfinite(lo) else 0.0)
                highs.append(hi - m if np.isfinite(hi) else 0.0)
            ax.bar(x + (j - (len(kinds) - 1) / 2) * width, means, width, yerr=[lows, highs], capsize=2, label=kind)
        ax.set_xticks(x, [SHORT_NAMES.get(a, a) for a in approaches], rotation=30, ha="right")
        ax.set_ylabel(f"NDCG@{opts.k} {label}")
        ax.set_xlim(-0.6, len(approaches) - 0.4)
    # one legend for all panels, above them, so it never hides a bar
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncols=max(len(kinds), 1), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 0.975), title="group kind", title_fontsize=8)  # fmt: skip
    fig.suptitle(f"{dataset}: approaches ({pool} groups), 95% bootstrap CI")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def group_similarity_hist(groups: pd.DataFrame, dataset: str) -> plt.Figure:
    """Per pool: histogram of mean pairwise similarity per group set; opposing subgroups separately."""
    df = groups[groups["dataset"] == dataset]
    if df.empty or "group_similarity" not in df.columns:
        return _empty(f"no groups for {dataset}")
    pools = list(dict.fromkeys(df["pool"]))
    opp_cols = [c for c in ("subgroup_similarity_0", "subgroup_similarity_1", "between_similarity") if c in df.columns]
    has_opp = bool(opp_cols) and df[opp_cols].notna().any().any()
    ncols = 2 if has_opp else 1
    fig, axes = plt.subplots(len(pools), ncols, figsize=(5.5 * ncols, 3 * len(pools)), squeeze=False)
    bins = np.linspace(0.0, 1.0, 41)
    for i, pool in enumerate(pools):
        sub = df[df["pool"] == pool]
        ax = axes[i, 0]
        for gs, part in sub.groupby("groupset", sort=True):
            kind = part["kind"].iat[0]
            name = gs if kind == gs else f"{gs} ({kind})"
            ax.hist(part["group_similarity"].dropna(), bins=bins, alpha=0.5, label=name)
        ax.set_title(f"{pool}: mean pairwise similarity")
        ax.set_xlabel("similarity (cos+1)/2")
        ax.legend(fontsize=7)
        if has_opp:
            ax = axes[i, 1]
            opp = sub.dropna(subset=["between_similarity"]) if "between_similarity" in sub else sub.iloc[:0]
            for col in opp_cols:
                values = opp[col].dropna()
                if len(values):  # a subgroup of one member has no within-subgroup similarity
                    ax.hist(values, bins=bins, alpha=0.5, label=SIMILARITY_LABELS.get(col, col))
            ax.set_xlabel("similarity (cos+1)/2")
            ax.set_title(f"{pool}: opposing groups")
            ax.legend(fontsize=7)
    fig.suptitle(f"{dataset}: synthetic group similarity")
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame, dataset: str) -> plt.Figure:
    """One panel per (model, metric) with a line per run (ELSA runs, SAE variants)."""
    df = history[history["dataset"] == dataset]
    if df.empty:
        return _empty(f"no training history for {dataset}")
    panels = list(dict.fromkeys(zip(df["model"], df["metric"])))
    # The SAE history has ~17 columns (every loss term); keep the informative ones when present.
    key = [p for p in panels if p[1] in CURVE_METRICS or re.match(r"(NDCG|R)\d+_valid$", p[1])]
    panels = key or panels
    ncols = min(3, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3 * nrows), squeeze=False)
    for ax, (model, metric) in zip(axes.flat, panels):
        part = df[(df["model"] == model) & (df["metric"] == metric)]
        for run, line in part.groupby("run", sort=True):
            ax.plot(line["epoch"], line["value"], label=run, lw=1)
        ax.set_title(f"{model}: {metric}", fontsize=9)
        ax.set_xlabel("epoch")
        if part["run"].nunique() <= 12:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(f"{dataset}: training curves")
    fig.tight_layout()
    return fig


def build_figure(name: str, collected: dict[str, pd.DataFrame], opts: ReportOptions) -> plt.Figure:
    """Build the figure called ``name`` (see :func:`sagea.plan_report.figure_names`) from the collected frames."""
    kind, _, dataset = name.partition("-")
    if kind == "heatmap":
        return sagea_heatmap(collected["per_group"], dataset, opts)
    if kind == "bars":
        return approach_bars(collected["per_group"], dataset, opts)
    if kind == "group_similarity":
        return group_similarity_hist(collected["groups"], dataset)
    if kind == "training":
        return training_curves(collected["history"], dataset)
    raise KeyError(f"unknown figure {name!r}; known kinds: {FIGURE_KINDS}")
