"""Table (CSV, Markdown) and similarity figure of one comparison (rule compare_table)."""

from sagea.analysis.compare_report import write_report
from sagea.io import read_parquet
from sagea.runtime import setup_logging

snakemake = globals()["snakemake"]
log = setup_logging(snakemake.log[0])

write_report(
    read_parquet(snakemake.input.scores),
    csv=snakemake.output.csv,
    markdown=snakemake.output.md,
    figure=snakemake.output.figure,
    title=snakemake.params.title,
)
log.info("wrote %s, %s, %s", snakemake.output.csv, snakemake.output.md, snakemake.output.figure)
