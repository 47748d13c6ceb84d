"""Model selection for the report: which pool chooses, which pool is reported, which SAGEA option
is shown, and which SAE configuration each (group set, fusion) gets (chosen on the selection pool by
mean NDCG_com, reported on the report pool)."""

from __future__ import annotations

import logging

import pandas as pd

from sagea.reports.collect import approach_name
from sagea.reports.options import ReportOptions

log = logging.getLogger(__name__)


def require_pool(pg: pd.DataFrame, wanted: str, what: str) -> str:
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


def selection_pool(pg: pd.DataFrame, opts: ReportOptions, what: str) -> str:
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
    return require_pool(pg, opts.selection_pool, what)


def pick_option(df: pd.DataFrame, wanted: str) -> str | None:
    """``wanted`` if it is among the evaluated SAGEA options of ``df``, else the first evaluated (None: no SAGEA rows)."""
    options = [o for o in dict.fromkeys(df["option"]) if isinstance(o, str)]
    if not options:
        return None
    return wanted if wanted in options else options[0]



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


def chosen_rows(pg: pd.DataFrame, dataset: str, opts: ReportOptions) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Report-pool rows of the baselines and of the selected SAGEA configurations."""
    pool = require_pool(pg[pg["dataset"] == dataset], opts.report_pool, f"report on {dataset}")
    df = pg[(pg["dataset"] == dataset) & (pg["pool"] == pool)]
    chosen = select_sae(pg, dataset, opts)
    keys = chosen[["groupset", "strategy", "sae", "option"]]
    sagea = df[df["family"] == "sagea"].merge(keys, on=["groupset", "strategy", "sae", "option"])
    rows = pd.concat([sagea, df[df["family"] != "sagea"]], ignore_index=True)
    return rows, chosen, pool



def selection_notes(chosen: pd.DataFrame, pool: str) -> list[str]:
    """Table notes: which SAE configuration each kind and fusion got, on which pool (and a warning when
    it was chosen on the reported groups)."""
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


