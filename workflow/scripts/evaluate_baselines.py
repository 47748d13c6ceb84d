"""Rule evaluate_baselines: every configured baseline on one group set, one folder per strategy."""

from pathlib import Path

from sagea.runtime import setup_logging
from sagea.stages.evaluate import evaluate_baselines_job
from sagea.tracking import deferred_logging

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
wc, params = snakemake.wildcards, snakemake.params
with deferred_logging():  # the job's runs (one per strategy) as one batch
    evaluate_baselines_job(
        data_dir=Path(snakemake.input.interactions).parent,
        split_path=snakemake.input.split,
        groups_path=snakemake.input.groups,
        elsa_path=snakemake.input.elsa,
        item_embeddings_path=snakemake.input.item_embeddings,
        out_dirs={s: Path(p).parent for s, p in zip(params.strategies, snakemake.output.per_group)},
        dataset=wc.dataset,
        pool=wc.pool,
        groupset=wc.groupset,
        elsa_run=wc.elsa,
        settings=params.settings,
        popularity_with_targets=params.popularity_with_targets,
        elsa_seen_at_zero=params.elsa_seen_at_zero,
        aggregation_seen_at_zero=params.aggregation_seen_at_zero,
        device=params.device,
        tracking_uri=params.mlflow_uri,
        provenance=params.provenance,
        threads=snakemake.threads,
    )
