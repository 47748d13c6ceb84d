# Explanations (docs/explanations.md): labels for every feature of every SAE, and on the main
# ELSA run's first (or configured) SAE the deletion curves, shared features, planted-cluster
# recovery and example cards of the report pool's groups. Logic lives in sagea.explain.


from sagea import plan_explain as explain_plan  # noqa: E402

EXPLAIN_FILES = explain_plan.EXPLAIN_FILES
EXPLAIN_TABLES = explain_plan.EXPLAIN_TABLES
# What `rule all` needs from the explanations (every replicate).
explain_targets = lambda: [
    f for rep in REPLICATES for f in explain_plan.targets(rep, RESULTS)
]


localrules:
    label_features,
    explain_report,


rule label_features:
    """Label every feature of one SAE by the item metadata most over-represented among its top items."""
    input:
        unpack(
            lambda wc: explain_plan.label_inputs(rep_config(wc), wc.dataset, RESULTS)
        ),
        features="results/{dataset}/{rep}/sae/{elsa}/{sae}/features.parquet",
        items_table=data_file("items.parquet"),
    output:
        labels="results/{dataset}/{rep}/sae/{elsa}/{sae}/feature_labels.parquet",
    log:
        "logs/{dataset}/{rep}/sae/{elsa}/{sae}/labels.log",
    benchmark:
        "logs/benchmarks/{dataset}/{rep}/sae/{elsa}/{sae}/labels.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        column=config["explain"]["labels"]["column"],
        id_col=config["explain"]["labels"]["id_col"],
        n_labels=config["explain"]["labels"]["n_labels"],
        min_count=config["explain"]["labels"]["min_count"],
    script:
        "../scripts/explain_labels.py"


rule explain_groups:
    """Deletion curves, shared features, planted-cluster recovery and example cards of one SAE on a pool's group sets."""
    input:
        interactions=data_file("interactions.parquet"),
        user_table=data_file("users.parquet"),
        item_table=data_file("items.parquet"),
        groups=lambda wc: [
            f"results/{wc.dataset}/{wc.rep}/groups/{wc.pool}/{g}.parquet"
            for g in plan.group_sets(rep_config(wc))
        ],
        elsa="results/{dataset}/{rep}/elsa/{elsa}/model.pt",
        sae="results/{dataset}/{rep}/sae/{elsa}/{sae}/model.pt",
        labels="results/{dataset}/{rep}/sae/{elsa}/{sae}/feature_labels.parquet",
    output:
        **{
            key: f"results/{{dataset}}/{{rep}}/explain/{{pool}}/{{elsa}}/{{sae}}/{name}"
            for key, name in EXPLAIN_FILES.items()
        },
    log:
        "logs/{dataset}/{rep}/explain/{pool}/{elsa}/{sae}.log",
    benchmark:
        "logs/benchmarks/{dataset}/{rep}/explain/{pool}/{elsa}/{sae}.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: config["resources"]["threads"]
    resources:
        **{**heavy_resources(), "gpu": 0},
    params:
        group_sets=lambda wc: plan.group_sets(rep_config(wc)),
        settings=lambda wc: explain_plan.job_settings(rep_config(wc), wc.dataset),
        device=config["device"],
    script:
        "../scripts/explain_groups.py"


rule explain_report:
    """The explanations' report items of one dataset: deletion, cluster and shared-feature tables, example cards."""
    input:
        unpack(
            lambda wc: explain_plan.report_inputs(
                study_config(wc), wc.dataset, RESULTS
            )
        ),
    output:
        **{
            f"{t}_{ext}": (
                report(
                    f"{REPORT_DIR}/tables/explain_{t}-{{dataset}}.{ext}",
                    caption=f"../report/explain_{t}.rst",
                    category="Explanations",
                    subcategory=t,
                    labels={
                        "table": f"explain_{t}-{{dataset}}",
                        "format": "CSV (download)" if ext == "csv" else "table (HTML)",
                    },
                )
                if ext in ("csv", "html")
                else f"{REPORT_DIR}/tables/explain_{t}-{{dataset}}.{ext}"
            )
            for t in EXPLAIN_TABLES
            for ext in ("csv", "tex", "md", "html")
        },
        cards=report(
            f"{REPORT_DIR}/explain/cards-{{dataset}}.html",
            caption="../report/explain_cards.rst",
            category="Explanations",
            subcategory="example groups",
            labels={"dataset": "{dataset}", "file": "example cards"},
        ),
    log:
        f"{LOGS}/{{study}}/{{srep}}/explain/report-{{dataset}}.log",
    benchmark:
        f"{BENCH}/{{study}}/{{srep}}/explain/report-{{dataset}}.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        sae_run=lambda wc: explain_plan.choice(study_config(wc), wc.dataset)[2],
        top_shared=config["explain"]["shared_features"],
    script:
        "../scripts/explain_report.py"
