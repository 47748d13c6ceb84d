"""Rule download: fetch (or reuse) the raw archive of a dataset, verify it, extract it."""

from sagea.data.download import download_dataset
from sagea.runtime import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
download_dataset(
    name=snakemake.wildcards.dataset,  # noqa: F821
    spec=snakemake.params.spec,  # noqa: F821
    raw_dir=snakemake.params.raw_dir,  # noqa: F821
    out_dir=snakemake.output.files,  # noqa: F821
)
