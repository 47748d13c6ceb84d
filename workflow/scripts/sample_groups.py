"""Rule sample_groups: every group set of one (dataset, pool), its summary and diagnostics."""

from pathlib import Path

from sagea.runtime import setup_logging
from sagea.stages.groups import sample_groups

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
sample_groups(
    embeddings_path=snakemake.input.embeddings,
    data_dir=Path(snakemake.input.interactions).parent,
    split_path=snakemake.input.split,
    pool=snakemake.wildcards.pool,
    group_sets=snakemake.params.group_sets,
    group_paths=list(snakemake.output.groups),
    summary_path=snakemake.output.summary,
    histogram_path=snakemake.output.histograms,
    subgroup_path=snakemake.output.subgroups,
    research=snakemake.params.research,
    **snakemake.params.sampling,
)
