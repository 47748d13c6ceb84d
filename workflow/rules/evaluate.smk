# Evaluation stage (docs/ARCHITECTURE.md): group recommendation on every group set with every
# SAGEA fusion (one job per ELSA main run x SAE variant x option) and every baseline (one job
# per ELSA main run). Logic lives in sagea.stages.evaluate; one MLflow run per strategy folder.

# Output folders with escaped wildcards (expand() fills only the strategy name).
EVAL_SAGEA_DIR = (
    "results/{{dataset}}/{{rep}}/eval/{{pool}}/{{groupset}}/{{elsa}}/{{sae}}/{{option}}"
)
EVAL_BASELINES_DIR = (
    "results/{{dataset}}/{{rep}}/eval/{{pool}}/{{groupset}}/{{elsa}}/baselines"
)
EVAL_FILES = ("per_group.parquet", "recommendations.parquet", "summary.json")


# GroupEvalSettings fields (sagea.evaluation.group) from config evaluation.* and groups.split.
evaluation_settings = lambda wc: {
    "k": config["evaluation"]["k"],
    "batch_groups": config["evaluation"]["batch_groups"],
    "target_ratio": config["groups"]["split"]["target_ratio"],
    "split_seed": rep_config(wc)["groups"]["split"]["seed"],
    "shared_mask": config["groups"]["split"]["shared_mask"],
    "hit_rate_needs_two": config["evaluation"]["research"]["hit_rate_needs_two"],
    "m": config["evaluation"]["m_proportionality"]["m"],
    "top_n": config["evaluation"]["m_proportionality"]["top_n"],
}

# What `rule all` needs: every strategy folder of every (dataset, pool, group set) on the
# dataset's main ELSA run — baselines, and SAE variant x SAGEA option x fusion.
evaluation_targets = lambda: [
    f"{plan.rep_dir(rep, dataset, RESULTS)}/eval/{pool}/{groupset}/{plan.main_elsa(rep, dataset)}/{strategy}/{name}"
    for rep, dataset in replicate_datasets()
    for pool in plan.group_pools(rep)
    for groupset in plan.group_sets(rep)
    for strategy in [f"baselines/{b}" for b in plan.baselines(rep)]
    + [
        f"{sae}/{option}/{fusion}"
        for sae in plan.sae_runs(rep)
        for option in plan.sagea_options(rep)
        for fusion in plan.fusions(rep)
    ]
    for name in EVAL_FILES
]

# Named outputs per_group / recommendations / summary, one file per strategy folder.
eval_outputs = lambda folder, names: {
    key: expand(f"{folder}/{{name}}/{file}", name=names)
    for key, file in zip(("per_group", "recommendations", "summary"), EVAL_FILES)
}


rule evaluate_sagea:
    """Recommend to a group set with every SAGEA fusion of one SAE and option; one folder and MLflow run per fusion."""
    input:
        interactions=data_file("interactions.parquet"),
        user_table=data_file("users.parquet"),
        item_table=data_file("items.parquet"),
        split="results/{dataset}/{rep}/split.parquet",
        groups="results/{dataset}/{rep}/groups/{pool}/{groupset}.parquet",
        elsa="results/{dataset}/{rep}/elsa/{elsa}/model.pt",
        item_embeddings="results/{dataset}/{rep}/elsa/{elsa}/item_embeddings.parquet",
        sae="results/{dataset}/{rep}/sae/{elsa}/{sae}/model.pt",
    output:
        **eval_outputs(EVAL_SAGEA_DIR, plan.fusions(config)),
    log:
        "logs/{dataset}/{rep}/eval/{pool}/{groupset}/{elsa}/{sae}/{option}.log",
    benchmark:
        "logs/benchmarks/{dataset}/{rep}/eval/{pool}/{groupset}/{elsa}/{sae}/{option}.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: config["resources"]["threads"]
    resources:
        **heavy_resources(),
    params:
        fusions=plan.fusions(config),
        settings=evaluation_settings,
        option=lambda wc: plan.parse_option(wc.option),
        sae_hp=sae_hp,
        zero_fallback=config["evaluation"]["sagea"]["zero_fallback"],
        popularity_with_targets=config["evaluation"]["research"][
            "popularity_with_targets"
        ],
        device=config["device"],
        mlflow_uri=mlflow_uri(),
        provenance=MLFLOW_PROVENANCE,
    script:
        "../scripts/evaluate_sagea.py"


rule evaluate_baselines:
    """Recommend to a group set with every baseline (ELSA, ADD, GFAR, ...); one folder and MLflow run each."""
    input:
        interactions=data_file("interactions.parquet"),
        user_table=data_file("users.parquet"),
        item_table=data_file("items.parquet"),
        split="results/{dataset}/{rep}/split.parquet",
        groups="results/{dataset}/{rep}/groups/{pool}/{groupset}.parquet",
        elsa="results/{dataset}/{rep}/elsa/{elsa}/model.pt",
        item_embeddings="results/{dataset}/{rep}/elsa/{elsa}/item_embeddings.parquet",
    output:
        **eval_outputs(EVAL_BASELINES_DIR, plan.baselines(config)),
    log:
        "logs/{dataset}/{rep}/eval/{pool}/{groupset}/{elsa}/baselines.log",
    benchmark:
        "logs/benchmarks/{dataset}/{rep}/eval/{pool}/{groupset}/{elsa}/baselines.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: config["resources"]["threads"]
    resources:
        **heavy_resources(),
    params:
        strategies=plan.baselines(config),
        settings=evaluation_settings,
        popularity_with_targets=config["evaluation"]["research"][
            "popularity_with_targets"
        ],
        elsa_seen_at_zero=config["evaluation"]["research"]["elsa_seen_at_zero"],
        aggregation_seen_at_zero=config["evaluation"]["research"][
            "aggregation_seen_at_zero"
        ],
        device=config["device"],
        mlflow_uri=mlflow_uri(),
        provenance=MLFLOW_PROVENANCE,
    script:
        "../scripts/evaluate_baselines.py"
