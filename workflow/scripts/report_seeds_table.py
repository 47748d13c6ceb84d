"""Rule report_seeds_table: the overall table across the study's seeds (mean ± 95% CI)."""

from sagea.runtime import setup_logging
from sagea.stages.report import make_seeds_table

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
make_seeds_table(
    snakemake.wildcards.dataset,
    dict(zip(snakemake.params.seeds, snakemake.input.per_group)),
    snakemake.params.options,
    csv=snakemake.output.csv,
    tex=snakemake.output.tex,
    md=snakemake.output.md,
    html=snakemake.output.html,
)
