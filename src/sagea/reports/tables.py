"""The paper's and thesis' tables, built from the collected per-group results (never MLflow).

Tables (file name under ``results/<study>/tables/``):

1. ``single_user`` — POP, EASE, ELSA: NDCG@k, Recall@k per dataset (test users).
2. ``sae_reconstruction`` — per SAE: cosine similarity, L0, dead %, NDCG@k and its degradation.
3. ``sagea_grid-<dataset>`` — SAGEA-Avg over width × k (paper Table 2; selection pool).
4. ``overall-<dataset>`` — every approach × group kind × NDCG com/min/mean (paper Table 3) with
   the SAE configuration chosen per kind and fusion on the selection pool (``valid``) by mean
   NDCG_com and reported on the report pool (``test``); ``*`` = the best is significantly better.
5. ``comparison-<name>`` — a main vs a compared variant: G/mean, U/mean, U/min, Pop and % change.
6. ``common_features`` — mean number of SAE features active in every member.
7. ``fusions`` (fusion functions over all SAE sizes) and ``timing`` (scoring vs aggregation).
8. ``fairness-<dataset>`` — min/max, Jain, zero-recall share, m-proportionality.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sagea.reports import stats
from sagea.reports.collect import SAE_HP_COLUMNS, approach_name, approach_sort_key
from sagea.reports.names import DATASET_TABLES, GLOBAL_TABLES, table_names  # noqa: F401 (re-exported)
from sagea.reports.table import Table, mark_best

log = logging.getLogger(__name__)

#: Per-group fairness columns of the evaluation stage, by the names it may use (first found wins).
FAIRNESS_CANDIDATES = {
    "min/max": ("NDCG{k}_min:max", "NDCG{k}_minmax", "NDCG{k}_min_max", "NDCG{k}_min/max", "MinMaxRatio"),
    "Jain": ("NDCG{k}_jain", "Jain", "JainIndex", "Jain_NDCG{k}", "NDCG{k}_Jain"),
    "zero-recall": ("ZeroRecall", "ZeroRecallShare", "R{k}_zero", "zero_recall_share", "ZeroRecall{k}"),
    "m-prop": ("MProportionality", "m_proportionality", "Proportionality", "mProportionality", "MProportionality{k}"),
}
FAIRNESS_HIGHER = {"min/max": True, "Jain": True, "zero-recall": False, "m-prop": True}
#: SAGEA's per-group flag "the fusion gave an all-zero code" and its column label in tables (percent).
ZERO_CODE, ZERO_LABEL = "ZeroFusedCode", "zero %"
ZERO_NOTE = (
    "zero % = share of groups (in %) whose fused SAE code was all-zero before the "
    "evaluation.sagea.zero_fallback rule replaced it."
)


@dataclass
class ReportOptions:
    """Everything the builders need from the config (``reports`` and ``evaluation`` sections)."""

    k: int = 20
    test: str = "ttest"
    correction: str = "none"
    alpha: float = 0.05
    bootstrap: int = 1000
    seed: int = 42
    selection_pool: str = "valid"
    report_pool: str = "test"
    allow_selection_on_report_pool: bool = False
    main_option: str = "ti1-nu0"
    comparisons: list[dict] = field(default_factory=list)

    @property
    def com(self) -> str:
        return f"NDCG{self.k}_com"

    @property
    def ndcg(self) -> dict[str, str]:
        """Display label -> per-group column of the three NDCG views of the paper."""
        return {"com": f"NDCG{self.k}_com", "min": f"NDCG{self.k}_min", "mean": f"NDCG{self.k}_mean"}


def _pool(pg: pd.DataFrame, wanted: str, what: str) -> str:
    """``wanted`` if the collected results hold that pool; otherwise an error (never a silent swap)."""
    pools = list(dict.fromkeys(pg["pool"]))
    if not pools:
        raise ValueError("no evaluation results collected")
    if wanted in pools:
        return wanted
    raise ValueError(
        f"{what}: no groups of the {wanted!r} pool were evaluated (evaluated: {pools}); add {wanted!r} to "
        "groups.pools or set reports.report_pool / reports.selection_pool to an evaluated pool"
    )


def selection_pool(pg: pd.DataFrame, opts: "ReportOptions", what: str) -> str:
    """The pool whose groups choose SAE configurations: ``opts.selection_pool``, which must differ
    from the reported pool unless ``opts.allow_selection_on_report_pool`` (then, if the selection
    pool was not evaluated, the reported pool is used and the tables say so)."""
    pools = list(dict.fromkeys(pg["pool"]))
    if opts.selection_pool == opts.report_pool and not opts.allow_selection_on_report_pool:
        raise ValueError(
            f"{what}: reports.selection_pool and reports.report_pool are both {opts.report_pool!r}; choosing the "
            "SAE configuration on the reported groups biases the tables. Evaluate another pool (groups.pools) "
            "and select there, or set reports.allow_selection_on_report_pool: true"
        )
    if opts.selection_pool in pools:
        return opts.selection_pool
    if opts.allow_selection_on_report_pool and opts.report_pool in pools:
        log.warning("%s: selection pool %r not evaluated; selecting on the reported %r groups (allowed by config)",
                    what, opts.selection_pool, opts.report_pool)  # fmt: skip
        return opts.report_pool
    return _pool(pg, opts.selection_pool, what)


def _option(df: pd.DataFrame, wanted: str) -> str | None:
    options = [o for o in dict.fromkeys(df["option"]) if isinstance(o, str)]
    if not options:
        return None
    return wanted if wanted in options else options[0]


def _kinds(df: pd.DataFrame) -> list[str]:
    order = {"sim": 0, "random": 1, "outlier": 2}
    return sorted(dict.fromkeys(df["kind"]), key=lambda k: (order.get(k, 3), k))


def _sae_row_columns(df: pd.DataFrame) -> list[str]:
    """Row labels of an SAE: ``h, k, loss`` and the variant id where those do not identify it."""
    cols = ["width", "k", "loss"]
    keyed = df.drop_duplicates(["sae"])
    if keyed.duplicated(cols).any():
        cols.append("sae")
    return cols


_SAE_LABELS = {"width": "h", "k": "k", "loss": "loss", "sae": "SAE"}


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
    rows = ["dataset"] + _sae_row_columns(df)
    df = df.sort_values(rows)
    data = df.set_index(rows)[[m for m in metrics if m in df.columns]].rename(columns=metrics).astype("float64")
    data.index.names = ["dataset"] + [_SAE_LABELS[c] for c in rows[1:]]
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
    option = _option(df, opts.main_option)
    df = df[(df["pool"] == pool) & (df["option"] == option)]
    metrics = {**{v: f"NDCG_{n}" for n, v in opts.ndcg.items()}, "Popularity": "Pop"}
    sae_cols = _sae_row_columns(df)
    data = df.groupby(["kind"] + sae_cols, sort=True)[list(metrics)].mean().rename(columns=metrics)
    data = data.reindex(_kinds(df), level=0)
    data.index.names = ["kind"] + [_SAE_LABELS[c] for c in sae_cols]
    marks = mark_best(data, {"Pop": False}, within="kind")
    name = "SAE-Avg" if fusion == "average" else f"SAE-{fusion}"
    return Table(
        f"sagea_grid-{dataset}",
        f"{name} over SAE width and k on {dataset} ({pool} groups, option {option})",
        data,
        marks=marks,
        notes=["Mean over groups; best bold, second underlined; popularity: lower is better."],
    )


# ----------------------------------------------------------------------------- 4, 8
def select_sae(pg: pd.DataFrame, dataset: str, opts: ReportOptions) -> pd.DataFrame:
    """Per (group set, fusion): the SAE variant × option with the best mean NDCG_com on the selection pool.

    Returns rows ``groupset, kind, strategy, sae, option, score, pool`` (main ELSA run only).
    """
    df = pg[(pg["dataset"] == dataset) & (pg["family"] == "sagea")]
    if df.empty:
        return pd.DataFrame(columns=["groupset", "kind", "strategy", "sae", "option", "score", "pool"])
    pool = selection_pool(df, opts, f"SAE selection on {dataset}")
    df = df[df["pool"] == pool]
    means = df.groupby(["groupset", "kind", "strategy", "sae", "option"], sort=True)[opts.com].mean()
    means = (
        means.rename("score")
        .reset_index()
        .sort_values(["groupset", "strategy", "score", "sae", "option"], ascending=[True, True, False, True, True])
    )
    best = means.drop_duplicates(["groupset", "strategy"]).assign(pool=pool)
    return best.reset_index(drop=True)


def _chosen_rows(pg: pd.DataFrame, dataset: str, opts: ReportOptions) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Report-pool rows of the baselines and of the selected SAGEA configurations."""
    pool = _pool(pg[pg["dataset"] == dataset], opts.report_pool, f"report on {dataset}")
    df = pg[(pg["dataset"] == dataset) & (pg["pool"] == pool)]
    chosen = select_sae(pg, dataset, opts)
    keys = chosen[["groupset", "strategy", "sae", "option"]]
    sagea = df[df["family"] == "sagea"].merge(keys, on=["groupset", "strategy", "sae", "option"])
    rows = pd.concat([sagea, df[df["family"] != "sagea"]], ignore_index=True)
    return rows, chosen, pool


