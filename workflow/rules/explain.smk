# Explanations (docs/explanations.md): labels for every feature of every SAE, and on the main
# ELSA run's first (or configured) SAE the deletion curves, shared features, planted-cluster
# recovery and example cards of the report pool's groups. Logic lives in sagea.explain.


def explain_choice(rep, dataset):
    """(pool, elsa run, sae run, option dict) explained for one replicate and dataset."""
    ex = rep["explain"]
    pools = plan.group_pools(rep)
    pool = ex["pool"] or rep["reports"]["report_pool"]
    pool = pool if pool in pools else pools[-1]
    saes = list(plan.sae_runs(rep))
    sae = ex["sae"] or saes[0]
    if sae not in saes:
        raise ValueError(
            f"explain.sae {sae!r} is not an SAE of the grid ({saes}); set it to one of them or null"
        )
    option = plan.parse_option(plan.sagea_options(rep)[0])
    return pool, plan.main_elsa(rep, dataset), sae, option


def explain_dir(rep, dataset):
    pool, elsa, sae, _ = explain_choice(rep, dataset)
    return f"{plan.rep_dir(rep, dataset, RESULTS)}/explain/{pool}/{elsa}/{sae}"


EXPLAIN_FILES = {
    "deletion": "deletion.parquet",
    "shared": "shared.parquet",
    "clusters": "clusters.parquet",
    "recovery": "recovery.json",
    "examples": "examples.json",
}
EXPLAIN_TABLES = ("deletion", "clusters", "shared")


def explain_enabled(rep):
    return rep["explain"]["enabled"] and bool(plan.group_sets(rep))


def explain_targets():
    """Feature labels of every SAE; per replicate and dataset the explanation files; the report items."""
    out = []
    for rep, dataset in replicate_datasets():
        if not explain_enabled(rep):
            continue
        elsa = plan.main_elsa(rep, dataset)
        out += [
            f"{plan.rep_dir(rep, dataset, RESULTS)}/sae/{elsa}/{sae}/feature_labels.parquet"
            for sae in plan.sae_runs(rep)
        ]
        out += [
            f"{explain_dir(rep, dataset)}/{name}" for name in EXPLAIN_FILES.values()
        ]
        folder = f"{RESULTS}/{config['study']}/{plan.study_tag(rep)}"
        out += [
            f"{folder}/tables/explain_{t}-{dataset}.{ext}"
            for t in EXPLAIN_TABLES
            for ext in ("csv", "tex", "md", "html")
        ]
        out.append(f"{folder}/explain/cards-{dataset}.html")
    return out


def explain_raw(wc):
    """The raw dataset (for tags.csv) when it has one: a tracked input of label_features."""
    return plan.raw_input(rep_config(wc), wc.dataset, RESULTS)


def explain_job_params(wc):
    rep = rep_config(wc)
    _, _, _, option = explain_choice(rep, wc.dataset)
    ex = rep["explain"]
    return {
        "fusion": ex["fusion"],
        "topk_inference": option["topk_inference"],
        "normalize_users_embeddings": option["normalize_users_embeddings"],
        "zero_fallback": rep["evaluation"]["sagea"]["zero_fallback"],
        "k": rep["evaluation"]["k"],
        "target_ratio": rep["groups"]["split"]["target_ratio"],
        "split_seed": rep["groups"]["split"]["seed"],
        "shared_mask": rep["groups"]["split"]["shared_mask"],
        "batch_groups": rep["evaluation"]["batch_groups"],
        "ms": ex["deletion"]["m"],
        "n_random": ex["deletion"]["random_draws"],
        "seed": rep["seed"],
        "n_examples": ex["examples"],
        "n_features": ex["features_per_card"],
        "pure": ex["pure"],
    }


def explain_report_inputs(wc):
    rep = study_config(wc)
    pool, elsa, sae, _ = explain_choice(rep, wc.dataset)
    folder = explain_dir(rep, wc.dataset)
    return {
        **{key: f"{folder}/{name}" for key, name in EXPLAIN_FILES.items()},
        "labels": f"{plan.rep_dir(rep, wc.dataset, RESULTS)}/sae/{elsa}/{sae}/feature_labels.parquet",
    }


localrules:
    label_features,
    explain_report,


rule label_features:
    """Label every feature of one SAE by the item metadata most over-represented among its top items."""
    input:
        unpack(explain_raw),
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
        settings=explain_job_params,
        device=config["device"],
    script:
        "../scripts/explain_groups.py"


rule explain_report:
    """The explanations' report items of one dataset: deletion, cluster and shared-feature tables, example cards."""
    input:
        unpack(explain_report_inputs),
    output:
        **{
            f"{t}_{ext}": report(
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
        sae_run=lambda wc: explain_choice(study_config(wc), wc.dataset)[2],
        top_shared=config["explain"]["shared_features"],
    script:
        "../scripts/explain_report.py"
