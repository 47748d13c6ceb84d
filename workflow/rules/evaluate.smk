import re

# Evaluation stage (docs/ARCHITECTURE.md): group recommendation on every group set with every
# SAGEA fusion of every SAE variant and option (one job per pool and ELSA main run) and every
# baseline (one job per pool and ELSA main run). Logic lives in sagea.stages.evaluate (one
# variant on one group set) and sagea.stages.evaluate_batch (every group set and variant of a
# job); one MLflow run per strategy folder.

# The evaluation folders of one pool (group set and strategy folders below it).
EVAL_POOL_DIR = "results/{dataset}/{rep}/eval/{pool}"
EVAL_FILES = ("per_group.parquet", "recommendations.parquet", "summary.json")


# GroupEvalSettings fields (sagea.evaluation.group) from config evaluation.* and groups.split.
evaluation_settings = lambda wc: {
    "k": config["evaluation"]["k"],
    "batch_groups": config["evaluation"]["batch_groups"],
    "target_ratio": config["groups"]["split"]["target_ratio"],
    "split_seed": rep_config(wc)["groups"]["split"]["seed"],
    "shared_mask": config["groups"]["split"]["shared_mask"],
    "hit_rate_needs_two": config["evaluation"]["research"]["hit_rate_needs_two"],
    "m": config["evaluation"]["m_proportionality"]["m"],
    "top_n": config["evaluation"]["m_proportionality"]["top_n"],
}

# SAGEA strategy folders below the ELSA run: SAE variant x option x fusion (default: cfg's SAEs).
sagea_strategies = lambda cfg, saes=None: [
    f"{sae}/{option}/{fusion}"
    for sae in (plan.sae_runs(cfg) if saes is None else saes)
    for option in plan.sagea_options(cfg)
    for fusion in plan.fusions(cfg)
]

# What `rule all` needs: every strategy folder of every (dataset, pool, group set) on the
# dataset's main ELSA run — baselines, and SAE variant x SAGEA option x fusion.
evaluation_targets = lambda: [
    f"{plan.rep_dir(rep, dataset, RESULTS)}/eval/{pool}/{groupset}/{plan.main_elsa(rep, dataset)}/{strategy}/{name}"
    for rep, dataset in replicate_datasets()
    for pool in plan.group_pools(rep)
    for groupset in plan.group_sets(rep)
    for strategy in [f"baselines/{b}" for b in plan.baselines(rep)]
    + sagea_strategies(rep)
    for name in EVAL_FILES
]

# Named outputs per_group / recommendations / summary of a pool's job: one file per group set
# and strategy folder, group set outermost (the scripts rely on the order).
eval_outputs = lambda groupsets, strategies: {
    key: [
        f"{EVAL_POOL_DIR}/{groupset}/{{elsa}}/{strategy}/{file}"
        for groupset in groupsets
        for strategy in strategies
    ]
    for key, file in zip(("per_group", "recommendations", "summary"), EVAL_FILES)
}


# One job per (dataset, replicate, pool, ELSA run) evaluates every group set of the pool: the
# pool's groups come from one sample_groups job, and a job's start-up (Python, torch, MLflow)
# costs more than evaluating a small group set (BENCHMARKS.md, "Per-job overhead"). A rule's
# outputs are fixed when the workflow is parsed, and the SAE variant ids of a replicate carry its
# SAE seed where that is not the default (`seeds: [42, 43]`: topk-h128-k8-l2 and
# topk-h128-k8-l2-s43): one evaluate_sagea rule per distinct (SAE ids, group sets), for the
# replicates ({rep}) that have it. Usually there is one; further ones are evaluate_sagea_2, _3, ...
SAGEA_EVAL_SETS = {}
BASELINE_EVAL_SETS = {}
for _rep, _dataset in replicate_datasets():
    _tag = plan.rep_tag(_rep, _dataset)
    _sets = tuple(plan.group_sets(_rep))
    SAGEA_EVAL_SETS.setdefault((tuple(plan.sae_runs(_rep)), _sets), set()).add(_tag)
    BASELINE_EVAL_SETS.setdefault(_sets, set()).add(_tag)

