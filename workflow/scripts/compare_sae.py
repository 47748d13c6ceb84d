"""Compare every pair of SAE dictionaries of a dataset (rule compare_sae)."""

from sagea.analysis.compare import sae_comparison_from_files
from sagea.io import write_parquet
from sagea.runtime import setup_logging

snakemake = globals()["snakemake"]
log = setup_logging(snakemake.log[0])

members = snakemake.params.members  # id -> (elsa, sae, hyperparameters), same order as the inputs
ids = list(members)
elsas = list(dict.fromkeys(elsa for elsa, _, _ in members.values()))
scores = sae_comparison_from_files(
    dict(zip(ids, snakemake.input.models)),
    dict(zip(ids, snakemake.input.codes)),
    {run: hp for run, (_, _, hp) in members.items()},
    {run: elsa for run, (elsa, _, _) in members.items()},
    dict(zip(elsas, snakemake.input.user_embeddings)),
    threshold=snakemake.params.match_threshold,
    seed=snakemake.params.seed,
)
scores.insert(0, "dataset", snakemake.wildcards.dataset)
write_parquet(scores, snakemake.output.scores)
log.info("wrote %d scores to %s", len(scores), snakemake.output.scores)
