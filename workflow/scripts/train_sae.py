"""Rule train_sae: train (or import, datasets.<name>.sae_import) one SAE of the grid, its metrics, MLflow."""

from pathlib import Path

from sagea.runtime import setup_logging
from sagea.tracking import deferred_logging
from sagea.stages.sae import train_sae

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
with deferred_logging(spool=snakemake.output.get("mlflow")):  # mlflow.deferred: to the spool file(s)
    train_sae(
        embeddings_path=snakemake.input.embeddings,
        elsa_path=snakemake.input.elsa,
        data_dir=Path(snakemake.input.interactions).parent,
        split_path=snakemake.input.split,
        model_path=snakemake.output.model,
        metrics_path=snakemake.output.metrics,
        history_path=snakemake.output.history,
        hp=snakemake.params.hp,
        **snakemake.params.split,
        device=snakemake.params.device,
        threads=snakemake.threads,
        dataset=snakemake.wildcards.dataset,
        elsa_run=snakemake.wildcards.elsa,
        sae_run=snakemake.wildcards.sae,
        mlflow_uri=snakemake.params.mlflow_uri,
        research=snakemake.params.research,
        provenance=snakemake.params.provenance,
    )
