# Evaluation stage (docs/ARCHITECTURE.md): group recommendation on every group set with every
# SAGEA fusion (one job per ELSA main run x SAE variant x option) and every baseline (one job
# per ELSA main run). Logic lives in sagea.stages.evaluate; one MLflow run per strategy folder.

# Output folders with escaped wildcards (expand() fills only the strategy name).
EVAL_SAGEA_DIR = "results/{{dataset}}/eval/{{pool}}/{{groupset}}/{{elsa}}/{{sae}}/{{option}}"
EVAL_BASELINES_DIR = "results/{{dataset}}/eval/{{pool}}/{{groupset}}/{{elsa}}/baselines"
EVAL_FILES = ("per_group.parquet", "recommendations.parquet", "summary.json")


def evaluation_settings(wc=None):
    """GroupEvalSettings fields from config (evaluation.*, groups.split)."""
    e, split = config["evaluation"], config["groups"]["split"]
    return {
        "k": e["k"],
        "batch_groups": e["batch_groups"],
        "target_ratio": split["target_ratio"],
        "split_seed": split["seed"],
        "shared_mask": split["shared_mask"],
        "hit_rate_needs_two": e["research"]["hit_rate_needs_two"],
        "m": e["m_proportionality"]["m"],
        "top_n": e["m_proportionality"]["top_n"],
    }


def _eval_folder_files(folder):
    return [f"{folder}/{name}" for name in EVAL_FILES]


def evaluation_targets():
    """Every strategy folder of every (dataset, pool, group set) on the main ELSA run."""
    targets = []
    for dataset in plan.datasets(config):
        elsa = main_elsa(dataset)
        for pool in plan.group_pools(config):
            for groupset in plan.group_sets(config):
                base = f"results/{dataset}/eval/{pool}/{groupset}/{elsa}"
                for strategy in plan.baselines(config):
                    targets += _eval_folder_files(f"{base}/baselines/{strategy}")
                for sae in plan.sae_runs(config):
                    for option in plan.sagea_options(config):
                        for fusion in plan.fusions(config):
                            targets += _eval_folder_files(f"{base}/{sae}/{option}/{fusion}")
    return targets


def _eval_outputs(folder, names):
    """Named outputs per_group / recommendations / summary: one file per strategy folder."""
    return {
        key: expand(f"{folder}/{{name}}/{file}", name=names)
        for key, file in zip(("per_group", "recommendations", "summary"), EVAL_FILES)
    }


rule evaluate_sagea:
    input:
        interactions="results/{dataset}/data/interactions.parquet",
        user_table="results/{dataset}/data/users.parquet",
        item_table="results/{dataset}/data/items.parquet",
        split="results/{dataset}/data/split.parquet",
        groups="results/{dataset}/groups/{pool}/{groupset}.parquet",
        elsa="results/{dataset}/elsa/{elsa}/model.pt",
        item_embeddings="results/{dataset}/elsa/{elsa}/item_embeddings.parquet",
        sae="results/{dataset}/sae/{elsa}/{sae}/model.pt",
    output:
        **_eval_outputs(EVAL_SAGEA_DIR, plan.fusions(config)),
    params:
        fusions=plan.fusions(config),
        settings=evaluation_settings,
        option=lambda wc: plan.parse_option(wc.option),
        sae_hp=sae_hp,
        zero_fallback=config["evaluation"]["sagea"]["zero_fallback"],
        popularity_with_targets=config["evaluation"]["research"]["popularity_with_targets"],
        device=config["device"],
        mlflow_uri=mlflow_uri(),
    threads: 2
    resources:
        **heavy_resources(),
    log:
        "logs/{dataset}/eval/{pool}/{groupset}/{elsa}/{sae}/{option}.log",
    benchmark:
        "logs/benchmarks/{dataset}/eval/{pool}/{groupset}/{elsa}/{sae}/{option}.tsv"
    script:
        "../scripts/evaluate_sagea.py"


rule evaluate_baselines:
    input:
        interactions="results/{dataset}/data/interactions.parquet",
        user_table="results/{dataset}/data/users.parquet",
        item_table="results/{dataset}/data/items.parquet",
        split="results/{dataset}/data/split.parquet",
        groups="results/{dataset}/groups/{pool}/{groupset}.parquet",
        elsa="results/{dataset}/elsa/{elsa}/model.pt",
        item_embeddings="results/{dataset}/elsa/{elsa}/item_embeddings.parquet",
    output:
        **_eval_outputs(EVAL_BASELINES_DIR, plan.baselines(config)),
    params:
        strategies=plan.baselines(config),
        settings=evaluation_settings,
        popularity_with_targets=config["evaluation"]["research"]["popularity_with_targets"],
        device=config["device"],
        mlflow_uri=mlflow_uri(),
    threads: 2
    resources:
        **heavy_resources(),
    log:
        "logs/{dataset}/eval/{pool}/{groupset}/{elsa}/baselines.log",
    benchmark:
        "logs/benchmarks/{dataset}/eval/{pool}/{groupset}/{elsa}/baselines.tsv"
    script:
        "../scripts/evaluate_baselines.py"
