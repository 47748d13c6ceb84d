"""Rule evaluate_sagea: every SAE variant x SAGEA option x fusion on one group set, one folder per fusion."""

from pathlib import Path

from sagea.runtime import setup_logging
from sagea.stages.evaluate_batch import SageaVariant, evaluate_sagea_variants

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
wc, params = snakemake.wildcards, snakemake.params
folders = iter(Path(p).parent for p in snakemake.output.per_group)  # <sae>/<option>/<fusion>, in rule order
variants = [
    SageaVariant(sae, sae_path, params.sae_hp[sae], option["topk_inference"], option["normalize_users_embeddings"],
                 {fusion: next(folders) for fusion in params.fusions})  # fmt: skip
    for sae, sae_path in zip(params.saes, snakemake.input.sae)
    for option in params.options
]
evaluate_sagea_variants(
    variants,
    data_dir=Path(snakemake.input.interactions).parent,
    split_path=snakemake.input.split,
    groups_path=snakemake.input.groups,
    elsa_path=snakemake.input.elsa,
    item_embeddings_path=snakemake.input.item_embeddings,
    dataset=wc.dataset,
    pool=wc.pool,
    groupset=wc.groupset,
    elsa_run=wc.elsa,
    zero_fallback=params.zero_fallback,
    settings=params.settings,
    popularity_with_targets=params.popularity_with_targets,
    device=params.device,
    tracking_uri=params.mlflow_uri,
    provenance=params.provenance,
    threads=snakemake.threads,
)
