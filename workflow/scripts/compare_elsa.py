"""Compare every ELSA run of a dataset with the main run on item embeddings (rule compare_elsa)."""

from sagea.runtime import setup_logging
from sagea.stages.compare import compare_elsa

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
compare_elsa(
    snakemake.wildcards.dataset,
    snakemake.params.runs,
    list(snakemake.input.embeddings),
    snakemake.output.scores,
    knn_k=snakemake.params.knn_k,
    knn_queries=snakemake.params.knn_queries,
    chunk_size=snakemake.params.chunk_size,
    seed=snakemake.params.seed,
)
