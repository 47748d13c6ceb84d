"""The file stems of a study's tables and figures (pure: the workflow imports this when it parses,
where only Snakemake is installed)."""

from __future__ import annotations

GLOBAL_TABLES = ("single_user", "sae_reconstruction", "common_features", "fusions", "timing")
DATASET_TABLES = ("sagea_grid", "overall", "fairness")
FIGURE_KINDS = ("heatmap", "bars", "group_similarity", "training")


def table_names(datasets: list[str], comparisons: list[dict]) -> list[str]:
    """Every table file stem of a study."""
    names = list(GLOBAL_TABLES)
    names += [f"{t}-{d}" for t in DATASET_TABLES for d in datasets]
    names += [f"comparison-{c['name']}" for c in comparisons]
    return names


def figure_names(datasets: list[str]) -> list[str]:
    """Every figure file stem of a study."""
    return [f"{kind}-{d}" for kind in FIGURE_KINDS for d in datasets]


def seeds_table_names(datasets: list[str]) -> list[str]:
    """Tables across the seeds of a multi-seed study (``results/<study>/seeds/tables/``)."""
    return [f"overall-{d}" for d in datasets]
