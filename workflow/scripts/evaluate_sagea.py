"""Rule evaluate_sagea: every configured SAGEA fusion on one group set, one folder per fusion."""

from pathlib import Path

from sagea.runtime import setup_logging
from sagea.stages import evaluate as E

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
inp, wc, params = snakemake.input, snakemake.wildcards, snakemake.params
E.evaluate_sagea_job(
    E.EvalInputs(Path(inp.interactions).parent, inp.split, inp.groups, inp.elsa, inp.item_embeddings, inp.sae),
    out_dirs={f: Path(p).parent for f, p in zip(params.fusions, snakemake.output.per_group)},
    scope=E.EvalScope(wc.dataset, wc.pool, wc.groupset, wc.elsa),
    sagea=E.SageaSettings(
        wc.sae,
        params.sae_hp,
        params.option["topk_inference"],
        params.option["normalize_users_embeddings"],
        params.zero_fallback,
    ),
    settings=E.group_eval_settings(params.settings, params.device, params.popularity_with_targets),
    tracking=E.TrackingSettings(params.mlflow_uri, provenance=params.provenance),
    threads=snakemake.threads,
)
