"""What the ``explain`` config section asks for: the SAE and pool explained, job settings, targets.

Pure functions of a validated replicate config (used by ``workflow/rules/explain.smk`` and tests).
"""

from __future__ import annotations

from sagea import plan
from sagea import plan_compare

#: Files of one explain_groups job (key -> name).
EXPLAIN_FILES = {
    "deletion": "deletion.parquet",
    "shared": "shared.parquet",
    "clusters": "clusters.parquet",
    "recovery": "recovery.json",
    "examples": "examples.json",
}
#: The report tables of explain_report (file stems ``explain_<name>-<dataset>``).
EXPLAIN_TABLES = ("deletion", "clusters", "shared")
TABLE_FORMATS = ("csv", "tex", "md", "html")


def enabled(config: dict) -> bool:
    return bool(config["explain"]["enabled"]) and bool(plan.group_sets(config))


def choice(config: dict, dataset: str) -> tuple[str, str, str, dict]:
    """``(pool, elsa run, sae run, option)`` explained for one replicate config and dataset."""
    ex = config["explain"]
    pools = plan.group_pools(config)
    pool = ex["pool"] or config["reports"]["report_pool"]
    pool = pool if pool in pools else pools[-1]
    saes = list(plan.sae_runs(config))
    sae = ex["sae"] or saes[0]
    if sae not in saes:
        raise ValueError(f"config key explain.sae: {sae!r} is not an SAE of sae.grid ({saes}); set one of them or null")
    return pool, plan.main_elsa(config, dataset), sae, plan.parse_option(plan.sagea_options(config)[0])


def folder(config: dict, dataset: str, results: str = "results") -> str:
    """``<rep dir>/explain/<pool>/<elsa>/<sae>``: the explain_groups job's output folder."""
    pool, elsa, sae, _ = choice(config, dataset)
    return f"{plan.rep_dir(config, dataset, results)}/explain/{pool}/{elsa}/{sae}"


def labels_path(config: dict, dataset: str, sae: str, results: str = "results", elsa: str | None = None) -> str:
    """``feature_labels.parquet`` of an SAE (on the main ELSA run unless ``elsa`` is given)."""
    elsa = elsa or plan.main_elsa(config, dataset)
    return f"{plan.rep_dir(config, dataset, results)}/sae/{elsa}/{sae}/feature_labels.parquet"


def labelled_saes(config: dict, dataset: str) -> list[tuple[str, str]]:
    """``(elsa run, sae run)`` of every SAE the workflow trains for the dataset: the grid on the main
    ELSA run, and where the SAE comparison asks for them the grid on ``compare.sae_elsa_runs``."""
    if config["compare"].get("sae") and len(plan_compare.sae_members(config, dataset)) > 1:
        return [(elsa, sae) for elsa, sae, _ in plan_compare.sae_members(config, dataset).values()]
    return [(plan.main_elsa(config, dataset), sae) for sae in plan.sae_runs(config)]


def job_settings(config: dict, dataset: str) -> dict:
    """Keyword arguments of :func:`sagea.explain.jobs.explain_job` from the config."""
    _, _, _, option = choice(config, dataset)
    ex, split = config["explain"], config["groups"]["split"]
    return {
        "fusion": ex["fusion"],
        "topk_inference": option["topk_inference"],
        "normalize_users_embeddings": option["normalize_users_embeddings"],
        "zero_fallback": config["evaluation"]["sagea"]["zero_fallback"],
        "k": config["evaluation"]["k"],
        "target_ratio": split["target_ratio"],
        "split_seed": split["seed"],
        "shared_mask": split["shared_mask"],
        "batch_groups": config["evaluation"]["batch_groups"],
        "ms": list(ex["deletion"]["m"]),
        "n_random": ex["deletion"]["random_draws"],
        "seed": config["seed"],
        "n_examples": ex["examples"],
        "n_features": ex["features_per_card"],
        "pure": ex["pure"],
    }


def label_inputs(config: dict, dataset: str, results: str = "results") -> dict[str, str]:
    """Optional tracked inputs of label_features: the raw dataset (for tags.csv), the metadata file."""
    out = dict(plan.raw_input(config, dataset, results))
    if config["explain"]["labels"]["file"]:
        out["metadata"] = config["explain"]["labels"]["file"]
    return out


def report_inputs(config: dict, dataset: str, results: str = "results") -> dict[str, str]:
    """Inputs of explain_report: the explain_groups files and the explained SAE's labels."""
    out = folder(config, dataset, results)
    sae = choice(config, dataset)[2]
    return {**{k: f"{out}/{name}" for k, name in EXPLAIN_FILES.items()}, "labels": labels_path(config, dataset, sae, results)}


def targets(config: dict, results: str = "results") -> list[str]:
    """Every file the explanations of one replicate config need: labels of every SAE, the
    explain_groups files and the report items per dataset."""
    if not enabled(config):
        return []
    out = []
    study = f"{results}/{config['study']}/{plan.study_tag(config)}"
    for dataset in plan.datasets(config):
        out += [labels_path(config, dataset, sae, results, elsa) for elsa, sae in labelled_saes(config, dataset)]
        out += [f"{folder(config, dataset, results)}/{name}" for name in EXPLAIN_FILES.values()]
        out += [f"{study}/tables/explain_{t}-{dataset}.{ext}" for t in EXPLAIN_TABLES for ext in TABLE_FORMATS]
        out.append(f"{study}/explain/cards-{dataset}.html")
    return out
