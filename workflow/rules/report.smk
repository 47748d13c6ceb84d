# Report stage (docs/ARCHITECTURE.md): the paper's and thesis' tables and figures of a study,
# built from the evaluations' per_group.parquet (never from MLflow), collected once into
# results/<study>/collected/. Logic lives in sagea.reports (tables, stats, figures) and
# sagea.stages.report; every table/figure is marked for `snakemake --report`.
from sagea.reports import inputs as report_inputs  # noqa: E402

# Per replicate (study tag s<seed>): the upstream files it reads and its report options.
REPORT_ENTRIES = {
    tag: report_inputs.report_entries(rep, RESULTS)
    for tag, rep in STUDY_CONFIGS.items()
}
REPORT_OPTIONS = {
    tag: report_inputs.options_from_config(rep) for tag, rep in STUDY_CONFIGS.items()
}
REPORT_DIR = f"{RESULTS}/{{study}}/{{srep}}"
STUDY_DIR = f"{RESULTS}/{{study}}"
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
    srep=r"s-?\d+",


# The report's landing page: built by report_front once the study ran, the static page before.
REPORT_FRONT = f"{RESULTS}/{config['study']}/report/front.rst"  # study level
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
    report_seeds_table,
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
        per_group=lambda wc: report_inputs.entry_paths(
            REPORT_ENTRIES[wc.srep]["per_group"]
        ),
        single_user=lambda wc: report_inputs.entry_paths(
            REPORT_ENTRIES[wc.srep]["single_user"]
        ),
        sae=lambda wc: report_inputs.entry_paths(REPORT_ENTRIES[wc.srep]["sae"]),
        history=lambda wc: report_inputs.entry_paths(REPORT_ENTRIES[wc.srep]["history"]),
        groups=lambda wc: report_inputs.entry_paths(REPORT_ENTRIES[wc.srep]["groups"]),
    output:
        **COLLECTED,
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/collect.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/collect.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        entries=lambda wc: REPORT_ENTRIES[wc.srep],
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
            f"{LOGS}/{{study}}/{{srep}}/report/table_{_stem}.log",
        benchmark:
            f"{BENCH}/{{study}}/{{srep}}/report/table_{_stem}.tsv"
        conda:
            "../envs/sagea.yaml"
        params:
            name=_stem,  # wildcards are filled in by Snakemake
            options=lambda wc: REPORT_OPTIONS[wc.srep],
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
            f"{LOGS}/{{study}}/{{srep}}/report/figure_{_stem}.log",
        benchmark:
            f"{BENCH}/{{study}}/{{srep}}/report/figure_{_stem}.tsv"
        conda:
            "../envs/sagea.yaml"
        params:
            name=_stem,  # wildcards are filled in by Snakemake
            options=lambda wc: REPORT_OPTIONS[wc.srep],
        script:
            "../scripts/report_figure.py"


FIRST = plan.study_tag(REPLICATES[0])


rule report_front:
    """The report's landing page: datasets, models, groups, headline tables (per seed and across
    seeds) and the config."""
    input:
        per_group=f"{STUDY_DIR}/{FIRST}/collected/per_group.parquet",
        groups=f"{STUDY_DIR}/{FIRST}/collected/groups.parquet",
        cards=[
            f"{plan.data_dir(REPLICATES[0], d, RESULTS)}/card.json"
            for d in plan.datasets(config)
        ],
        heatmaps=[
            f"{STUDY_DIR}/{FIRST}/figures/heatmap-{d}.png"
            for d in plan.datasets(config)
        ],
        seeds=(
            [
                f"{STUDY_DIR}/seeds/tables/{name}.html"
                for name in report_names.seeds_table_names(plan.datasets(config))
            ]
            if len(REPLICATES) > 1
            else []
        ),
    output:
        front=f"{STUDY_DIR}/report/front.rst",
    log:
        f"{LOGS}/{{study}}/report/front.log",
    benchmark:
        f"{BENCH}/{{study}}/report/front.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        config=config,
        datasets=plan.datasets(config),
        seeds=[rep["seed"] for rep in REPLICATES],
        options=REPORT_OPTIONS[FIRST],
    script:
        "../scripts/report_front.py"


rule report_seeds_table:
    """Across seeds: mean ± 95% CI over the replicates of each cell of the overall table."""
    input:
        per_group=[
            f"{STUDY_DIR}/{plan.study_tag(rep)}/collected/per_group.parquet"
            for rep in REPLICATES
        ],
    output:
        csv=report(
            f"{STUDY_DIR}/seeds/tables/overall-{{dataset}}.csv",
            caption="../report/table_seeds.rst",
            category="Tables",
            subcategory="across seeds",
            labels={
                "table": "overall-{dataset} across seeds",
                "format": "CSV (download)",
            },
        ),
        tex=f"{STUDY_DIR}/seeds/tables/overall-{{dataset}}.tex",
        md=f"{STUDY_DIR}/seeds/tables/overall-{{dataset}}.md",
        html=report(
            f"{STUDY_DIR}/seeds/tables/overall-{{dataset}}.html",
            caption="../report/table_seeds.rst",
            category="Tables",
            subcategory="across seeds",
            labels={
                "table": "overall-{dataset} across seeds",
                "format": "table (HTML)",
            },
        ),
    log:
        f"{LOGS}/{{study}}/seeds/overall-{{dataset}}.log",
    benchmark:
        f"{BENCH}/{{study}}/seeds/overall-{{dataset}}.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        seeds=[rep["seed"] for rep in REPLICATES],
        options=[REPORT_OPTIONS[plan.study_tag(rep)] for rep in REPLICATES],
    script:
        "../scripts/report_seeds_table.py"
