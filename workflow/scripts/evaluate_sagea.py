"""Rule evaluate_sagea: every SAE variant x SAGEA option x fusion on one group set, one folder per fusion."""

from pathlib import Path

from sagea.runtime import setup_logging
from sagea.stages import evaluate as E
from sagea.stages.evaluate_batch import SageaVariant, evaluate_sagea_variants

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
inp, wc, params = snakemake.input, snakemake.wildcards, snakemake.params
folders = iter(Path(p).parent for p in snakemake.output.per_group)  # <sae>/<option>/<fusion>, in rule order
variants = [
    SageaVariant(sae, sae_path, params.sae_hp[sae], option["topk_inference"], option["normalize_users_embeddings"],
                 {fusion: next(folders) for fusion in params.fusions})  # fmt: skip
    for sae, sae_path in zip(params.saes, inp.sae)
    for option in params.options
]
evaluate_sagea_variants(
    variants,
    E.EvalInputs(Path(inp.interactions).parent, inp.split, inp.groups, inp.elsa, inp.item_embeddings),
    scope=E.EvalScope(wc.dataset, wc.pool, wc.groupset, wc.elsa),
    zero_fallback=params.zero_fallback,
    settings=E.group_eval_settings(params.settings, params.device, params.popularity_with_targets),
    tracking=E.TrackingSettings(params.mlflow_uri, provenance=params.provenance),
    threads=snakemake.threads,
)
