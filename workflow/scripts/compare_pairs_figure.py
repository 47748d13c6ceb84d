"""Heat maps of every compared pair of SAE dictionaries (rule compare_sae_pairs_figure)."""

from sagea.runtime import setup_logging
from sagea.stages.compare import compare_pairs_figure

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
compare_pairs_figure(snakemake.input.scores, snakemake.output.figure, title=snakemake.params.title)
