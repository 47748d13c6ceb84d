# ELSA stage (docs/ARCHITECTURE.md): train + evaluate each ELSA run, extract its embeddings, and
# the single-user baselines POP and EASE on the same split. Logic lives in sagea.stages.elsa.


ELSA_RUN_FILES = (
    "model.pt",
    "metrics.json",
    "history.parquet",
    "user_embeddings.parquet",
    "item_embeddings.parquet",
)

# What `rule all` needs from this stage: every ELSA run's files and the single-user baselines.
elsa_targets = lambda: [
    f"{plan.rep_dir(rep, dataset, RESULTS)}/{name}"
    for rep, dataset in replicate_datasets()
    for name in [
        f"elsa/{run}/{file}"
        for run in plan.elsa_runs(rep, dataset)
        for file in ELSA_RUN_FILES
    ]
    + ["baselines/metrics.json"]
]

# The single-user evaluation split (datasets.<name>.split) and filter thresholds of a dataset.
elsa_split = lambda wc: plan.split_settings(rep_config(wc), wc.dataset)
elsa_filter = lambda wc: (
    plan.dataset_spec(rep_config(wc), wc.dataset).get("filter") or {}
)


rule train_elsa:
    """Train one ELSA run with early stopping on validation NDCG; log it to MLflow (Dense_<dataset>)."""
    input:
        unpack(import_input(elsa_import)),
        interactions=data_file("interactions.parquet"),
        user_table=data_file("users.parquet"),
        item_table=data_file("items.parquet"),
        split="results/{dataset}/{rep}/split.parquet",
        card=data_file("card.json"),
    output:
        **mlflow_spool("results/{dataset}/{rep}/elsa/{elsa}/mlflow_run.json"),
        model="results/{dataset}/{rep}/elsa/{elsa}/model.pt",
        metrics="results/{dataset}/{rep}/elsa/{elsa}/metrics.json",
        history="results/{dataset}/{rep}/elsa/{elsa}/history.parquet",
    log:
        "logs/{dataset}/{rep}/elsa/{elsa}/train.log",
    benchmark:
        "logs/benchmarks/{dataset}/{rep}/elsa/{elsa}/train.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: config["resources"]["threads"]
    resources:
        **heavy_resources(),
    params:
        hp=elsa_hp,
        research=elsa_import,
        k=config["evaluation"]["k"],
        split=elsa_split,
        data_filter=elsa_filter,
        device=config["device"],
        mlflow_uri=mlflow_uri(),
        provenance=MLFLOW_PROVENANCE,
    script:
        "../scripts/train_elsa.py"


rule extract_elsa_embeddings:
    """Encode every user's row and every item with a trained ELSA (user/item embeddings)."""
    input:
        model="results/{dataset}/{rep}/elsa/{elsa}/model.pt",
        interactions=data_file("interactions.parquet"),
        user_table=data_file("users.parquet"),
        item_table=data_file("items.parquet"),
    output:
        user_embeddings="results/{dataset}/{rep}/elsa/{elsa}/user_embeddings.parquet",
        item_embeddings="results/{dataset}/{rep}/elsa/{elsa}/item_embeddings.parquet",
    log:
        "logs/{dataset}/{rep}/elsa/{elsa}/embeddings.log",
    benchmark:
        "logs/benchmarks/{dataset}/{rep}/elsa/{elsa}/embeddings.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: config["resources"]["threads"]
    resources:
        **heavy_resources(),
    params:
        device=config["device"],
    script:
        "../scripts/extract_elsa_embeddings.py"


rule single_user_baselines:
    """POP and EASE on the same split, the single-user reference points of ELSA."""
    input:
        interactions=data_file("interactions.parquet"),
        user_table=data_file("users.parquet"),
        item_table=data_file("items.parquet"),
        split="results/{dataset}/{rep}/split.parquet",
    output:
        metrics="results/{dataset}/{rep}/baselines/metrics.json",
    log:
        "logs/{dataset}/{rep}/baselines/single_user.log",
    benchmark:
        "logs/benchmarks/{dataset}/{rep}/baselines/single_user.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: config["resources"]["threads"]
    resources:
        **heavy_resources(),
    params:
        ease_lambda=config["elsa"]["ease_lambda"],
        k=config["evaluation"]["k"],
        split=elsa_split,
        device=config["device"],
    script:
        "../scripts/single_user_baselines.py"
