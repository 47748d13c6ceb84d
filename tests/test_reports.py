"""Report stage: statistics, table builders, writers and collection on hand-made per-group fixtures."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sagea.io import write_json, write_parquet
from sagea import plan_report
from sagea.reports import build, collect, figures, paper_tables, stats, thesis_tables
from sagea.reports.latex import to_latex
from sagea.reports.options import ReportOptions
from sagea.reports.table_data import BEST, SECOND, Table, mark_best
from sagea.reports.writers import to_csv, to_markdown

OPTS = ReportOptions(bootstrap=200)


# ----------------------------------------------------------------------------- fixtures
def rows(
    dataset="d",
    pool="test",
    groupset="similar_3",
    family="sagea",
    strategy="average",
    sae="topk-h128-k8-l2",
    option="ti1-nu0",
    width=128,
    k=8,
    loss="l2",
    com=(),
    **metrics,
) -> pd.DataFrame:
    """Per-group rows of one evaluation in the collected format (NDCG min/mean default to com)."""
    com = np.asarray(com, dtype=float)
    n = len(com)
    sagea = family == "sagea"
    meta = {
        "dataset": dataset,
        "pool": pool,
        "groupset": groupset,
        "kind": collect.kind_name(groupset),
        "elsa": "f64-s42",
        "family": family,
        "strategy": strategy,
        "approach": collect.approach_name(family, strategy),
        "sae": sae if sagea else None,
        "option": option if sagea else None,
        "variant": "topk" if sagea else None,
        "width": width if sagea else None,
        "k": k if sagea else None,
        "loss": loss if sagea else None,
        "l1_coef": 3e-4 if sagea else np.nan,
        "aux_coef": 1 / 32 if sagea else np.nan,
        "contrastive_coef": 0.0 if sagea else np.nan,
        "normalize": False if sagea else None,
        "sae_seed": 42 if sagea else None,
        "topk_inference": (option == "ti1-nu0" or option == "ti1-nu1") if sagea else None,
        "normalize_users_embeddings": option.endswith("nu1") if sagea else None,
    }
    df = pd.DataFrame({c: [v] * n for c, v in meta.items()})
    df["group"] = np.arange(n)
    df["NDCG20_com"] = com
    df["NDCG20_min"] = metrics.pop("mn", com)
    df["NDCG20_mean"] = metrics.pop("mean", com)
    df["Popularity"] = metrics.pop("pop", np.full(n, 0.5))
    for key, value in metrics.items():
        df[key] = value
    return df


def pg_of(*parts: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(parts, ignore_index=True)


# ----------------------------------------------------------------------------- stats
def test_paired_ttest_matches_scipy_one_sided():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.6, 0.1, 30), rng.normal(0.55, 0.1, 30)
    assert stats.paired_test(a, b) == pytest.approx(sps.ttest_rel(a, b, alternative="greater").pvalue)
    # lower-is-better: the alternative flips
    assert stats.paired_test(b, a, higher_is_better=False) == pytest.approx(
        sps.ttest_rel(b, a, alternative="less").pvalue
    )
    assert stats.paired_test(a, b, "wilcoxon") == pytest.approx(sps.wilcoxon(a - b, alternative="greater").pvalue)


def test_paired_test_edge_cases():
    a = np.array([0.5, 0.6, np.nan, 0.7])
    b = np.array([0.4, 0.6, 0.1, 0.5])
    keep = np.isfinite(a)
    assert stats.paired_test(a, b) == pytest.approx(sps.ttest_rel(a[keep], b[keep], alternative="greater").pvalue)
    assert stats.paired_test(a, a) == 1.0  # identical
    assert stats.paired_test(np.array([0.6, 0.7]), np.array([0.5, 0.6])) == 0.0  # constant positive shift
    with pytest.raises(ValueError, match="reports.test"):
        stats.paired_test(a, b, "anova")


def test_holm_and_bh_by_hand_and_scipy():
    p = np.array([0.01, 0.04, 0.03, np.nan])
    # Holm: sorted 0.01*3, 0.03*2, 0.04*1 -> monotone max -> 0.03, 0.06, 0.06
    np.testing.assert_allclose(stats.correct(p, "holm"), [0.03, 0.06, 0.06, np.nan])
    # BH: 0.01*3/1=0.03, 0.03*3/2=0.045, 0.04*3/3=0.04 -> from the top min -> 0.03, 0.04, 0.04
    np.testing.assert_allclose(stats.correct(p, "bh"), [0.03, 0.04, 0.04, np.nan])
    q = np.random.default_rng(0).uniform(0, 0.2, 9)
    np.testing.assert_allclose(stats.correct(q, "bh"), sps.false_discovery_control(q, method="bh"))
    np.testing.assert_allclose(stats.correct(q, "none"), q)


def test_bootstrap_ci_seeded_and_close_to_scipy():
    x = np.random.default_rng(3).normal(0.5, 0.2, 200)
    lo, hi = stats.bootstrap_ci(x, 2000, seed=7)
    assert (lo, hi) == stats.bootstrap_ci(x, 2000, seed=7)
    assert lo < x.mean() < hi
    ref = sps.bootstrap((x,), np.mean, n_resamples=2000, method="percentile", random_state=7).confidence_interval
    assert lo == pytest.approx(ref.low, abs=0.01) and hi == pytest.approx(ref.high, abs=0.01)
    # the normal-theory interval of the mean has about the same width
    assert hi - lo == pytest.approx(2 * 1.96 * x.std(ddof=1) / np.sqrt(x.size), rel=0.15)
    assert np.isnan(stats.bootstrap_ci(np.array([np.nan]))[0])


# ----------------------------------------------------------------------------- marks
def test_mark_best_with_ties_direction_and_blocks():
    idx = pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2)], names=["kind", "h"])
    data = pd.DataFrame({"x": [0.5, 0.70001, 0.7, 0.1, 0.2], "Pop": [0.3, 0.2, 0.4, 0.9, 0.8]}, index=idx)
    marks = mark_best(data, {"Pop": False}, within="kind")
    assert list(marks["x"]) == [SECOND, BEST, BEST, SECOND, BEST]  # 0.70001 and 0.7 tie at 3 decimals
    assert list(marks["Pop"]) == [SECOND, BEST, "", SECOND, BEST]


# ----------------------------------------------------------------------------- table 4
def _overall_fixture():
    sim_b = np.array([0.9, 0.8, 0.85, 0.95, 0.7, 0.9])
    sim_add = np.array([0.5, 0.6, 0.4, 0.55, 0.45, 0.5])
    sim_elsa = np.array([0.88, 0.79, 0.86, 0.9, 0.72, 0.88])
    out_a = np.array([0.6, 0.5, 0.55, 0.65, 0.4, 0.6])
    out_b = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    parts = [
        # selection on valid: sim -> h256 (0.7 > 0.5); outlier -> h128 (0.8 > 0.2)
        rows(pool="valid", com=[0.5, 0.5]),
        rows(pool="valid", sae="topk-h256-k8-l2", width=256, com=[0.7, 0.7]),
        rows(pool="valid", groupset="opposing_2-1", com=[0.8, 0.8]),
        rows(pool="valid", groupset="opposing_2-1", sae="topk-h256-k8-l2", width=256, com=[0.2, 0.2]),
        # test values
        rows(com=sim_b * 0.5),  # h128 on sim: not chosen, must not appear
        rows(sae="topk-h256-k8-l2", width=256, com=sim_b, mn=sim_b - 0.1),
        rows(family="baseline", strategy="ADD", com=sim_add, mn=sim_add - 0.1),
        rows(family="baseline", strategy="ELSA", com=sim_elsa, mn=sim_elsa - 0.1),
        rows(groupset="opposing_2-1", com=out_a),
        rows(groupset="opposing_2-1", sae="topk-h256-k8-l2", width=256, com=out_b),
        rows(groupset="opposing_2-1", family="baseline", strategy="ADD", com=out_a - 0.05),
        rows(groupset="opposing_2-1", family="baseline", strategy="ELSA", com=out_a[::-1] - 0.1),
    ]
    return pg_of(*parts), sim_b, sim_add, sim_elsa, out_a


def test_overall_table_selection_values_marks_and_stars():
    pg, sim_b, sim_add, sim_elsa, out_a = _overall_fixture()
    t = paper_tables.overall_table(pg, "d", OPTS)
    assert list(t.data.index) == ["SAE-Avg", "ADD", "ELSA"]
    assert list(t.data.columns.get_level_values(0).unique()) == ["sim", "outlier"]
    assert t.data.loc["SAE-Avg", ("sim", "com")] == pytest.approx(sim_b.mean())
    assert t.data.loc["SAE-Avg", ("sim", "min")] == pytest.approx((sim_b - 0.1).mean())
    assert t.data.loc["SAE-Avg", ("outlier", "com")] == pytest.approx(out_a.mean())
    assert t.marks.loc["SAE-Avg", ("sim", "com")] == BEST
    assert t.marks.loc["ELSA", ("sim", "com")] == SECOND
    assert t.marks.loc["ADD", ("sim", "com")] == ""
    for name, other in (("ADD", sim_add), ("ELSA", sim_elsa)):
        p = sps.ttest_rel(sim_b, other, alternative="greater").pvalue
        assert t.pvalues.loc[name, ("sim", "com")] == pytest.approx(p)
        assert bool(t.stars.loc[name, ("sim", "com")]) == (p <= 0.05)
    assert not t.stars.loc["SAE-Avg"].any()
    assert bool(t.stars.loc["ADD", ("sim", "com")]) and not bool(t.stars.loc["ELSA", ("sim", "com")])
    # outlier: SAE-Avg (h128, identical to out_a) beats ADD by a constant 0.05 -> p = 0
    assert t.pvalues.loc["ADD", ("outlier", "com")] == 0.0
    assert any("topk-h256-k8-l2" in n and "sim" in n for n in t.notes)
    md = to_markdown(t)
    assert f"**{sim_b.mean():.3f}**" in md and f"<u>{sim_elsa.mean():.3f}</u>" in md
    assert f"{sim_add.mean():.3f}\\*" in md


def test_overall_wilcoxon_with_holm():
    pg, sim_b, sim_add, sim_elsa, _ = _overall_fixture()
    opts = ReportOptions(test="wilcoxon", correction="holm")
    t = paper_tables.overall_table(pg, "d", opts)
    raw = [sps.wilcoxon(sim_b - o, alternative="greater").pvalue for o in (sim_add, sim_elsa)]
    lo, hi = sorted(raw)
    holm = {r: min(1.0, max(lo * 2, hi) if r == hi else lo * 2) for r in raw}
    assert t.pvalues.loc["ADD", ("sim", "com")] == pytest.approx(holm[raw[0]])
    assert t.pvalues.loc["ELSA", ("sim", "com")] == pytest.approx(holm[raw[1]])
    assert "Wilcoxon" in t.notes[0] and "holm" in t.notes[0]


# ----------------------------------------------------------------------------- table 3, 5, 6, 7, 8
def test_sagea_grid_values_and_popularity_lower_is_better():
    pg = pg_of(
        rows(pool="valid", com=[0.2, 0.4], pop=np.array([0.5, 0.5])),
        rows(pool="valid", sae="topk-h128-k16-l2", k=16, com=[0.6, 0.6], pop=np.array([0.6, 0.8])),
        rows(pool="valid", sae="topk-h256-k8-l2", width=256, com=[0.5, 0.5], pop=np.array([0.2, 0.2])),
        rows(pool="valid", strategy="max", com=[0.9, 0.9]),  # other fusion: ignored
        rows(pool="test", com=[0.99, 0.99]),  # other pool: ignored
    )
    t = paper_tables.sagea_grid_table(pg, "d", OPTS)
    assert list(t.data.index) == [("sim", 128, 8, "l2"), ("sim", 128, 16, "l2"), ("sim", 256, 8, "l2")]
    np.testing.assert_allclose(t.data["NDCG_com"], [0.3, 0.6, 0.5])
    np.testing.assert_allclose(t.data["Pop"], [0.5, 0.7, 0.2])
    assert list(t.marks["NDCG_com"]) == ["", BEST, SECOND]
    assert list(t.marks["Pop"]) == [SECOND, "", BEST]


def test_comparison_percent_change_and_mean_rows():
    pg = pg_of(
        rows(com=[0.6, 0.6], mean=np.array([0.7, 0.7]), mn=np.array([0.5, 0.5]), pop=np.array([0.4, 0.4])),
        rows(
            option="ti0-nu0",
            com=[0.5, 0.5],
            mean=np.array([0.7, 0.7]),
            mn=np.array([0.4, 0.6]),
            pop=np.array([0.5, 0.5]),
        ),
        rows(sae="topk-h256-k8-l2", width=256, com=[0.3, 0.3]),
        rows(sae="topk-h256-k8-l2", width=256, option="ti0-nu0", com=[0.4, 0.4]),
        rows(strategy="max", com=[0.1, 0.1]),
    )
    comp = {"name": "ti", "fusion": "average", "main": {"topk_inference": True}, "compare": {"topk_inference": False}}
    t = thesis_tables.comparison_table(pg, comp, OPTS)
    assert list(t.data.index) == [("sim", "d", "128", "8"), ("sim", "d", "256", "8"), ("sim", "d", "mean", "mean")]
    g = t.data[("G/mean", "% change")].to_numpy()
    np.testing.assert_allclose(g, [20.0, -25.0, -2.5])
    np.testing.assert_allclose(t.data[("G/mean", "main")], [0.6, 0.3, 0.45])
    assert t.data[("U/min", "% change")].iat[0] == pytest.approx(0.0)
    assert t.data[("Pop", "% change")].iat[0] == pytest.approx(-20.0)
    with pytest.raises(ValueError, match="no evaluation matches"):
        thesis_tables.comparison_table(pg, {**comp, "main": {"normalize_users_embeddings": True}}, OPTS)
    with pytest.raises(ValueError, match="unknown key"):
        thesis_tables.comparison_table(pg, {**comp, "main": {"bogus": 1}}, OPTS)


def test_comparison_on_sae_hyperparameter():
    pg = pg_of(
        rows(com=[0.6, 0.6]),
        rows(sae="topk-h128-k8-cosine", loss="cosine", com=[0.3, 0.3]),
    )
    comp = {"name": "loss", "main": {"reconstruction_loss": "l2"}, "compare": {"reconstruction_loss": "cosine"}}
    t = thesis_tables.comparison_table(pg, comp, OPTS)
    assert t.data[("G/mean", "% change")].iat[0] == pytest.approx(100.0)


def test_common_features_fusions_and_timing():
    pg = pg_of(
        rows(
            com=[0.4, 0.6],
            CommonFeatures=np.array([2.0, 4.0]),
            Time_scoring=np.array([0.001, 0.003]),
            Time_aggregation=np.array([0.0, 0.002]),
        ),
        rows(
            strategy="max",
            com=[0.2, 0.2],
            CommonFeatures=np.array([2.0, 4.0]),
            Time_scoring=np.array([0.001, 0.001]),
            Time_aggregation=np.array([0.0, 0.0]),
        ),
        rows(
            sae="topk-h256-k8-l2",
            width=256,
            com=[0.8, 0.8],
            CommonFeatures=np.array([6.0, 6.0]),
            Time_scoring=np.array([0.001, 0.001]),
            Time_aggregation=np.array([0.0, 0.0]),
        ),
        rows(
            family="baseline",
            strategy="GFAR",
            com=[0.1, 0.1],
            Time_scoring=np.array([0.01, 0.01]),
            Time_aggregation=np.array([0.02, 0.02]),
        ),
    )
    cf = thesis_tables.common_features_table(pg, OPTS)
    np.testing.assert_allclose(cf.data["sim"], [3.0, 6.0])
    fu = thesis_tables.fusions_table(pg, OPTS)
    # SAE-Avg: mean over SAE variants of per-variant means: (0.5 + 0.8) / 2
    assert fu.data.loc[("d", "ti1-nu0", "SAE-Avg"), ("sim", "NDCG_com")] == pytest.approx(0.65)
    assert fu.marks.loc[("d", "ti1-nu0", "SAE-Avg"), ("sim", "NDCG_com")] == BEST
    tm = thesis_tables.timing_table(pg, OPTS)
    assert tm.data.loc[("d", "GFAR"), "total ms"] == pytest.approx(30.0)
    assert tm.data.loc[("d", "SAE-Avg"), "scoring ms"] == pytest.approx(1000 * (0.001 + 0.003 + 0.001 + 0.001) / 4)
    assert tm.marks.loc[("d", "SAE-Max"), "total ms"] == BEST  # lower is better


def test_zero_fused_code_share_column_in_overall_and_fusions_tables():
    """SAE rows show the share of groups whose fused code was all-zero, in csv, tex and md."""
    pg, *_ = _overall_fixture()
    assert "zero %" not in paper_tables.overall_table(pg, "d", OPTS).data.columns.get_level_values(1)  # no column
    flag = np.where(pg["family"] == "sagea", 0.0, np.nan)
    outlier_h128 = (pg["groupset"] == "opposing_2-1") & (pg["sae"] == "topk-h128-k8-l2") & (pg["pool"] == "test")
    flag[np.flatnonzero(outlier_h128)[:3]] = 1.0  # 3 of the 6 test groups of the chosen outlier SAE
    pg = pg.assign(ZeroFusedCode=flag)
    t = paper_tables.overall_table(pg, "d", OPTS)
    assert list(t.data.columns) == [(k, c) for k in ("sim", "outlier") for c in ("com", "min", "mean", "zero %")]
    assert t.data.loc["SAE-Avg", ("outlier", "zero %")] == pytest.approx(50.0)
    assert t.data.loc["SAE-Avg", ("sim", "zero %")] == 0.0
    assert t.data.loc[["ADD", "ELSA"], ("outlier", "zero %")].isna().all()
    assert not t.marks[("outlier", "zero %")].any() and not t.stars[("outlier", "zero %")].any()
    without = paper_tables.overall_table(pg.drop(columns="ZeroFusedCode"), "d", OPTS)
    pd.testing.assert_frame_equal(t.data.drop(columns="zero %", level=1), without.data)  # NDCG columns unchanged
    pd.testing.assert_frame_equal(t.pvalues, without.pvalues)
    assert any("all-zero" in n for n in t.notes)
    header = to_csv(t).splitlines()[0]
    assert "outlier/zero %" in header and "zero % p" not in header
    assert r"zero \%" in to_latex(t) and "50.0" in to_latex(t)
    md = to_markdown(t)
    assert "outlier/zero %" in md and "| 50.0 |" in md
    fu = thesis_tables.fusions_table(pg, OPTS)
    # mean over groups per SAE variant, then over variants: (3/6 + 0/6) / 2 on the test pool
    assert fu.data.loc[("d", "ti1-nu0", "SAE-Avg"), ("outlier", "zero %")] == pytest.approx(25.0)
    assert fu.data.loc[("d", "ti1-nu0", "SAE-Avg"), ("sim", "zero %")] == 0.0
    assert "zero %" in to_markdown(fu) and r"zero \%" in to_latex(fu) and "outlier/zero %" in to_csv(fu)


def test_fairness_columns_and_minmax_fallback():
    mx = np.array([0.5, 0.0])
    pg = pg_of(
        rows(pool="valid", com=[0.5, 0.5]),
        rows(
            com=[0.5, 0.5],
            mn=np.array([0.25, 0.0]),
            NDCG20_max=mx,
            NDCG20_jain=np.array([0.9, 1.0]),
            ZeroRecall=np.array([0.0, 1 / 3]),
            MProportionality=np.array([1.0, 2 / 3]),
        ),
        rows(
            family="baseline",
            strategy="POPULAR",
            com=[0.1, 0.1],
            mn=np.array([0.1, 0.1]),
            NDCG20_max=np.array([0.2, 0.2]),
            NDCG20_jain=np.array([0.5, 0.5]),
            ZeroRecall=np.array([0.5, 0.5]),
            MProportionality=np.array([0.0, 0.0]),
        ),
    )
    t = thesis_tables.fairness_table(pg, "d", OPTS)
    assert list(t.data.columns) == [("sim", "min/max"), ("sim", "Jain"), ("sim", "zero-recall"), ("sim", "m-prop")]
    assert t.data.loc["SAE-Avg", ("sim", "min/max")] == pytest.approx(0.25)  # group 2 has max 0 -> 0 (convention)
    assert t.data.loc["SAE-Avg", ("sim", "zero-recall")] == pytest.approx(1 / 6)
    assert t.marks.loc["SAE-Avg", ("sim", "zero-recall")] == BEST
    # the evaluation's own ratio column wins over the fallback
    pg2 = pg.assign(NDCG20_min_max=0.123)
    assert thesis_tables.fairness_table(pg2, "d", OPTS).data.loc["POPULAR", ("sim", "min/max")] == pytest.approx(0.123)


def test_single_user_and_sae_tables():
    single = pd.DataFrame(
        [
            {"dataset": "d", "model": "ELSA", "split": "test", "NDCG20": 0.4, "R20": 0.35},
            {"dataset": "d", "model": "POP", "split": "test", "NDCG20": 0.1, "R20": 0.12},
            {"dataset": "d", "model": "EASE", "split": "test", "NDCG20": 0.41, "R20": 0.3},
            {"dataset": "d", "model": "EASE", "split": "valid", "NDCG20": 0.9, "R20": 0.9},
        ]
    )
    t = paper_tables.single_user_table(single, OPTS)
    assert list(t.data.index) == [("d", "POP"), ("d", "EASE"), ("d", "ELSA")]
    assert t.data.loc[("d", "EASE"), "NDCG@20"] == 0.41
    assert t.marks.loc[("d", "EASE"), "NDCG@20"] == BEST and t.marks.loc[("d", "ELSA"), "Recall@20"] == BEST
    sae = pd.DataFrame(
        [
            {
                "dataset": "d",
                "sae": "topk-h256-k8-l2",
                "width": 256,
                "k": 8,
                "loss": "l2",
                "split": "test",
                "CosineSim": 0.95,
                "L0": 8.0,
                "DeadNeurons": 0.25,
                "NDCG20": 0.39,
                "NDCG20_Degradation": -0.01,
            },
            {
                "dataset": "d",
                "sae": "topk-h128-k8-l2",
                "width": 128,
                "k": 8,
                "loss": "l2",
                "split": "test",
                "CosineSim": 0.9,
                "L0": 8.0,
                "DeadNeurons": 0.0,
                "NDCG20": 0.38,
                "NDCG20_Degradation": -0.02,
            },
        ]
    )
    t = paper_tables.sae_reconstruction_table(sae, OPTS)
    assert list(t.data.index) == [("d", 128, 8, "l2"), ("d", 256, 8, "l2")]
    assert t.data.loc[("d", 256, 8, "l2"), "dead %"] == 25.0
    assert t.marks.loc[("d", 128, 8, "l2"), "dead %"] == BEST


# ----------------------------------------------------------------------------- writers
def _check_latex(tex: str, n_rows: int) -> None:
    for env in set(re.findall(r"\\begin\{(\w+)\}", tex)):
        assert tex.count(rf"\begin{{{env}}}") == tex.count(rf"\end{{{env}}}")
    stripped = tex.replace(r"\{", "").replace(r"\}", "")
    depth = 0
    for ch in stripped:
        depth += ch == "{"
        depth -= ch == "}"
        assert depth >= 0
    assert depth == 0
    assert tex.count(r"\toprule") == 1 and tex.count(r"\bottomrule") == 1
    body = tex.split(r"\bottomrule")[0].rsplit(r"\midrule", 1)[0]  # ensure midrules exist
    assert body
    header_and_body = tex.split(r"\toprule")[1].split(r"\bottomrule")[0]
    lines = [ln for ln in header_and_body.splitlines() if ln.endswith(r"\\") and "multicolumn" not in ln]
    n_cols = {ln.count(" & ") for ln in lines}
    assert len(n_cols) == 1  # every row has the same number of cells
    assert len(lines) == 1 + n_rows  # one header + one row per table row


def test_latex_well_formed_one_row_per_approach():
    pg, *_ = _overall_fixture()
    t = paper_tables.overall_table(pg, "d", OPTS)
    tex = to_latex(t)
    _check_latex(tex, len(t.data))
    for approach in t.data.index:
        assert sum(line.startswith(approach.replace("_", r"\_") + " &") for line in tex.splitlines()) == 1
    assert r"\textbf{" in tex and r"\underline{" in tex and r"$^{*}$" in tex
    assert r"\multicolumn{3}{c}{sim}" in tex and r"\cmidrule(lr){2-4}" in tex
    csv = to_csv(t)
    assert "sim/com p" in csv.splitlines()[0]


def test_latex_escapes_and_multiindex_rows():
    data = pd.DataFrame(
        {"a_b": [1.0, np.nan], "50%": [2.0, 3.0]},
        index=pd.MultiIndex.from_tuples([("x_1", "m&n"), ("x_1", "o")], names=["ds", "model"]),
    )
    t = Table("t", "A & B_c", data, marks=mark_best(data), notes=["100% sure"])
    tex = to_latex(t)
    _check_latex(tex, 2)
    assert r"x\_1 & m\&n" in tex and r"\textbf{2.000}" not in tex and r"\textbf{3.000}" in tex
    assert r"a\_b" in tex and r"50\%" in tex and r"100\% sure" in tex and "--" in tex
    assert "\n & o & " in tex  # repeated first level blanked


# ----------------------------------------------------------------------------- collect / inputs / figures
def test_collect_and_inputs(tmp_path):
    config = {
        "datasets": {"d": {"source": "movielens", "split": {"seed": 1}}},
        "elsa": {
            "factors": 8,
            "lr": 1e-4,
            "beta1": 0.9,
            "beta2": 0.99,
            "batch_size": 4,
            "epochs": 1,
            "patience": 1,
            "seed": 42,
        },
        "sae": {
            "base": {
                "variant": "topk",
                "width": 16,
                "k": 4,
                "reconstruction_loss": "l2",
                "l1_coef": 3e-4,
                "aux_coef": 1 / 32,
                "contrastive_coef": 0.0,
                "normalize": False,
                "seed": 42,
            },
            "grid": {"k": [2, 4]},
        },
        "groups": {"pools": ["valid", "test"], "kinds": {"similar": [3], "opposing": [[2, 1]]}, "seed": 1,
                   "split": {"seed": 1}},
        "compare": {"seed": 1},
        "evaluation": {
            "k": 20,
            "baselines": ["ELSA_INT"],
            "sagea": {
                "fusions": ["topk", "min"],
                "topk_inference": [True, False],
                "normalize_users_embeddings": [False],
            },
        },
        "reports": {"test": "ttest", "correction": "none", "alpha": 0.05, "bootstrap": 10, "comparisons": []},
        "seed": 1,
    }
    entries = plan_report.report_entries(config, str(tmp_path / "results"))
    # datasets x pools x group sets x (SAEs x options x fusions + baselines)
    assert len(entries["per_group"]) == 1 * 2 * 2 * (2 * 2 * 2 + 1)
    assert len(entries["sae"]) == 2 and len(entries["groups"]) == 4 and len(entries["history"]) == 3
    e = next(x for x in entries["per_group"] if x["family"] == "sagea")
    # in the replicate folder of seed 1 (the ELSA seed 42 is pinned, so it is part of the run id only)
    assert e["path"].endswith("d/s1/eval/valid/similar_3/f8-s42/topk-h16-k2-l2/ti1-nu0/topk/per_group.parquet")
    for x in entries["per_group"][:3] + entries["per_group"][-1:]:
        write_parquet(pd.DataFrame({"group": [0, 1], "NDCG20_com": [0.1, 0.3]}), x["path"])
    got = collect.collect_per_group(entries["per_group"][:3] + entries["per_group"][-1:])
    assert list(got.columns[: len(collect.META_COLUMNS)]) == collect.META_COLUMNS
    assert list(got["approach"].unique()) == ["SAE-TopK", "SAE-min", "ELSA-INT"]
    assert set(got["kind"]) == {"sim", "outlier"} and got["k"].iloc[0] == 2
    assert got["topk_inference"].iloc[0] and pd.isna(got["topk_inference"].iloc[-1])
    with pytest.raises(FileNotFoundError, match="upstream stage"):
        collect.collect_per_group(entries["per_group"][3:4])
    s = entries["single_user"][0]
    write_json({"valid": {"NDCG20": 0.3}, "test": {"NDCG20": 0.4}, "history": []}, s["elsa_metrics"])
    write_json({"POP": {"valid": {"NDCG20": 0.1}, "test": {"NDCG20": 0.2}}}, s["baselines"])
    single = collect.collect_single_user(entries["single_user"])
    assert set(zip(single["model"], single["split"], single["NDCG20"])) == {
        ("ELSA", "valid", 0.3),
        ("ELSA", "test", 0.4),
        ("POP", "valid", 0.1),
        ("POP", "test", 0.2),
    }
    opts = plan_report.options_from_config(config)
    assert opts["main_option"] == "ti1-nu0" and opts["report_pool"] == "test"


def test_figures_render_on_fixture():
    pg, *_ = _overall_fixture()
    for fig in (
        figures.sagea_heatmap(pg, "d", OPTS),
        figures.approach_bars(pg, "d", OPTS),
        figures.sagea_heatmap(pg, "missing", OPTS),
    ):
        assert fig.axes
    hist = pd.DataFrame(
        {"dataset": "d", "model": "ELSA", "run": "f8-s42", "epoch": [0, 1], "metric": "loss", "value": [1.0, 0.5]}
    )
    assert figures.training_curves(hist, "d").axes
    groups = pd.DataFrame(
        {
            "dataset": "d",
            "pool": "test",
            "groupset": ["similar_3", "opposing_2-1"],
            "kind": ["sim", "outlier"],
            "group": [0, 0],
            "group_similarity": [0.8, 0.4],
            "subgroup_similarity_0": [np.nan, 0.9],
            "subgroup_similarity_1": [np.nan, np.nan],
            "between_similarity": [np.nan, 0.1],
        }
    )
    assert len(figures.group_similarity_hist(groups, "d").axes) == 2


def test_best_vs_others_picks_best_mean_and_handles_all_nan():
    a, b, c = np.array([0.9, 0.8, 0.7]), np.array([0.5, 0.4, 0.45]), np.array([0.1, 0.3, 0.2])
    best, p = stats.best_vs_others({"b": b, "a": a, "c": c})
    assert best == "a" and np.isnan(p["a"])
    assert p["b"] == pytest.approx(sps.ttest_rel(a, b, alternative="greater").pvalue)
    best, p = stats.best_vs_others({"b": b, "a": a, "c": c}, higher_is_better=False)
    assert best == "c" and p["a"] == pytest.approx(sps.ttest_rel(c, a, alternative="less").pvalue)
    best, p = stats.best_vs_others({"x": np.full(3, np.nan), "y": np.full(3, np.nan)})
    assert all(np.isnan(v) for v in p.values())


# ----------------------------------------------------------------------------- small-data flags
def _flag_fixture():
    pg, *_ = _overall_fixture()
    # report pool (test): sim groups hold 1, 2, 2, 2, 9, 9 common held-out items (median 2: flagged),
    # outlier groups 6 each; the valid pool's values must not count
    gt = {"sim": [1, 2, 2, 2, 9, 9], "outlier": [6] * 6}
    test = pg["pool"] == "test"
    pg["GT_group"] = 50.0
    for kind, values in gt.items():
        sel = test & (pg["kind"] == kind)
        pg.loc[sel, "GT_group"] = np.asarray(values, dtype=float)[pg.loc[sel, "group"].to_numpy()]
    groups = pd.DataFrame(
        {
            "dataset": "d",
            "pool": ["test"] * 12 + ["valid"] * 6,
            "groupset": ["similar_3"] * 6 + ["opposing_2-1"] * 6 + ["similar_3"] * 6,
            "kind": ["sim"] * 6 + ["outlier"] * 6 + ["sim"] * 6,
            "group": list(range(6)) * 3,
            # test: no sim group overlaps, 3 of 6 outlier groups do (50% >= 25%); valid sim: all (ignored)
            "overlapping": [False] * 6 + [True, True, True, False, False, False] + [True] * 6,
        }
    )
    return pg, groups


def test_overall_and_fusions_tables_flag_thin_and_overlapping_group_sets():
    pg, groups = _flag_fixture()
    labels, notes = build.small_data_flags(pg, groups, "test", "d")
    assert labels == {"sim": "sim†", "outlier": "outlier‡"}
    assert notes[0].startswith("† sim (d): median 2 common held-out items per group")
    assert notes[1].startswith("‡ outlier (d): 50% of the groups share >= 50% of their members")
    t = build.build_table("overall-d", {"per_group": pg, "groups": groups}, OPTS)
    plain = paper_tables.overall_table(pg, "d", OPTS)
    assert list(t.data.columns.get_level_values("kind").unique()) == ["sim†", "outlier‡"]
    np.testing.assert_array_equal(t.data.to_numpy(), plain.data.to_numpy())  # values untouched
    assert t.stars.columns.equals(t.data.columns) and t.pvalues.columns.equals(t.data.columns)
    assert t.notes[: len(plain.notes)] == plain.notes and t.notes[len(plain.notes) :] == notes
    md, tex, csv = to_markdown(t), to_latex(t), to_csv(t)
    assert "sim†/com" in md and "- † sim (d): median 2" in md and "sim†/com" in csv
    assert r"sim\textsuperscript{\dag}" in tex and r"outlier\textsuperscript{\ddag}" in tex
    fu = build.build_table("fusions", {"per_group": pg, "groups": groups}, OPTS)
    assert set(fu.data.columns.get_level_values("kind")) == {"sim†", "outlier‡"}
    # without the groups frame only the few-items flag remains; with GT_group above 2 nothing is flagged
    assert build.small_data_flags(pg, None, "test", "d")[0] == {"sim": "sim†"}
    pg["GT_group"] = 3.0
    t = build.build_table("overall-d", {"per_group": pg}, OPTS)
    assert list(t.data.columns.get_level_values("kind").unique()) == ["sim", "outlier"]


def test_collect_groups_marks_overlapping_groups(tmp_path):
    # groups 0 and 1 share 2 of 3 members (a near-duplicate); 2 and 3 share 1 of 3 (33%: not flagged)
    members = np.array([[1, 2, 3], [2, 3, 5], [6, 7, 8], [8, 10, 11]])
    frame = pd.DataFrame(
        {
            "group": np.repeat(np.arange(4), 3).astype(np.int32),
            "member": np.tile(np.arange(3), 4).astype(np.int16),
            "user": members.ravel().astype(np.int32),
            "group_similarity": np.zeros(12, dtype=np.float32),
            "n_common_targets": np.repeat([1, 2, 3, 4], 3).astype(np.int32),
        }
    ).sample(frac=1.0, random_state=0)  # row order must not matter
    write_parquet(frame, tmp_path / "similar_3.parquet")
    got = collect.collect_groups([{"dataset": "d", "pool": "test", "groupset": "similar_3", "path": tmp_path / "similar_3.parquet"}])
    assert got["group"].tolist() == [0, 1, 2, 3]
    assert got["overlapping"].tolist() == [True, True, False, False]
    assert got["n_common_targets"].tolist() == [1, 2, 3, 4]


def test_html_table_marks_stars_and_pvalues_by_label():
    from sagea.reports.writers import to_html

    pg, sim_b, sim_add, *_ = _overall_fixture()
    t = paper_tables.overall_table(pg, "d", OPTS)
    # an extra, untested column (as the zero-fused-code share) has no p-value and must not shift them
    t.data[("sim", "zero %")] = 0.0
    t.marks = t.marks.reindex(columns=t.data.columns, fill_value="")
    t.stars = t.stars.reindex(columns=t.data.columns, fill_value=False)
    html = to_html(t)
    p = sps.ttest_rel(sim_b, sim_add, alternative="greater").pvalue
    row = html.split("<th>ADD</th>", 1)[1].split("</tr>", 1)[0]
    assert f'title="p = {p:.3g}">{sim_add.mean():.3f}*</td>' in row
    best = html.split("<th>SAE-Avg</th>", 1)[1].split("</tr>", 1)[0]
    assert f'class="best">{sim_b.mean():.3f}</td>' in best
    assert row.count("<td") == t.data.shape[1]