for _i, ((_saes, _groupsets), _reps) in enumerate(SAGEA_EVAL_SETS.items()):

    rule:
        """Recommend to every group set of a pool with every SAGEA fusion of every SAE variant and option; one folder and MLflow run per fusion."""
        name:
            "evaluate_sagea" if _i == 0 else f"evaluate_sagea_{_i + 1}"
        input:
            interactions=data_file("interactions.parquet"),
            user_table=data_file("users.parquet"),
            item_table=data_file("items.parquet"),
            split="results/{dataset}/{rep}/split.parquet",
            groups=expand(
                "results/{{dataset}}/{{rep}}/groups/{{pool}}/{groupset}.parquet",
                groupset=_groupsets,
            ),
            elsa="results/{dataset}/{rep}/elsa/{elsa}/model.pt",
            item_embeddings="results/{dataset}/{rep}/elsa/{elsa}/item_embeddings.parquet",
            sae=expand(
                "results/{{dataset}}/{{rep}}/sae/{{elsa}}/{sae}/model.pt", sae=_saes
            ),
        output:
            # <groupset>/<elsa>/<sae>/<option>/<fusion>, group set then SAE variant outermost
            **eval_outputs(_groupsets, sagea_strategies(config, _saes)),
            **mlflow_spool(
                "results/{dataset}/{rep}/eval/{pool}/mlflow/{elsa}-sagea.json"
            ),
        log:
            "logs/{dataset}/{rep}/eval/{pool}/{elsa}/sagea.log",
        benchmark:
            "logs/benchmarks/{dataset}/{rep}/eval/{pool}/{elsa}/sagea.tsv"
        wildcard_constraints:
            rep="|".join(re.escape(tag) for tag in sorted(_reps)),
        conda:
            "../envs/sagea.yaml"
        threads: config["resources"]["threads"]
        resources:
            **heavy_resources(),
        params:
            groupsets=list(_groupsets),
            saes=list(_saes),
            options=[plan.parse_option(o) for o in plan.sagea_options(config)],
            fusions=plan.fusions(config),
            settings=evaluation_settings,
            sae_hp=lambda wc: plan.sae_runs(rep_config(wc)),
            zero_fallback=config["evaluation"]["sagea"]["zero_fallback"],
            popularity_with_targets=config["evaluation"]["research"][
                "popularity_with_targets"
            ],
            device=config["device"],
            mlflow_uri=mlflow_uri(),
            provenance=MLFLOW_PROVENANCE,
        script:
            "../scripts/evaluate_sagea.py"


for _i, (_groupsets, _reps) in enumerate(BASELINE_EVAL_SETS.items()):

    rule:
        """Recommend to every group set of a pool with every baseline (ELSA, ADD, GFAR, ...); one folder and MLflow run each."""
        name:
            "evaluate_baselines" if _i == 0 else f"evaluate_baselines_{_i + 1}"
        input:
            interactions=data_file("interactions.parquet"),
            user_table=data_file("users.parquet"),
            item_table=data_file("items.parquet"),
            split="results/{dataset}/{rep}/split.parquet",
            groups=expand(
                "results/{{dataset}}/{{rep}}/groups/{{pool}}/{groupset}.parquet",
                groupset=_groupsets,
            ),
            elsa="results/{dataset}/{rep}/elsa/{elsa}/model.pt",
            item_embeddings="results/{dataset}/{rep}/elsa/{elsa}/item_embeddings.parquet",
        output:
            # <groupset>/<elsa>/baselines/<baseline>, group set outermost
            **eval_outputs(
                _groupsets, [f"baselines/{b}" for b in plan.baselines(config)]
            ),
            **mlflow_spool(
                "results/{dataset}/{rep}/eval/{pool}/mlflow/{elsa}-baselines.json"
            ),
        log:
            "logs/{dataset}/{rep}/eval/{pool}/{elsa}/baselines.log",
        benchmark:
            "logs/benchmarks/{dataset}/{rep}/eval/{pool}/{elsa}/baselines.tsv"
        wildcard_constraints:
            rep="|".join(re.escape(tag) for tag in sorted(_reps)),
        conda:
            "../envs/sagea.yaml"
        threads: config["resources"]["threads"]
        resources:
            **heavy_resources(),
        params:
            groupsets=list(_groupsets),
            strategies=plan.baselines(config),
            settings=evaluation_settings,
            popularity_with_targets=config["evaluation"]["research"][
                "popularity_with_targets"
            ],
            elsa_seen_at_zero=config["evaluation"]["research"]["elsa_seen_at_zero"],
            aggregation_seen_at_zero=config["evaluation"]["research"][
                "aggregation_seen_at_zero"
            ],
            device=config["device"],
            mlflow_uri=mlflow_uri(),
            provenance=MLFLOW_PROVENANCE,
        script:
            "../scripts/evaluate_baselines.py"
