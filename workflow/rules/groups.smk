# Group stage (docs/ARCHITECTURE.md, REFERENCE.md §4): one job per (dataset, pool) samples every
# group set of plan.group_sets(config) from the main ELSA run's user embeddings. Logic lives in
# sagea.groups.sampling (via sagea.stages.groups).


GROUP_DIAGNOSTICS = (
    "groups_summary.json",
    "similarity_histograms.png",
    "opposing_subgroups.png",
)


# What `rule all` needs from this stage: every group set, summary and figure of every (dataset, pool).
groups_targets = lambda: [
    f"results/{dataset}/groups/{pool}/{name}"
    for dataset in plan.datasets(config)
    for pool in plan.group_pools(config)
    for name in [f"{s}.parquet" for s in plan.group_sets(config)]
    + list(GROUP_DIAGNOSTICS)
]

# Keyword arguments of sagea.groups.sampling.sample_group_sets from the groups section.
groups_sampling_params = lambda: dict(
    max_pool_users=config["groups"]["max_pool_users"],
    similar_quantile=config["groups"]["similar_quantile"],
    divergent_quantile=config["groups"]["divergent_quantile"],
    n_pairs=config["groups"]["n_pairs"],
    seed=config["groups"]["seed"],
    final_group_count=config["groups"]["final_group_count"],
    common_interactions=config["groups"]["common_interactions"],
    max_draws=config["groups"]["max_draws"],
    max_restarts=config["groups"]["max_restarts"],
    max_overlap=config["groups"]["max_overlap"],
    max_candidates=config["groups"]["budget"]["max_candidates"],
    max_seconds=config["groups"]["budget"]["max_seconds"],
    target_ratio=config["groups"]["split"]["target_ratio"],
    split_seed=config["groups"]["split"]["seed"],
    shared_mask=config["groups"]["split"]["shared_mask"],
)


# datasets.<name>.groups_import: the research group files of one pool (tracked as inputs), or none.
groups_import_files = lambda wc: plan.groups_import_files(
    config, wc.dataset, wc.pool, plan.group_sets(config)
)


rule sample_groups:
    """Sample every group set (similar, divergent, random, opposing) of one user pool, with diagnostics."""
    input:
        research=groups_import_files,
        embeddings=lambda wc: f"results/{wc.dataset}/elsa/{main_elsa(wc.dataset)}/user_embeddings.parquet",
        interactions="results/{dataset}/data/interactions.parquet",
        user_table="results/{dataset}/data/users.parquet",
        item_table="results/{dataset}/data/items.parquet",
        split="results/{dataset}/data/split.parquet",
    output:
        groups=expand(
            "results/{{dataset}}/groups/{{pool}}/{groupset}.parquet",
            groupset=plan.group_sets(config),
        ),
        summary="results/{dataset}/groups/{pool}/groups_summary.json",
        histograms=report(
            "results/{dataset}/groups/{pool}/similarity_histograms.png",
            caption="../report/groups_diagnostics.rst",
            category="Groups",
            subcategory="{dataset} {pool}",
            labels={
                "dataset": "{dataset}",
                "pool": "{pool}",
                "figure": "group similarity histograms",
            },
        ),
        subgroups=report(
            "results/{dataset}/groups/{pool}/opposing_subgroups.png",
            caption="../report/groups_diagnostics.rst",
            category="Groups",
            subcategory="{dataset} {pool}",
            labels={
                "dataset": "{dataset}",
                "pool": "{pool}",
                "figure": "opposing subgroup similarity",
            },
        ),
    log:
        "logs/{dataset}/groups/{pool}.log",
    benchmark:
        "logs/benchmarks/{dataset}/groups/{pool}.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: 1
    resources:
        **heavy_resources(),
    params:
        group_sets=plan.group_sets(config),
        research=lambda wc: plan.dataset_spec(config, wc.dataset).get("groups_import"),
        sampling=groups_sampling_params(),
    script:
        "../scripts/sample_groups.py"
