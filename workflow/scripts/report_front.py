"""Rule report_front: the landing page of the HTML report (datasets, models, groups, headline tables)."""

from sagea.runtime import setup_logging
from sagea.stages.report import make_front

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
make_front(
    snakemake.wildcards.study,
    snakemake.params.config,
    dict(zip(snakemake.params.datasets, snakemake.input.cards)),
    {"per_group": snakemake.input.per_group, "groups": snakemake.input.groups},
    dict(zip(snakemake.params.datasets, snakemake.input.heatmaps)),
    snakemake.params.options,
    snakemake.output.front,
    seeds=snakemake.params.seeds,
    seeds_tables=list(snakemake.input.seeds),
)