def _per_group(rows: pd.DataFrame, kind: str, column: str) -> dict[str, np.ndarray]:
    sub = rows[rows["kind"] == kind]
    wide = sub.pivot_table(index="group", columns="approach", values=column, aggfunc="mean", dropna=False)
    return {a: wide[a].to_numpy(dtype=np.float64) for a in wide.columns}


def _approach_index(rows: pd.DataFrame) -> list[str]:
    return sorted(dict.fromkeys(rows["approach"]), key=approach_sort_key)


def _zero_code_percent(rows: pd.DataFrame, by: list[str]) -> pd.Series | None:
    """Percent of SAGEA groups flagged ``ZeroFusedCode`` per ``by``; None when no group is flagged."""
    if ZERO_CODE not in rows.columns:
        return None
    share = 100.0 * rows[rows["family"] == "sagea"].groupby(by)[ZERO_CODE].mean()
    return share if (share > 0).any() else None


def _selection_notes(chosen: pd.DataFrame, pool: str) -> list[str]:
    if chosen.empty:
        return []
    chosen_on = chosen["pool"].iat[0]
    notes = [
        f"SAE configuration per group kind chosen by mean NDCG_com on the {chosen_on} "
        f"groups, reported on the {pool} groups:"
    ]
    if chosen_on == pool:
        notes.insert(
            0,
            f"WARNING: the SAE configurations were chosen on the very {pool} groups this table reports "
            "(reports.allow_selection_on_report_pool: true), so the SAGEA rows are optimistically biased.",
        )
    for kind, sub in chosen.groupby("kind", sort=False):
        picks = ", ".join(f"{approach_name('sagea', r.strategy)}={r.sae}/{r.option}" for r in sub.itertuples())
        notes.append(f"{kind}: {picks}")
    return notes


