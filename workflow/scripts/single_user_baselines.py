"""Rule single_user_baselines: POP and EASE on the single-user split, next to ELSA."""

from pathlib import Path

from sagea.runtime import setup_logging
from sagea.stages.elsa import single_user_baselines

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
single_user_baselines(
    data_dir=Path(snakemake.input.interactions).parent,
    split_path=snakemake.input.split,
    metrics_path=snakemake.output.metrics,
    ease_lambda=snakemake.params.ease_lambda,
    k=snakemake.params.k,
    target_fraction=snakemake.params.split.get("target_fraction", 0.2),
    split_seed=snakemake.params.split.get("seed", 42),
    target_method=snakemake.params.split.get("target_method", "ours"),
    device=snakemake.params.device,
    threads=snakemake.threads,
)
