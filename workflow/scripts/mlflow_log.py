"""Rule mlflow_log: log every spooled MLflow run of the study (mlflow.deferred); list them."""

import pandas as pd

from sagea.io import write_parquet
from sagea.runtime import setup_logging
from sagea.tracking import log_spooled

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
rows = log_spooled(list(snakemake.input))
columns = ["spool", "key", "experiment", "run_name", "run_id", "logged"]
write_parquet(pd.DataFrame(rows, columns=columns), snakemake.output[0])
