"""Compare every ELSA run of a dataset with the main run on item embeddings (rule compare_elsa)."""

from sagea.analysis.compare import elsa_comparison_from_files
from sagea.io import write_parquet
from sagea.runtime import setup_logging

snakemake = globals()["snakemake"]
log = setup_logging(snakemake.log[0])

runs = snakemake.params.runs
scores = elsa_comparison_from_files(
    dict(zip(runs, snakemake.input.embeddings)),
    runs,
    k=snakemake.params.knn_k,
    seed=snakemake.params.seed,
    chunk_size=snakemake.params.chunk_size,
    knn_queries=snakemake.params.knn_queries,
)
scores.insert(0, "dataset", snakemake.wildcards.dataset)
write_parquet(scores, snakemake.output.scores)
log.info("wrote %d scores to %s", len(scores), snakemake.output.scores)
