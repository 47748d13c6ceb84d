"""Rules report_figure_*: build one figure from the collected results; save PNG and SVG."""

from sagea.runtime import setup_logging
from sagea.stages.report import make_figure

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
make_figure(
    snakemake.params.name,
    dict(snakemake.input.items()),
    snakemake.params.options,
    png=snakemake.output.png,
    svg=snakemake.output.svg,
)
