"""Rule prepare: raw files -> interactions/users/items parquet + dataset card."""

from pathlib import Path

from sagea.data.prepare import prepare_dataset
from sagea.runtime import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821
prepare_dataset(
    name=snakemake.wildcards.dataset,  # noqa: F821
    spec=snakemake.params.spec,  # noqa: F821
    raw_path=snakemake.input.get("raw"),  # noqa: F821
    out_dir=Path(snakemake.output.interactions).parent,  # noqa: F821
)
