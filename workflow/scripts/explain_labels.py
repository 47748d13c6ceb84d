"""Rule label_features: label every feature of one SAE by over-represented item metadata."""

from sagea.explain.jobs import label_features_job
from sagea.runtime import setup_logging

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
label_features_job(
    snakemake.input.features,
    snakemake.input.items_table,
    snakemake.output.labels,
    raw=snakemake.input.get("raw"),
    column=snakemake.params.column,
    n_labels=snakemake.params.n_labels,
    min_count=snakemake.params.min_count,
    metadata_file=snakemake.input.get("metadata"),
    id_col=snakemake.params.id_col,
)
