"""Heat maps of every compared pair of SAE dictionaries (rule compare_sae_pairs_figure)."""

from sagea.analysis.compare_report import write_pairs_figure
from sagea.io import read_parquet
from sagea.runtime import setup_logging

snakemake = globals()["snakemake"]
log = setup_logging(snakemake.log[0])

write_pairs_figure(read_parquet(snakemake.input.scores), snakemake.output.figure, title=snakemake.params.title)
log.info("wrote %s", snakemake.output.figure)
