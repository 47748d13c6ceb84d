"""Rule evaluate_baselines: every configured baseline on every group set of a pool, one folder per strategy."""

from pathlib import Path

from sagea.runtime import setup_logging
from sagea.tracking import deferred_logging
from sagea.stages import evaluate as E
from sagea.stages.evaluate_batch import GroupSetJob, evaluate_baselines_pool

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
inp, wc, params = snakemake.input, snakemake.wildcards, snakemake.params
folders = iter(Path(p).parent for p in snakemake.output.per_group)  # <groupset>/<elsa>/baselines/<strategy>
group_sets = [
    GroupSetJob(groupset, groups, {strategy: next(folders) for strategy in params.strategies})
    for groupset, groups in zip(params.groupsets, inp.groups)
]
with deferred_logging(spool=snakemake.output.get("mlflow")):  # mlflow.deferred: to the spool file
    evaluate_baselines_pool(
        group_sets,
        E.EvalInputs(Path(inp.interactions).parent, inp.split, None, inp.elsa, inp.item_embeddings),
        scope=E.EvalScope(wc.dataset, wc.pool, None, wc.elsa),
        settings=E.group_eval_settings(params.settings, params.device, params.popularity_with_targets),
        baselines=E.BaselineSettings(params.elsa_seen_at_zero, params.aggregation_seen_at_zero),
        tracking=E.TrackingSettings(params.mlflow_uri, provenance=params.provenance),
        threads=snakemake.threads,
    )
