"""Rule extract_elsa_embeddings: user embeddings x·A of every user's full row, item rows of A."""

from pathlib import Path

from sagea.runtime import setup_logging
from sagea.stages.elsa import extract_embeddings

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
extract_embeddings(
    model_path=snakemake.input.model,
    data_dir=Path(snakemake.input.interactions).parent,
    user_path=snakemake.output.user_embeddings,
    item_path=snakemake.output.item_embeddings,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
