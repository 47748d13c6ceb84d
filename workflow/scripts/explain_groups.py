"""Rule explain_groups: deletion curves, shared features, cluster recovery and example cards."""

from pathlib import Path

from sagea.explain.jobs import explain_job
from sagea.runtime import setup_logging

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
explain_job(
    str(Path(snakemake.input.interactions).parent),
    dict(zip(snakemake.params.group_sets, snakemake.input.groups)),
    snakemake.input.elsa,
    snakemake.input.sae,
    snakemake.input.labels,
    dict(snakemake.output.items()),
    **snakemake.params.settings,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
