# Report stage (docs/ARCHITECTURE.md): the paper's and thesis' tables and figures of a study,
# built from the evaluations' per_group.parquet (never from MLflow), collected once into
# results/<study>/collected/. Logic lives in sagea.reports (tables, stats, figures) and
# sagea.stages.report; every table/figure is marked for `snakemake --report`.
from sagea.reports import inputs as report_inputs  # noqa: E402

REPORT_ENTRIES = report_inputs.report_entries(config, RESULTS)
REPORT_OPTIONS = report_inputs.options_from_config(config)
REPORT_DIR = f"{RESULTS}/{{study}}"
COLLECTED = {
    kind: f"{REPORT_DIR}/collected/{kind}.parquet"
    for kind in ("per_group", "single_user", "sae", "history", "groups")
}

# Tables: rule suffix -> (file stem pattern, collected inputs); caption ../report/table_<suffix>.rst.
# Stems are the names of sagea.reports.tables.build_table; {dataset} / {comparison} are wildcards.
REPORT_TABLES = {
    "single_user": ("single_user", ["single_user"]),
    "sae_reconstruction": ("sae_reconstruction", ["sae"]),
    "sagea_grid": ("sagea_grid-{dataset}", ["per_group"]),
    "overall": ("overall-{dataset}", ["per_group", "groups"]),
    "comparison": ("comparison-{comparison}", ["per_group"]),
    "common_features": ("common_features", ["per_group"]),
    "fusions": ("fusions", ["per_group", "groups"]),
    "timing": ("timing", ["per_group"]),
    "fairness": ("fairness-{dataset}", ["per_group"]),
}
REPORT_FIGURES = {
    "heatmap": ("heatmap-{dataset}", ["per_group"]),
    "bars": ("bars-{dataset}", ["per_group"]),
    "group_similarity": ("group_similarity-{dataset}", ["groups"]),
    "training": ("training-{dataset}", ["history"]),
}


wildcard_constraints:
    comparison=r"[A-Za-z0-9_.]+",


# The report's landing page: built by report_front once the study ran, the static page before.
REPORT_FRONT = f"{RESULTS}/{config['study']}/report/front.rst"
REPORT_TEXT = (
    os.path.abspath(REPORT_FRONT)
    if os.path.exists(REPORT_FRONT)
    else "../report/workflow.rst"
)


report: REPORT_TEXT


# Light jobs: reading Parquet/JSON and plotting (the per-kind rules are defined in the loops below).
localrules:
    report_collect,
    report_front,
    report_table_single_user,
    report_table_sae_reconstruction,
    report_table_sagea_grid,
    report_table_overall,
    report_table_comparison,
    report_table_common_features,
    report_table_fusions,
    report_table_timing,
    report_table_fairness,
    report_figure_heatmap,
    report_figure_bars,
    report_figure_group_similarity,
    report_figure_training,


rule report_collect:
    """Gather every per-group evaluation, metric file, history and group file of the study into results/<study>/collected/."""
    input:
        per_group=report_inputs.entry_paths(REPORT_ENTRIES["per_group"]),
        single_user=report_inputs.entry_paths(REPORT_ENTRIES["single_user"]),
        sae=report_inputs.entry_paths(REPORT_ENTRIES["sae"]),
        history=report_inputs.entry_paths(REPORT_ENTRIES["history"]),
        groups=report_inputs.entry_paths(REPORT_ENTRIES["groups"]),
    output:
        **COLLECTED,
    log:
        f"{LOGS}/{{study}}/report/collect.log",
    benchmark:
        f"{BENCH}/{{study}}/report/collect.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        entries=REPORT_ENTRIES,
    script:
        "../scripts/report_collect.py"


for _kind, (_stem, _needs) in REPORT_TABLES.items():

    rule:
        f"""Table {_stem} of the study (CSV, LaTeX, Markdown and an HTML page for the report)."""
        name:
            f"report_table_{_kind}"
        input:
            **{need: COLLECTED[need] for need in _needs},
        output:
            csv=report(
                f"{REPORT_DIR}/tables/{_stem}.csv",
                caption=f"../report/table_{_kind}.rst",
                category="Tables",
                subcategory=_kind,
                labels={"table": _stem, "format": "CSV (download)"},
            ),
            tex=report(
                f"{REPORT_DIR}/tables/{_stem}.tex",
                caption=f"../report/table_{_kind}.rst",
                category="Tables",
                subcategory=_kind,
                labels={"table": _stem, "format": "LaTeX (download)"},
            ),
            md=f"{REPORT_DIR}/tables/{_stem}.md",
            html=report(
                f"{REPORT_DIR}/tables/{_stem}.html",
                caption=f"../report/table_{_kind}.rst",
                category="Tables",
                subcategory=_kind,
                labels={"table": _stem, "format": "table (HTML)"},
            ),
        log:
            f"{LOGS}/{{study}}/report/table_{_stem}.log",
        benchmark:
            f"{BENCH}/{{study}}/report/table_{_stem}.tsv"
        conda:
            "../envs/sagea.yaml"
        params:
            name=_stem,  # wildcards are filled in by Snakemake
            options=REPORT_OPTIONS,
        script:
            "../scripts/report_table.py"


for _kind, (_stem, _needs) in REPORT_FIGURES.items():

    rule:
        f"""Figure {_stem} of the study (PNG and SVG)."""
        name:
            f"report_figure_{_kind}"
        input:
            **{need: COLLECTED[need] for need in _needs},
        output:
            png=report(
                f"{REPORT_DIR}/figures/{_stem}.png",
                caption=f"../report/figure_{_kind}.rst",
                category="Figures",
                subcategory=_kind,
                labels={"figure": _stem, "format": "PNG"},
            ),
            svg=report(
                f"{REPORT_DIR}/figures/{_stem}.svg",
                caption=f"../report/figure_{_kind}.rst",
                category="Figures",
                subcategory=_kind,
                labels={"figure": _stem, "format": "SVG"},
            ),
        log:
            f"{LOGS}/{{study}}/report/figure_{_stem}.log",
        benchmark:
            f"{BENCH}/{{study}}/report/figure_{_stem}.tsv"
        conda:
            "../envs/sagea.yaml"
        params:
            name=_stem,  # wildcards are filled in by Snakemake
            options=REPORT_OPTIONS,
        script:
            "../scripts/report_figure.py"


rule report_front:
    """The report's landing page: datasets, models, groups, headline tables and the config."""
    input:
        per_group=COLLECTED["per_group"],
        groups=COLLECTED["groups"],
        cards=[f"{RESULTS}/{d}/data/card.json" for d in plan.datasets(config)],
        heatmaps=[
            f"{REPORT_DIR}/figures/heatmap-{d}.png" for d in plan.datasets(config)
        ],
    output:
        front=f"{REPORT_DIR}/report/front.rst",
    log:
        f"{LOGS}/{{study}}/report/front.log",
    benchmark:
        f"{BENCH}/{{study}}/report/front.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        config=config,
        datasets=plan.datasets(config),
        options=REPORT_OPTIONS,
    script:
        "../scripts/report_front.py"
