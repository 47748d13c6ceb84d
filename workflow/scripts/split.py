"""Rule split: user-level seeded train/valid/test split -> split.parquet."""

import pandas as pd

from sagea.data.splits import split_users
from sagea.io import write_parquet
from sagea.runtime import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821
n_users = len(pd.read_parquet(snakemake.input.user_table, columns=["user"]))  # noqa: F821
split = split_users(n_users, **snakemake.params.split)  # noqa: F821
log.info("split of %d users: %s", n_users, split["split"].value_counts().to_dict())
write_parquet(split, snakemake.output.split)  # noqa: F821
