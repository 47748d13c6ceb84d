"""Rule extract_sae: sparse codes of every user (TopK at inference on/off) and the feature table."""

from sagea.runtime import setup_logging
from sagea.stages.sae import extract_sae

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
extract_sae(
    sae_path=snakemake.input.sae,
    elsa_path=snakemake.input.elsa,
    embeddings_path=snakemake.input.embeddings,
    items_path=snakemake.input.items_table,
    codes_topk_path=snakemake.output.codes_topk,
    codes_all_path=snakemake.output.codes_all,
    features_path=snakemake.output.features,
    top_items=snakemake.params.top_items,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
