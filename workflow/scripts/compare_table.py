"""Table (CSV, Markdown) and similarity figure of one comparison (rule compare_table)."""

from sagea.runtime import setup_logging
from sagea.stages.compare import compare_table

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
compare_table(
    snakemake.input.scores,
    csv=snakemake.output.csv,
    md=snakemake.output.md,
    figure=snakemake.output.figure,
    title=snakemake.params.title,
)
