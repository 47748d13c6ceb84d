"""Compare every pair of SAE dictionaries of a dataset (rule compare_sae)."""

from sagea.runtime import setup_logging
from sagea.stages.compare import compare_sae

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
compare_sae(
    snakemake.wildcards.dataset,
    snakemake.params.members,  # id -> (elsa, sae, hyperparameters), same order as the inputs
    list(snakemake.input.models),
    list(snakemake.input.codes),
    list(snakemake.input.user_embeddings),
    snakemake.output.scores,
    match_threshold=snakemake.params.match_threshold,
    seed=snakemake.params.seed,
)
