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
# The replicate's ReportOptions keyword arguments (params of every table/figure rule).
report_options = lambda wc: REPORT_OPTIONS[wc.srep]
# One output of rule report_<what>_<kind> shown in the HTML report (caption ../report/<what>_<kind>.rst).
report_file = lambda what, kind, stem, ext, label: report(
    f"{REPORT_DIR}/{what}s/{stem}.{ext}",
    caption=f"../report/{what}_{kind}.rst",
    category=f"{what.capitalize()}s",
    subcategory=kind,
    labels={what: stem, "format": label},
)
# Outputs of rule report_table_<kind> for the file stem ``stem`` (wildcards allowed).
table_files = lambda kind, stem: {
    "csv": report_file("table", kind, stem, "csv", "CSV (download)"),
    "tex": report_file("table", kind, stem, "tex", "LaTeX (download)"),
    "md": f"{REPORT_DIR}/tables/{stem}.md",
    "html": report_file("table", kind, stem, "html", "table (HTML)"),
}
# Outputs of rule report_figure_<kind>: PNG and SVG.
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


# Tables: one rule per table kind; the file stem (params.name) is the name that
# sagea.reports.build.build_table builds. Each writes CSV, LaTeX, Markdown and HTML.
rule report_table_single_user:
    """Table single_user: single-user accuracy of POP, EASE and ELSA per dataset."""
    input:
        single_user=COLLECTED["single_user"],
    output:
        **table_files("single_user", "single_user"),
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/table_single_user.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/table_single_user.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        name="single_user",
        options=report_options,
    script:
        "../scripts/report_table.py"


rule report_table_sae_reconstruction:
    """Table sae_reconstruction: reconstruction quality of every SAE."""
    input:
        sae=COLLECTED["sae"],
    output:
        **table_files("sae_reconstruction", "sae_reconstruction"),
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/table_sae_reconstruction.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/table_sae_reconstruction.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        name="sae_reconstruction",
        options=report_options,
    script:
        "../scripts/report_table.py"


rule report_table_sagea_grid:
    """Table sagea_grid-{dataset}: SAGEA with the average fusion over the SAE grid (paper Table 2)."""
    input:
        per_group=COLLECTED["per_group"],
    output:
        **table_files("sagea_grid", "sagea_grid-{dataset}"),
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/table_sagea_grid-{{dataset}}.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/table_sagea_grid-{{dataset}}.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        name="sagea_grid-{dataset}",
        options=report_options,
    script:
        "../scripts/report_table.py"


rule report_table_overall:
    """Table overall-{dataset}: every approach by group kind, NDCG com/min/mean with significance (paper Table 3)."""
    input:
        per_group=COLLECTED["per_group"],
        groups=COLLECTED["groups"],
    output:
        **table_files("overall", "overall-{dataset}"),
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/table_overall-{{dataset}}.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/table_overall-{{dataset}}.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        name="overall-{dataset}",
        options=report_options,
    script:
        "../scripts/report_table.py"


rule report_table_comparison:
    """Table comparison-{comparison}: a main vs a compared SAGEA variant (reports.comparisons)."""
    input:
        per_group=COLLECTED["per_group"],
    output:
        **table_files("comparison", "comparison-{comparison}"),
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/table_comparison-{{comparison}}.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/table_comparison-{{comparison}}.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        name="comparison-{comparison}",
        options=report_options,
    script:
        "../scripts/report_table.py"


rule report_table_common_features:
    """Table common_features: mean number of SAE features shared by all members."""
    input:
        per_group=COLLECTED["per_group"],
    output:
        **table_files("common_features", "common_features"),
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/table_common_features.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/table_common_features.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        name="common_features",
        options=report_options,
    script:
        "../scripts/report_table.py"


rule report_table_fusions:
    """Table fusions: every fusion averaged over all SAE sizes."""
    input:
        per_group=COLLECTED["per_group"],
        groups=COLLECTED["groups"],
    output:
        **table_files("fusions", "fusions"),
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/table_fusions.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/table_fusions.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        name="fusions",
        options=report_options,
    script:
        "../scripts/report_table.py"


rule report_table_timing:
    """Table timing: time per group of each strategy (scoring, aggregation)."""
    input:
        per_group=COLLECTED["per_group"],
    output:
        **table_files("timing", "timing"),
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/table_timing.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/table_timing.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        name="timing",
        options=report_options,
    script:
        "../scripts/report_table.py"


rule report_table_fairness:
    """Table fairness-{dataset}: fairness among group members per approach and kind."""
    input:
        per_group=COLLECTED["per_group"],
    output:
        **table_files("fairness", "fairness-{dataset}"),
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/table_fairness-{{dataset}}.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/table_fairness-{{dataset}}.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        name="fairness-{dataset}",
        options=report_options,
    script:
        "../scripts/report_table.py"


# Figures: one rule per figure kind (sagea.reports.figures.build_figure), PNG and SVG.


rule report_figure_heatmap:
    """Figure heatmap-{dataset}: SAGEA NDCG and popularity over SAE width and k."""
    input:
        per_group=COLLECTED["per_group"],
    output:
        **figure_files("heatmap", "heatmap-{dataset}"),
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/figure_heatmap-{{dataset}}.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/figure_heatmap-{{dataset}}.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        name="heatmap-{dataset}",
        options=report_options,
    script:
        "../scripts/report_figure.py"


rule report_figure_bars:
    """Figure bars-{dataset}: mean NDCG per approach and kind with bootstrap CIs."""
    input:
        per_group=COLLECTED["per_group"],
    output:
        **figure_files("bars", "bars-{dataset}"),
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/figure_bars-{{dataset}}.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/figure_bars-{{dataset}}.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        name="bars-{dataset}",
        options=report_options,
    script:
        "../scripts/report_figure.py"


rule report_figure_group_similarity:
    """Figure group_similarity-{dataset}: histograms of the groups' similarities."""
    input:
        groups=COLLECTED["groups"],
    output:
        **figure_files("group_similarity", "group_similarity-{dataset}"),
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/figure_group_similarity-{{dataset}}.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/figure_group_similarity-{{dataset}}.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        name="group_similarity-{dataset}",
        options=report_options,
    script:
        "../scripts/report_figure.py"


rule report_figure_training:
    """Figure training-{dataset}: ELSA and SAE training curves."""
    input:
        history=COLLECTED["history"],
    output:
        **figure_files("training", "training-{dataset}"),
    log:
        f"{LOGS}/{{study}}/{{srep}}/report/figure_training-{{dataset}}.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/report/figure_training-{{dataset}}.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        name="training-{dataset}",
        options=report_options,
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