def overall_table(pg: pd.DataFrame, dataset: str, opts: ReportOptions) -> Table:
    """Table 4 (paper Table 3): every approach × group kind × NDCG com/min/mean with stars.

    Per kind and column the approach with the best mean is tested against every other with a
    one-sided paired test over the groups (``opts.test``, corrected by ``opts.correction``);
    other approaches with ``p <= alpha`` get ``*``.
    """
    rows, chosen, pool = _chosen_rows(pg, dataset, opts)
    if rows.empty:
        raise ValueError(f"no evaluation results for dataset {dataset!r} on pool {pool!r}")
    approaches = _approach_index(rows)
    kinds = _kinds(rows)
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
    zero = _zero_code_percent(rows, ["approach", "kind"])
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
        notes=notes + _selection_notes(chosen, pool),
    )


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
    rows, chosen, pool = _chosen_rows(pg, dataset, opts)
    found = _fairness_columns(rows.columns, opts.k)
    mn, mx = f"NDCG{opts.k}_min", f"NDCG{opts.k}_max"
    if "min/max" not in found and {mn, mx} <= set(rows.columns):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = rows[mn].to_numpy(float) / rows[mx].to_numpy(float)
        rows = rows.assign(_minmax=np.where(rows[mx].to_numpy(float) > 0, ratio, 0.0))  # 0/0 -> 0 (docs/metrics.md)
        found = {"min/max": "_minmax", **found}
    labels = [lab for lab in FAIRNESS_CANDIDATES if lab in found]
    notes = [f"missing in per_group.parquet: {lab}" for lab in FAIRNESS_CANDIDATES if lab not in found]
    kinds = _kinds(rows)
    data = rows.groupby(["approach", "kind"])[[found[lab] for lab in labels]].mean()
    data.columns = labels
    data = data.unstack("kind")
    data.columns = data.columns.swaplevel(0, 1)
    data = data.reindex(
        columns=pd.MultiIndex.from_tuples([(k, lab) for k in kinds for lab in labels], names=["kind", "fairness"])
    )
    data = data.reindex(_approach_index(rows))
    data.index.name = "approach"
    return Table(
        f"fairness-{dataset}",
        f"Fairness among group members on {dataset} ({pool} groups)",
        data,
        marks=mark_best(data, FAIRNESS_HIGHER),
        notes=["Means over groups; zero-recall: lower is better."] + notes + _selection_notes(chosen, pool),
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
    pool = _pool(df, opts.report_pool, what)
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
    table = table.reindex(_kinds(joined.reset_index()), level=0)
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
    pool = _pool(df, opts.report_pool, "common_features")
    option = _option(df, opts.main_option)
    df = df[(df["pool"] == pool) & (df["option"] == option)]
    sae_cols = _sae_row_columns(df)
    # The count does not depend on the fusion: average over fusions to use every evaluation.
    data = df.groupby(["dataset"] + sae_cols + ["kind"])["CommonFeatures"].mean().unstack("kind")
    data = data[_kinds(df)]
    data.index.names = ["dataset"] + [_SAE_LABELS[c] for c in sae_cols]
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
    pool = _pool(df, opts.report_pool, "fusions")
    df = df[df["pool"] == pool]
    metrics = {**{v: f"NDCG_{n}" for n, v in opts.ndcg.items()}, "Popularity": "Pop"}
    if _zero_code_percent(df, ["approach"]) is not None:
        metrics[ZERO_CODE] = ZERO_LABEL
    # Mean over groups per evaluation first, then over SAE variants (each SAE size weighs the same).
    per_eval = df.groupby(["dataset", "option", "approach", "kind", "sae"])[list(metrics)].mean()
    data = per_eval.groupby(level=["dataset", "option", "approach", "kind"]).mean().rename(columns=metrics)
    if ZERO_LABEL in data.columns:
        data[ZERO_LABEL] *= 100.0
    data = data.unstack("kind")
    data.columns = data.columns.swaplevel(0, 1)
    kinds = _kinds(df)
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
    pool = _pool(pg, opts.report_pool, "timing")
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
    """Build the table called ``name`` (see :func:`table_names`) from the collected frames.

    ``collected`` holds ``per_group``, ``single_user`` and ``sae`` (see :mod:`sagea.reports.collect`).
    """
    base, _, arg = name.partition("-")
    pg = collected.get("per_group")
    if base == "single_user":
        return single_user_table(collected["single_user"], opts)
    if base == "sae_reconstruction":
        return sae_reconstruction_table(collected["sae"], opts)
    if base == "common_features":
        return common_features_table(pg, opts)
    if base == "fusions":
        pool = _pool(pg[pg["family"] == "sagea"], opts.report_pool, "fusions")
        return flag_small_data(fusions_table(pg, opts), *small_data_flags(pg, collected.get("groups"), pool))
    if base == "timing":
        return timing_table(pg, opts)
    if base == "sagea_grid":
        return sagea_grid_table(pg, arg, opts)
    if base == "overall":
        pool = _pool(pg[pg["dataset"] == arg], opts.report_pool, f"report on {arg}")
        flags = small_data_flags(pg, collected.get("groups"), pool, arg)
        return flag_small_data(overall_table(pg, arg, opts), *flags)
    if base == "fairness":
        return fairness_table(pg, arg, opts)
    if base == "comparison":
        for comp in opts.comparisons:
            if comp["name"] == arg:
                return comparison_table(pg, comp, opts)
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
