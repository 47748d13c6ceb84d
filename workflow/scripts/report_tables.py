"""Rule report_tables: build every table of a replicate from the collected results; CSV, LaTeX, Markdown, HTML each."""

from sagea.runtime import setup_logging
from sagea.stages.report import make_tables

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
make_tables(snakemake.params.names, dict(snakemake.input.items()), snakemake.params.options, list(snakemake.output))
