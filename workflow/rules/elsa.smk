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
    f"results/{dataset}/elsa/{run}/{name}"
    for dataset in plan.datasets(config)
    for run in plan.elsa_runs(config, dataset)
    for name in ELSA_RUN_FILES
] + [f"results/{dataset}/baselines/metrics.json" for dataset in plan.datasets(config)]

# The single-user evaluation split (datasets.<name>.split) and filter thresholds of a dataset.
elsa_split = lambda wc: plan.split_settings(config, wc.dataset)
elsa_filter = lambda wc: (plan.dataset_spec(config, wc.dataset).get("filter") or {})


rule train_elsa:
    """Train one ELSA run with early stopping on validation NDCG; log it to MLflow (Dense_<dataset>)."""
    input:
        unpack(import_input(elsa_import)),
        interactions="results/{dataset}/data/interactions.parquet",
        user_table="results/{dataset}/data/users.parquet",
        item_table="results/{dataset}/data/items.parquet",
        split="results/{dataset}/data/split.parquet",
        card="results/{dataset}/data/card.json",
    output:
        model="results/{dataset}/elsa/{elsa}/model.pt",
        metrics="results/{dataset}/elsa/{elsa}/metrics.json",
        history="results/{dataset}/elsa/{elsa}/history.parquet",
    log:
        "logs/{dataset}/elsa/{elsa}/train.log",
    benchmark:
        "logs/benchmarks/{dataset}/elsa/{elsa}/train.tsv"
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
        model="results/{dataset}/elsa/{elsa}/model.pt",
        interactions="results/{dataset}/data/interactions.parquet",
        user_table="results/{dataset}/data/users.parquet",
        item_table="results/{dataset}/data/items.parquet",
    output:
        user_embeddings="results/{dataset}/elsa/{elsa}/user_embeddings.parquet",
        item_embeddings="results/{dataset}/elsa/{elsa}/item_embeddings.parquet",
    log:
        "logs/{dataset}/elsa/{elsa}/embeddings.log",
    benchmark:
        "logs/benchmarks/{dataset}/elsa/{elsa}/embeddings.tsv"
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
        interactions="results/{dataset}/data/interactions.parquet",
        user_table="results/{dataset}/data/users.parquet",
        item_table="results/{dataset}/data/items.parquet",
        split="results/{dataset}/data/split.parquet",
    output:
        metrics="results/{dataset}/baselines/metrics.json",
    log:
        "logs/{dataset}/baselines/single_user.log",
    benchmark:
        "logs/benchmarks/{dataset}/baselines/single_user.tsv"
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
