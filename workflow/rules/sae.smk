# SAE stage (docs/ARCHITECTURE.md): one sparse autoencoder per (dataset, main ELSA run, SAE id of
# plan.sae_runs), its reconstruction metrics, and the extracted sparse codes and feature table.
# With sae.batch_grid the grid's TopK/basic SAEs of an ELSA run train in one train_sae_grid job.
# Logic lives in sagea.stages.sae.


rule train_sae:
    """Train one sparse autoencoder of the grid on an ELSA run's user embeddings; log it (Sparse_<dataset>)."""
    input:
        unpack(import_input(sae_import)),
        embeddings="results/{dataset}/{rep}/elsa/{elsa}/user_embeddings.parquet",
        elsa="results/{dataset}/{rep}/elsa/{elsa}/model.pt",
        interactions=data_file("interactions.parquet"),
        users_table=data_file("users.parquet"),
        items_table=data_file("items.parquet"),
        split="results/{dataset}/{rep}/split.parquet",
    output:
        **mlflow_spool("results/{dataset}/{rep}/sae/{elsa}/{sae}/mlflow_run.json"),
        model="results/{dataset}/{rep}/sae/{elsa}/{sae}/model.pt",
        metrics="results/{dataset}/{rep}/sae/{elsa}/{sae}/metrics.json",
        history="results/{dataset}/{rep}/sae/{elsa}/{sae}/history.parquet",
    log:
        "logs/{dataset}/{rep}/sae/{elsa}/{sae}/train.log",
    benchmark:
        "logs/benchmarks/{dataset}/{rep}/sae/{elsa}/{sae}/train.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: config["resources"]["threads"]
    resources:
        **heavy_resources(),
    params:
        hp=sae_hp,
        research=sae_import,
        split=sae_split_params,
        device=config["device"],
        mlflow_uri=mlflow_uri(),
        provenance=MLFLOW_PROVENANCE,
    script:
        "../scripts/train_sae.py"


if SAE_GRID:

    ruleorder: train_sae_grid > train_sae

    rule train_sae_grid:
        """Train the grid's SAEs of one ELSA run in one job, stacked where they share batches; each writes
        train_sae's files under its own folder and logs its own MLflow run (Sparse_<dataset>).
        """
        input:
            unpack(sae_grid_import_input),
            embeddings="results/{dataset}/{rep}/elsa/{elsa}/user_embeddings.parquet",
            elsa="results/{dataset}/{rep}/elsa/{elsa}/model.pt",
            interactions=data_file("interactions.parquet"),
            users_table=data_file("users.parquet"),
            items_table=data_file("items.parquet"),
            split="results/{dataset}/{rep}/split.parquet",
        output:
            **mlflow_spool(
                expand(
                    "results/{{dataset}}/{{rep}}/sae/{{elsa}}/{sae}/mlflow_run.json",
                    sae=SAE_GRID,
                )
            ),
            models=expand(
                "results/{{dataset}}/{{rep}}/sae/{{elsa}}/{sae}/model.pt", sae=SAE_GRID
            ),
            metrics=expand(
                "results/{{dataset}}/{{rep}}/sae/{{elsa}}/{sae}/metrics.json",
                sae=SAE_GRID,
            ),
            histories=expand(
                "results/{{dataset}}/{{rep}}/sae/{{elsa}}/{sae}/history.parquet",
                sae=SAE_GRID,
            ),
        log:
            expand(
                "logs/{{dataset}}/{{rep}}/sae/{{elsa}}/{sae}/train.log", sae=SAE_GRID
            ),
        benchmark:
            "logs/benchmarks/{dataset}/{rep}/sae/{elsa}/grid/train.tsv"
        conda:
            "../envs/sagea.yaml"
        threads: config["resources"]["threads"]
        resources:
            **heavy_resources(),
        params:
            saes=SAE_GRID,
            hp=sae_grid_hp,
            research=sae_grid_import,
            split=sae_split_params,
            device=config["device"],
            mlflow_uri=mlflow_uri(),
            provenance=MLFLOW_PROVENANCE,
        script:
            "../scripts/train_sae_grid.py"


rule extract_sae:
    """Every user's sparse code (TopK at inference on and off) and the feature table of a trained SAE."""
    input:
        sae="results/{dataset}/{rep}/sae/{elsa}/{sae}/model.pt",
        elsa="results/{dataset}/{rep}/elsa/{elsa}/model.pt",
        embeddings="results/{dataset}/{rep}/elsa/{elsa}/user_embeddings.parquet",
        items_table=data_file("items.parquet"),
    output:
        codes_topk="results/{dataset}/{rep}/sae/{elsa}/{sae}/codes_topk.parquet",
        codes_all="results/{dataset}/{rep}/sae/{elsa}/{sae}/codes_all.parquet",
        features="results/{dataset}/{rep}/sae/{elsa}/{sae}/features.parquet",
    log:
        "logs/{dataset}/{rep}/sae/{elsa}/{sae}/extract.log",
    benchmark:
        "logs/benchmarks/{dataset}/{rep}/sae/{elsa}/{sae}/extract.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: config["resources"]["threads"]
    resources:
        **heavy_resources(),
    params:
        top_items=config["sae"]["extract"]["top_items"],
        device=config["device"],
    script:
        "../scripts/extract_sae.py"
