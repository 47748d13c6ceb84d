"""The thesis' tables, built from the collected per-group results (never MLflow).

Tables (file name under ``results/<study>/<rep>/tables/``):

5. ``comparison-<name>`` — a main vs a compared variant: G/mean, U/mean, U/min, Pop and % change.
6. ``common_features`` — mean number of SAE features active in every member.
7. ``fusions`` (fusion functions over all SAE sizes) and ``timing`` (scoring vs aggregation).
8. ``fairness-<dataset>`` — min/max, Jain, zero-recall share, m-proportionality.

The paper's tables (1-4) are in :mod:`sagea.reports.paper_tables`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sagea.reports.collect import SAE_HP_COLUMNS, SAE_LABELS, approach_order, approach_sort_key, kind_order, sae_row_columns
from sagea.reports.options import ReportOptions
from sagea.reports.paper_tables import ZERO_CODE, ZERO_LABEL, ZERO_NOTE, zero_code_percent
from sagea.reports.selection import chosen_rows, pick_option, require_pool, selection_notes
from sagea.reports.table_data import Table, mark_best

#: Per-group fairness columns of the evaluation stage, by the names it may use (first found wins).
FAIRNESS_CANDIDATES = {
    "min/max": ("NDCG{k}_min:max", "NDCG{k}_minmax", "NDCG{k}_min_max", "NDCG{k}_min/max", "MinMaxRatio"),
    "Jain": ("NDCG{k}_jain", "Jain", "JainIndex", "Jain_NDCG{k}", "NDCG{k}_Jain"),
    "zero-recall": ("ZeroRecall", "ZeroRecallShare", "R{k}_zero", "zero_recall_share", "ZeroRecall{k}"),
    "m-prop": ("MProportionality", "m_proportionality", "Proportionality", "mProportionality", "MProportionality{k}"),
}
FAIRNESS_HIGHER = {"min/max": True, "Jain": True, "zero-recall": False, "m-prop": True}


# ----------------------------------------------------------------------------- 8
def _fairness_columns(columns: pd.Index, k: int) -> dict[str, str]:
    """Display label -> per-group column, for the fairness measures that the evaluation wrote."""

    def norm(s: str) -> str:
        return "".join(ch for ch in s.lower() if ch.isalnum())

    present = {norm(c): c for c in columns}
    found = {}
    for label, candidates in FAIRNESS_CANDIDATES.items():
        for cand in candidates:
            hit = present.get(norm(cand.format(k=k)))
            if hit is not None:
                found[label] = hit
                break
    return found


def fairness_table(pg: pd.DataFrame, dataset: str, opts: ReportOptions) -> Table:
    """Table 8: fairness of each approach per kind (SAE chosen as in the overall table).

    min/max ratio and Jain's index ``(Σx)² / (n Σx²)`` of member NDCGs, share of members with zero
    recall, m-proportionality — means over groups. When the evaluation wrote no min/max column it
    is computed per group as ``NDCG_min / NDCG_max`` (0 when the max is 0, as the evaluation does).
    """
    rows, chosen, pool = chosen_rows(pg, dataset, opts)
    found = _fairness_columns(rows.columns, opts.k)
    mn, mx = f"NDCG{opts.k}_min", f"NDCG{opts.k}_max"
    if "min/max" not in found and {mn, mx} <= set(rows.columns):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = rows[mn].to_numpy(float) / rows[mx].to_numpy(float)
        rows = rows.assign(_minmax=np.where(rows[mx].to_numpy(float) > 0, ratio, 0.0))  # 0/0 -> 0 (docs/metrics.md)
        found = {"min/max": "_minmax", **found}
    labels = [lab for lab in FAIRNESS_CANDIDATES if lab in found]
    notes = [f"missing in per_group.parquet: {lab}" for lab in FAIRNESS_CANDIDATES if lab not in found]
    kinds = kind_order(rows)
    data = rows.groupby(["approach", "kind"])[[found[lab] for lab in labels]].mean()
    data.columns = labels
    data = data.unstack("kind")
    data.columns = data.columns.swaplevel(0, 1)
    data = data.reindex(
        columns=pd.MultiIndex.from_tuples([(k, lab) for k in kinds for lab in labels], names=["kind", "fairness"])
    )
    data = data.reindex(approach_order(rows))
    data.index.name = "approach"
    return Table(
        f"fairness-{dataset}",
        f"Fairness among group members on {dataset} ({pool} groups)",
        data,
        marks=mark_best(data, FAIRNESS_HIGHER),
        notes=["Means over groups; zero-recall: lower is better."] + notes + selection_notes(chosen, pool),
    )


# ----------------------------------------------------------------------------- 5
def _select(df: pd.DataFrame, spec: dict, what: str) -> pd.DataFrame:
    mask = np.ones(len(df), dtype=bool)
    for key, value in spec.items():
        col = SAE_HP_COLUMNS.get(key, key)
        if col not in df.columns or col in ("dataset", "pool", "group"):
            allowed = sorted(set(SAE_HP_COLUMNS) | {"topk_inference", "normalize_users_embeddings"})
            raise ValueError(f"{what}: unknown key {key!r}; use SAGEA options or SAE hyperparameters: {allowed}")
        series = df[col]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and pd.api.types.is_float_dtype(series):
            mask &= np.isclose(series.to_numpy(dtype=float), float(value))
        else:
            mask &= (series == value).fillna(False).to_numpy(dtype=bool)
    return df[mask]


def _spec(selection: dict) -> str:
    """``{"topk_inference": False}`` -> ``topk_inference=false``."""
    return ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in selection.items())


def comparison_table(pg: pd.DataFrame, comparison: dict, opts: ReportOptions) -> Table:
    """Table 5 (seed notebook 000): main vs compared variant per kind × dataset × width × k.

    ``% change = 100 (main - compare) / |compare|`` of the group means of G/mean (NDCG_com),
    U/mean (NDCG_mean), U/min (NDCG_min) and Pop; plus a ``mean`` row per kind and dataset.
    Rows pair on every descriptor not named in ``main``/``compare``.
    """
    name = comparison["name"]
    what = f"reports.comparisons[{name}]"
    fusion = comparison.get("fusion", "average")
    df = pg[(pg["family"] == "sagea") & (pg["strategy"] == fusion)]
    if df.empty:
        raise ValueError(f"{what}: no SAGEA results for fusion {fusion!r}")
    pool = require_pool(df, opts.report_pool, what)
    df = df[df["pool"] == pool]
    main, comp = _select(df, comparison["main"], what + ".main"), _select(df, comparison["compare"], what + ".compare")
    if main.empty or comp.empty:
        raise ValueError(
            f"{what}: no evaluation matches {'main' if main.empty else 'compare'} "
            f"({comparison['main'] if main.empty else comparison['compare']}); check the SAE grid "
            "and evaluation.sagea options of the config"
        )
    named = {SAE_HP_COLUMNS.get(k, k) for k in list(comparison["main"]) + list(comparison["compare"])}
    free = [
        "kind",
        "dataset",
        "width",
        "k",
        "loss",
        "variant",
        "l1_coef",
        "aux_coef",
        "contrastive_coef",
        "normalize",
        "sae_seed",
        "topk_inference",
        "normalize_users_embeddings",
        "elsa",
    ]
    keys = [c for c in free if c not in named]
    metrics = {opts.com: "G/mean", f"NDCG{opts.k}_mean": "U/mean", f"NDCG{opts.k}_min": "U/min", "Popularity": "Pop"}

    def means(part: pd.DataFrame) -> pd.DataFrame:
        return part.groupby(keys, dropna=False)[list(metrics)].mean().rename(columns=metrics)

    m, c = means(main), means(comp)
    joined = m.join(c.add_suffix(" compare"), how="inner")
    if joined.empty:
        raise ValueError(f"{what}: main and compare evaluations share no (dataset, width, k, ...) configuration")
    varying = [
        k for k in keys if k not in ("kind", "dataset", "width", "k") and joined.index.get_level_values(k).nunique() > 1
    ]
    drop = [k for k in keys if k not in ("kind", "dataset", "width", "k") and k not in varying]
    joined = joined.droplevel(drop) if drop else joined
    out = {}
    for label in metrics.values():
        main_v, comp_v = joined[label], joined[label + " compare"]
        out[(label, "main")] = main_v
        out[(label, "% change")] = 100.0 * (main_v - comp_v) / comp_v.abs()
    table = pd.DataFrame(out)
    table = table.reindex(kind_order(joined.reset_index()), level=0)
    mean_rows = table.groupby(level=["kind", "dataset"], sort=False).mean()
    pieces = []
    for (kind, dataset), block in table.groupby(level=["kind", "dataset"], sort=False):
        pieces.append(block)
        tail = tuple([kind, dataset] + ["mean"] * (table.index.nlevels - 2))
        pieces.append(
            pd.DataFrame(
                [mean_rows.loc[(kind, dataset)].to_numpy()],
                columns=table.columns,
                index=pd.MultiIndex.from_tuples([tail], names=table.index.names),
            )
        )
    table = pd.concat(pieces)
    table.index = pd.MultiIndex.from_tuples(
        [tuple(str(v) for v in t) for t in table.index], names=[{"width": "h"}.get(n, n) for n in table.index.names]
    )
    return Table(
        f"comparison-{name}",
        f"{name}: {_spec(comparison['main'])} vs {_spec(comparison['compare'])} (fusion {fusion}, {pool} groups)",
        table,
        decimals={"main": 3, "% change": 2},
        notes=[
            "% change = 100 (main - compare) / |compare| of the means over groups; "
            "G/mean = NDCG_com, U = per-member NDCG, Pop = popularity."
        ],
    )


# ----------------------------------------------------------------------------- 6, 7
def common_features_table(pg: pd.DataFrame, opts: ReportOptions) -> Table:
    """Table 6: mean number of SAE features active in every member, per kind × SAE (report pool)."""
    df = pg[(pg["family"] == "sagea")]
    if "CommonFeatures" not in df.columns:
        raise ValueError("per_group.parquet of SAGEA has no 'CommonFeatures' column (docs/ARCHITECTURE.md)")
    pool = require_pool(df, opts.report_pool, "common_features")
    option = pick_option(df, opts.main_option)
    df = df[(df["pool"] == pool) & (df["option"] == option)]
    sae_cols = sae_row_columns(df)
    # The count does not depend on the fusion: average over fusions to use every evaluation.
    data = df.groupby(["dataset"] + sae_cols + ["kind"])["CommonFeatures"].mean().unstack("kind")
    data = data[kind_order(df)]
    data.index.names = ["dataset"] + [SAE_LABELS[c] for c in sae_cols]
    data.columns.name = "kind"
    return Table(
        "common_features",
        f"Mean number of SAE features shared by all members ({pool} groups, option {option})",
        data,
        decimals={k: 2 for k in data.columns},
    )


def fusions_table(pg: pd.DataFrame, opts: ReportOptions) -> Table:
    """Table 7a: every fusion (and option) averaged over all SAE sizes, per kind (report pool)."""
    df = pg[pg["family"] == "sagea"]
    pool = require_pool(df, opts.report_pool, "fusions")
    df = df[df["pool"] == pool]
    metrics = {**{v: f"NDCG_{n}" for n, v in opts.ndcg.items()}, "Popularity": "Pop"}
    if zero_code_percent(df, ["approach"]) is not None:
        metrics[ZERO_CODE] = ZERO_LABEL
    # Mean over groups per evaluation first, then over SAE variants (each SAE size weighs the same).
    per_eval = df.groupby(["dataset", "option", "approach", "kind", "sae"])[list(metrics)].mean()
    data = per_eval.groupby(level=["dataset", "option", "approach", "kind"]).mean().rename(columns=metrics)
    if ZERO_LABEL in data.columns:
        data[ZERO_LABEL] *= 100.0
    data = data.unstack("kind")
    data.columns = data.columns.swaplevel(0, 1)
    kinds = kind_order(df)
    data = data.reindex(
        columns=pd.MultiIndex.from_tuples([(k, m) for k in kinds for m in metrics.values()], names=["kind", "metric"])
    )
    order = sorted(data.index, key=lambda t: (t[0], t[1], approach_sort_key(t[2])))
    data = data.reindex(pd.MultiIndex.from_tuples(order, names=["dataset", "option", "fusion"]))
    return Table(
        "fusions",
        f"Fusion functions averaged over all SAE sizes ({pool} groups)",
        data,
        marks=mark_best(data, {"Pop": False}, within="dataset", skip=(ZERO_LABEL,)),
        decimals={ZERO_LABEL: 1},
        notes=["Mean over groups, then over SAE variants; popularity: lower is better."]
        + ([ZERO_NOTE] if ZERO_LABEL in metrics.values() else []),
    )


def timing_table(pg: pd.DataFrame, opts: ReportOptions) -> Table:
    """Table 7b: time per group (ms) of each strategy, split into scoring and aggregation."""
    pool = require_pool(pg, opts.report_pool, "timing")
    df = pg[pg["pool"] == pool]
    cols = [c for c in ("Time_scoring", "Time_aggregation") if c in df.columns]
    if not cols:
        raise ValueError("per_group.parquet has no Time_scoring / Time_aggregation columns (docs/ARCHITECTURE.md)")
    per = df.groupby(["dataset", "approach"])[cols].mean() * 1000.0
    per.columns = [c.replace("Time_", "") + " ms" for c in cols]
    per["total ms"] = per.sum(axis=1, min_count=1)
    order = sorted(per.index, key=lambda t: (t[0], approach_sort_key(t[1])))
    per = per.reindex(pd.MultiIndex.from_tuples(order, names=["dataset", "approach"]))
    return Table(
        "timing",
        f"Time per group ({pool} groups, mean over group kinds and SAE variants)",
        per,
        marks=mark_best(per, False, within="dataset"),
        decimals={c: 3 for c in per.columns},
        notes=["Seconds per group from the evaluation, times 1000; lower is better."],
    )
