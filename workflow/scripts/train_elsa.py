"""Rule train_elsa: train ELSA on the training users, evaluate on valid/test, log to MLflow."""

from pathlib import Path

from sagea.runtime import setup_logging
from sagea.tracking import deferred_logging
from sagea.stages.elsa import train_elsa

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
with deferred_logging(spool=snakemake.output.get("mlflow")):  # mlflow.deferred: to the spool file(s)
    train_elsa(
        data_dir=Path(snakemake.input.interactions).parent,
        split_path=snakemake.input.split,
        model_path=snakemake.output.model,
        metrics_path=snakemake.output.metrics,
        history_path=snakemake.output.history,
        hp=snakemake.params.hp,
        k=snakemake.params.k,
        target_fraction=snakemake.params.split.get("target_fraction", 0.2),
        split_seed=snakemake.params.split.get("seed", 42),
        target_method=snakemake.params.split.get("target_method", "ours"),
        device=snakemake.params.device,
        threads=snakemake.threads,
        dataset=snakemake.wildcards.dataset,
        run_name=snakemake.wildcards.elsa,
        data_params=snakemake.params.data_filter,
        mlflow_uri=snakemake.params.mlflow_uri,
        research=snakemake.params.research,
        provenance=snakemake.params.provenance,
    )
