"""The paper's tables, built from the collected per-group results (never MLflow).

Tables (file name under ``results/<study>/<rep>/tables/``):

1. ``single_user`` — POP, EASE, ELSA: NDCG@k, Recall@k per dataset (test users).
2. ``sae_reconstruction`` — per SAE: cosine similarity, L0, dead %, NDCG@k and its degradation.
3. ``sagea_grid-<dataset>`` — SAGEA-Avg over width × k (paper Table 2; selection pool).
4. ``overall-<dataset>`` — every approach × group kind × NDCG com/min/mean (paper Table 3) with
   the SAE configuration chosen per kind and fusion on the selection pool (``valid``) by mean
   NDCG_com and reported on the report pool (``test``); ``*`` = the best is significantly better.

The thesis' tables are in :mod:`sagea.reports.thesis_tables`; :func:`sagea.reports.build.build_table`
builds any table by its file stem.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sagea.reports import stats
from sagea.reports.collect import SAE_LABELS, approach_order, kind_order, sae_row_columns
from sagea.reports.options import ReportOptions
from sagea.reports.selection import chosen_rows, pick_option, selection_notes, selection_pool
from sagea.reports.table_data import Table, mark_best

#: SAGEA's per-group flag "the fusion gave an all-zero code" and its column label in tables (percent).
ZERO_CODE, ZERO_LABEL = "ZeroFusedCode", "zero %"
ZERO_NOTE = (
    "zero % = share of groups (in %) whose fused SAE code was all-zero before the "
    "evaluation.sagea.zero_fallback rule replaced it."
)



# ----------------------------------------------------------------------------- 1, 2
def single_user_table(single: pd.DataFrame, opts: ReportOptions, split: str = "test") -> Table:
    """Table 1: single-user NDCG@k and Recall@k of POP, EASE and ELSA per dataset."""
    k = opts.k
    df = single[single["split"] == split]
    cols = {f"NDCG{k}": f"NDCG@{k}", f"R{k}": f"Recall@{k}"}
    order = {"POP": 0, "EASE": 1, "ELSA": 2}
    df = df.assign(_o=df["model"].map(lambda m: order.get(m, 3))).sort_values(["dataset", "_o", "model"])
    data = df.set_index(["dataset", "model"])[[c for c in cols if c in df.columns]].rename(columns=cols)
    data.index.names = ["dataset", "model"]
    return Table(
        name="single_user",
        title=f"Single-user accuracy ({split} users)",
        data=data.astype("float64"),
        marks=mark_best(data, True, within="dataset", decimals={}),
        decimals={},
    )


def sae_reconstruction_table(sae: pd.DataFrame, opts: ReportOptions, split: str = "test") -> Table:
    """Table 2: reconstruction quality of every SAE (cosine, L0, dead %, NDCG@k, degradation)."""
    k = opts.k
    df = sae[sae["split"] == split].copy()
    metrics = {
        "CosineSim": "cosine",
        "L0": "L0",
        "DeadNeurons": "dead %",
        f"NDCG{k}": f"NDCG@{k}",
        f"NDCG{k}_Degradation": "degradation",
    }
    if "DeadNeurons" in df.columns:
        df["DeadNeurons"] = 100.0 * df["DeadNeurons"].astype("float64")
    rows = ["dataset"] + sae_row_columns(df)
    df = df.sort_values(rows)
    data = df.set_index(rows)[[m for m in metrics if m in df.columns]].rename(columns=metrics).astype("float64")
    data.index.names = ["dataset"] + [SAE_LABELS[c] for c in rows[1:]]
    decimals = {"L0": 1, "dead %": 1, "degradation": 4, f"NDCG@{k}": 4}
    marks = mark_best(data, {"dead %": False}, within="dataset", decimals=decimals, skip=("L0", "degradation"))
    return Table("sae_reconstruction", f"SAE reconstruction ({split} users)", data, marks=marks, decimals=decimals)


# ----------------------------------------------------------------------------- 3
def grid_fusion(pg: pd.DataFrame, wanted: str = "average") -> str:
    """The fusion of the grid table/heatmap: ``average`` (the paper's) or else the first evaluated."""
    fusions = list(dict.fromkeys(pg.loc[pg["family"] == "sagea", "strategy"]))
    return wanted if wanted in fusions or not fusions else fusions[0]


def sagea_grid_table(pg: pd.DataFrame, dataset: str, opts: ReportOptions, fusion: str | None = None) -> Table:
    """Table 3 (paper Table 2): SAGEA with one fusion (``average``) over the SAE grid, per group kind.

    Values are means over the groups of the selection pool; popularity is lower-is-better.
    """
    fusion = fusion or grid_fusion(pg)
    df = pg[(pg["dataset"] == dataset) & (pg["family"] == "sagea") & (pg["strategy"] == fusion)]
    if df.empty:
        raise ValueError(f"no SAGEA {fusion!r} results for dataset {dataset!r}")
    pool = selection_pool(df, opts, f"sagea_grid-{dataset}")
    option = pick_option(df, opts.main_option)
    df = df[(df["pool"] == pool) & (df["option"] == option)]
    metrics = {**{v: f"NDCG_{n}" for n, v in opts.ndcg.items()}, "Popularity": "Pop"}
    sae_cols = sae_row_columns(df)
    data = df.groupby(["kind"] + sae_cols, sort=True)[list(metrics)].mean().rename(columns=metrics)
    data = data.reindex(kind_order(df), level=0)
    data.index.names = ["kind"] + [SAE_LABELS[c] for c in sae_cols]
    marks = mark_best(data, {"Pop": False}, within="kind")
    name = "SAE-Avg" if fusion == "average" else f"SAE-{fusion}"
    return Table(
        f"sagea_grid-{dataset}",
        f"{name} over SAE width and k on {dataset} ({pool} groups, option {option})",
        data,
        marks=marks,
        notes=["Mean over groups; best bold, second underlined; popularity: lower is better."],
    )



# ----------------------------------------------------------------------------- 4
def _per_group(rows: pd.DataFrame, kind: str, column: str) -> dict[str, np.ndarray]:
    """Approach -> per-group values of ``column`` for the groups of ``kind`` (aligned on the group id)."""
    sub = rows[rows["kind"] == kind]
    wide = sub.pivot_table(index="group", columns="approach", values=column, aggfunc="mean", dropna=False)
    return {a: wide[a].to_numpy(dtype=np.float64) for a in wide.columns}


def zero_code_percent(rows: pd.DataFrame, by: list[str]) -> pd.Series | None:
    """Percent of SAGEA groups flagged ``ZeroFusedCode`` per ``by``; None when no group is flagged."""
    if ZERO_CODE not in rows.columns:
        return None
    share = 100.0 * rows[rows["family"] == "sagea"].groupby(by)[ZERO_CODE].mean()
    return share if (share > 0).any() else None


def overall_table(pg: pd.DataFrame, dataset: str, opts: ReportOptions) -> Table:
    """Table 4 (paper Table 3): every approach × group kind × NDCG com/min/mean with stars.

    Per kind and column the approach with the best mean is tested against every other with a
    one-sided paired test over the groups (``opts.test``, corrected by ``opts.correction``);
    other approaches with ``p <= alpha`` get ``*``.
    """
    rows, chosen, pool = chosen_rows(pg, dataset, opts)
    if rows.empty:
        raise ValueError(f"no evaluation results for dataset {dataset!r} on pool {pool!r}")
    approaches = approach_order(rows)
    kinds = kind_order(rows)
    columns = pd.MultiIndex.from_tuples(
        [(kind, label) for kind in kinds for label in opts.ndcg], names=["kind", "NDCG"]
    )
    data = pd.DataFrame(np.nan, index=pd.Index(approaches, name="approach"), columns=columns)
    pvals = data.copy()
    for kind in kinds:
        for label, column in opts.ndcg.items():
            samples = _per_group(rows, kind, column)
            if not samples:
                continue
            for a, v in samples.items():
                data.loc[a, (kind, label)] = np.nanmean(v) if np.isfinite(v).any() else np.nan
            _, p = stats.best_vs_others(samples, True, opts.test, opts.correction)
            for a, value in p.items():
                pvals.loc[a, (kind, label)] = value
    test = "paired one-sided t-test" if opts.test == "ttest" else "one-sided Wilcoxon signed-rank test"
    corr = "" if opts.correction == "none" else f", {opts.correction} correction"
    notes = [f"* = the best approach of the column is significantly better ({test}{corr}, p <= {opts.alpha})."]
    zero = zero_code_percent(rows, ["approach", "kind"])
    if zero is not None:  # a "zero %" column after each kind's NDCG columns
        columns = pd.MultiIndex.from_tuples(
            [(kind, label) for kind in kinds for label in [*opts.ndcg, ZERO_LABEL]], names=columns.names
        )
        data = data.reindex(columns=columns)  # (no p-values: the share is not tested)
        for (a, kind), value in zero.items():
            data.loc[a, (kind, ZERO_LABEL)] = value
        notes.append(ZERO_NOTE + " Baselines: –.")
    stars = pvals.reindex(columns=data.columns).le(opts.alpha).fillna(False).astype(bool)
    return Table(
        f"overall-{dataset}",
        f"Group recommendation on {dataset}: NDCG@{opts.k} ({pool} groups)",
        data,
        marks=mark_best(data, True, skip=(ZERO_LABEL,)),
        stars=stars,
        pvalues=pvals,
        decimals={ZERO_LABEL: 1},
        notes=notes + selection_notes(chosen, pool),
    )


