# Report stage (docs/ARCHITECTURE.md): the paper's and thesis' tables and figures of a study,
# built from the evaluations' per_group.parquet (never from MLflow), collected once into
# results/<study>/collected/. Logic lives in sagea.reports (tables, stats, figures) and
# sagea.stages.report; every table/figure is marked for `snakemake --report`.


# Per replicate (study tag s<seed>): the upstream files it reads and its report options.
REPORT_ENTRIES = {
    tag: plan_report.report_entries(rep, RESULTS) for tag, rep in STUDY_CONFIGS.items()
}
REPORT_OPTIONS = {
    tag: plan_report.options_from_config(rep) for tag, rep in STUDY_CONFIGS.items()
}
REPORT_DIR = f"{RESULTS}/{{study}}/{{srep}}"
STUDY_DIR = f"{RESULTS}/{{study}}"
COLLECTED = {
    kind: f"{REPORT_DIR}/collected/{kind}.parquet"
    for kind in ("per_group", "single_user", "sae", "history", "groups")
}

# Input function of report_collect: the upstream files of one collected table.
report_inputs = lambda kind: lambda wc: plan_report.entry_paths(
    REPORT_ENTRIES[wc.srep][kind]
)
# The replicate's ReportOptions keyword arguments (params of the table and figure rules).
report_options = lambda wc: REPORT_OPTIONS[wc.srep]
# One output of rule report_<what>s shown in the HTML report (caption ../report/<what>_<kind>.rst).
report_file = lambda what, kind, stem, ext, label: report(
    f"{REPORT_DIR}/{what}s/{stem}.{ext}",
    caption=f"../report/{what}_{kind}.rst",
    category=f"{what.capitalize()}s",
    subcategory=kind,
    labels={what: stem, "format": label},
)
# Outputs of rule report_tables for the table ``stem`` of kind ``kind``.
table_files = lambda kind, stem: {
    "csv": report_file("table", kind, stem, "csv", "CSV (download)"),
    "tex": report_file("table", kind, stem, "tex", "LaTeX (download)"),
    "md": f"{REPORT_DIR}/tables/{stem}.md",
    "html": report_file("table", kind, stem, "html", "table (HTML)"),
}
# Outputs of rule report_figures for the figure ``stem`` of kind ``kind``: PNG and SVG.
figure_files = lambda kind, stem: {
    "png": report_file("figure", kind, stem, "png", "PNG"),
    "svg": report_file("figure", kind, stem, "svg", "SVG"),
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


# Light jobs: reading Parquet/JSON and plotting.
localrules:
    report_collect,
    report_front,
    report_seeds_table,
    report_tables,
    report_figures,


rule report_collect:
    """Gather every per-group evaluation, metric file, history and group file of the study into results/<study>/collected/."""
    input:
        per_group=report_inputs("per_group"),
        single_user=report_inputs("single_user"),
        sae=report_inputs("sae"),
        history=report_inputs("history"),
        groups=report_inputs("groups"),
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


# Tables and figures: every table of a replicate in one job and every figure in another (a
# job's start-up costs more than building a table: BENCHMARKS.md, "Per-job overhead"). The file
# stems are the names sagea.reports.build.build_table / sagea.reports.figures.build_figure
# build; the stem's kind (before the first '-') picks the caption ../report/<what>_<kind>.rst.
REPORT_TABLES = plan_report.table_names(
    plan.datasets(config), config["reports"]["comparisons"]
)
REPORT_FIGURES = plan_report.figure_names(plan.datasets(config))
TABLE_FORMATS = ("csv", "tex", "md", "html")
FIGURE_FORMATS = ("png", "svg")


rule report_tables:
    """Every table of a replicate (single_user, sae_reconstruction, sagea_grid, overall, fairness,
    common_features, fusions, timing, comparisons): CSV, LaTeX, Markdown and HTML each.
    """
    input:
        **COLLECTED,
    output:
        # per table (params.names order): csv, tex, md, html
        [
            table_files(name.split("-")[0], name)[ext]
            for name in REPORT_TABLES
            for ext in TABLE_FORMATS
        ],
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/tables.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/tables.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        names=REPORT_TABLES,
        options=report_options,
    script:
        "../scripts/report_tables.py"


rule report_figures:
    """Every figure of a replicate (heatmap, bars, group_similarity, training per dataset): PNG and SVG each."""
    input:
        **COLLECTED,
    output:
        # per figure (params.names order): png, svg
        [
            figure_files(name.split("-")[0], name)[ext]
            for name in REPORT_FIGURES
            for ext in FIGURE_FORMATS
        ],
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/figures.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/figures.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        names=REPORT_FIGURES,
        options=report_options,
    script:
        "../scripts/report_figures.py"


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
                for name in plan_report.seeds_table_names(plan.datasets(config))
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
