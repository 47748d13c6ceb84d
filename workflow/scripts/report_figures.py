"""Rule report_figures: build every figure of a replicate from the collected results; PNG and SVG each."""

from sagea.runtime import setup_logging
from sagea.stages.report import make_figures

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
make_figures(snakemake.params.names, dict(snakemake.input.items()), snakemake.params.options, list(snakemake.output))
