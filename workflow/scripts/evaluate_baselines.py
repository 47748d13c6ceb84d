"""Rule evaluate_baselines: every configured baseline on one group set, one folder per strategy."""

from pathlib import Path

from sagea.runtime import setup_logging
from sagea.stages import evaluate as E
from sagea.tracking import deferred_logging

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
inp, wc, params = snakemake.input, snakemake.wildcards, snakemake.params
with deferred_logging():  # the job's runs (one per strategy) as one batch
    E.evaluate_baselines_job(
        E.EvalInputs(Path(inp.interactions).parent, inp.split, inp.groups, inp.elsa, inp.item_embeddings),
        out_dirs={s: Path(p).parent for s, p in zip(params.strategies, snakemake.output.per_group)},
        scope=E.EvalScope(wc.dataset, wc.pool, wc.groupset, wc.elsa),
        settings=E.group_eval_settings(params.settings, params.device, params.popularity_with_targets),
        baselines=E.BaselineSettings(params.elsa_seen_at_zero, params.aggregation_seen_at_zero),
        tracking=E.TrackingSettings(params.mlflow_uri, provenance=params.provenance),
        threads=snakemake.threads,
    )
