"""Rule report_collect: gather every upstream output the report reads into long Parquet tables."""

from sagea.runtime import setup_logging
from sagea.stages.report import collect_results

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
collect_results(snakemake.params.entries, dict(snakemake.output.items()))
