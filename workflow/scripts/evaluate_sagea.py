"""Rule evaluate_sagea: every configured SAGEA fusion on one group set, one folder per fusion."""

from pathlib import Path

from sagea.runtime import setup_logging
from sagea.stages.evaluate import evaluate_sagea_job

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
wc, params = snakemake.wildcards, snakemake.params
evaluate_sagea_job(
    data_dir=Path(snakemake.input.interactions).parent,
    split_path=snakemake.input.split,
    groups_path=snakemake.input.groups,
    elsa_path=snakemake.input.elsa,
    item_embeddings_path=snakemake.input.item_embeddings,
    sae_path=snakemake.input.sae,
    out_dirs={f: Path(p).parent for f, p in zip(params.fusions, snakemake.output.per_group)},
    dataset=wc.dataset,
    pool=wc.pool,
    groupset=wc.groupset,
    elsa_run=wc.elsa,
    sae_run=wc.sae,
    sae_hp=params.sae_hp,
    topk_inference=params.option["topk_inference"],
    normalize_users_embeddings=params.option["normalize_users_embeddings"],
    zero_fallback=params.zero_fallback,
    settings=params.settings,
    popularity_with_targets=params.popularity_with_targets,
    device=params.device,
    tracking_uri=params.mlflow_uri,
    provenance=params.provenance,
    threads=snakemake.threads,
)
