"""Rule evaluate_sagea: every group set of a pool x SAE variant x SAGEA option x fusion, one folder per fusion."""

from pathlib import Path

from sagea.runtime import setup_logging
from sagea.tracking import deferred_logging
from sagea.stages import evaluate as E
from sagea.stages.evaluate_batch import GroupSetJob, SageaVariant, evaluate_sagea_pool

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
inp, wc, params = snakemake.input, snakemake.wildcards, snakemake.params
folders = iter(Path(p).parent for p in snakemake.output.per_group)  # <groupset>/<elsa>/<sae>/<option>/<fusion>
group_sets = [
    GroupSetJob(groupset, groups, [
        SageaVariant(sae, sae_path, params.sae_hp[sae], option["topk_inference"], option["normalize_users_embeddings"],
                     {fusion: next(folders) for fusion in params.fusions})
        for sae, sae_path in zip(params.saes, inp.sae)
        for option in params.options
    ])  # fmt: skip
    for groupset, groups in zip(params.groupsets, inp.groups)
]
with deferred_logging(spool=snakemake.output.get("mlflow")):  # mlflow.deferred: to the spool file
    evaluate_sagea_pool(
        group_sets,
        E.EvalInputs(Path(inp.interactions).parent, inp.split, None, inp.elsa, inp.item_embeddings),
        scope=E.EvalScope(wc.dataset, wc.pool, None, wc.elsa),
        zero_fallback=params.zero_fallback,
        settings=E.group_eval_settings(params.settings, params.device, params.popularity_with_targets),
        tracking=E.TrackingSettings(params.mlflow_uri, provenance=params.provenance),
        threads=snakemake.threads,
    )
