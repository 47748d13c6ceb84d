"""Rule train_sae_grid: train the grid's SAEs of one ELSA run in one process (sae.batch_grid)."""

import logging
from pathlib import Path

from sagea.runtime import setup_logging
from sagea.tracking import deferred_logging
from sagea.stages.sae import SAEJob, train_sae_grid

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
for extra in snakemake.log[1:]:  # every SAE's train.log holds the job's log
    handler = logging.FileHandler(extra, mode="w")
    handler.setFormatter(logging.getLogger().handlers[-1].formatter)
    logging.getLogger().addHandler(handler)
out = snakemake.output
jobs = [
    SAEJob(sae, hp, model, metrics, history, research)
    for sae, hp, research, model, metrics, history in zip(
        snakemake.params.saes, snakemake.params.hp, snakemake.params.research, out.models, out.metrics, out.histories
    )
]
with deferred_logging(spool=snakemake.output.get("mlflow")):  # mlflow.deferred: to the spool file(s)
    train_sae_grid(
        embeddings_path=snakemake.input.embeddings,
        elsa_path=snakemake.input.elsa,
        data_dir=Path(snakemake.input.interactions).parent,
        split_path=snakemake.input.split,
        jobs=jobs,
        **snakemake.params.split,
        device=snakemake.params.device,
        threads=snakemake.threads,
        dataset=snakemake.wildcards.dataset,
        elsa_run=snakemake.wildcards.elsa,
        mlflow_uri=snakemake.params.mlflow_uri,
        provenance=snakemake.params.provenance,
    )
