"""Rules report_table_*: build one table from the collected results; write CSV, LaTeX, Markdown, HTML."""

from sagea.runtime import setup_logging
from sagea.stages.report import make_table

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
make_table(
    snakemake.params.name,
    dict(snakemake.input.items()),
    snakemake.params.options,
    csv=snakemake.output.csv,
    tex=snakemake.output.tex,
    md=snakemake.output.md,
    html=snakemake.output.html,
)
