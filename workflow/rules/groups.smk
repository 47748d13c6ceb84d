# Group stage (docs/ARCHITECTURE.md, docs/method.md §4): one job per (dataset, pool) samples every
# group set of plan.group_sets(config) from the main ELSA run's user embeddings. Logic lives in
# sagea.groups (via sagea.stages.groups).


GROUP_DIAGNOSTICS = (
    "groups_summary.json",
    "similarity_histograms.png",
    "opposing_subgroups.png",
)


# What `rule all` needs from this stage: every group set, summary and figure of every (dataset, pool).
groups_targets = lambda: [
    f"{plan.rep_dir(rep, dataset, RESULTS)}/groups/{pool}/{name}"
    for rep, dataset in replicate_datasets()
    for pool in plan.group_pools(rep)
    for name in [f"{s}.parquet" for s in plan.group_sets(rep)] + list(GROUP_DIAGNOSTICS)
]

# Keyword arguments of sagea.groups.sampling.sample_group_sets from a groups section (a replicate's).
groups_sampling_params = lambda g: dict(
    max_pool_users=g["max_pool_users"],
    similar_quantile=g["similar_quantile"],
    divergent_quantile=g["divergent_quantile"],
    n_pairs=g["n_pairs"],
    seed=g["seed"],
    final_group_count=g["final_group_count"],
    common_interactions=g["common_interactions"],
    max_draws=g["max_draws"],
    max_restarts=g["max_restarts"],
    max_overlap=g["max_overlap"],
    max_candidates=g["budget"]["max_candidates"],
    max_seconds=g["budget"]["max_seconds"],
    target_ratio=g["split"]["target_ratio"],
    split_seed=g["split"]["seed"],
    shared_mask=g["split"]["shared_mask"],
)


# datasets.<name>.groups_import: the research group files of one pool (tracked as inputs), or none.
groups_import_files = lambda wc: plan.groups_import_files(
    rep_config(wc), wc.dataset, wc.pool, plan.group_sets(config)
)


rule sample_groups:
    """Sample every group set (similar, divergent, random, opposing) of one user pool, with diagnostics."""
    input:
        research=groups_import_files,
        embeddings=lambda wc: f"results/{wc.dataset}/{wc.rep}/elsa/{main_elsa(wc)}/user_embeddings.parquet",
        interactions=data_file("interactions.parquet"),
        user_table=data_file("users.parquet"),
        item_table=data_file("items.parquet"),
        split="results/{dataset}/{rep}/split.parquet",
    output:
        groups=expand(
            "results/{{dataset}}/{{rep}}/groups/{{pool}}/{groupset}.parquet",
            groupset=plan.group_sets(config),
        ),
        summary="results/{dataset}/{rep}/groups/{pool}/groups_summary.json",
        histograms=report(
            "results/{dataset}/{rep}/groups/{pool}/similarity_histograms.png",
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
            "results/{dataset}/{rep}/groups/{pool}/opposing_subgroups.png",
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
        "logs/{dataset}/{rep}/groups/{pool}.log",
    benchmark:
        "logs/benchmarks/{dataset}/{rep}/groups/{pool}.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: 1
    resources:
        **heavy_resources(),
    params:
        group_sets=plan.group_sets(config),
        research=lambda wc: plan.dataset_spec(config, wc.dataset).get("groups_import"),
        sampling=lambda wc: groups_sampling_params(rep_config(wc)["groups"]),
    script:
        "../scripts/sample_groups.py"
