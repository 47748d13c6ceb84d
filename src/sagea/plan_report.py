"""The report stage's plan (pure, from one replicate's validated config; the workflow imports it
while it parses, where only Snakemake is installed): the file stems of a study's tables and
figures, the upstream files the report reads with their metadata, and the report options.

Paths follow docs/ARCHITECTURE.md. Every entry is a dict with ``path`` plus the metadata that
:mod:`sagea.reports.collect` attaches to the rows, so nothing is parsed back from paths.
"""

from __future__ import annotations

from sagea import plan

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


def _eval_dir(results: str, dataset: str, pool: str, groupset: str, elsa: str) -> str:
    """``results`` here is the dataset's replicate folder (:func:`sagea.plan.rep_dir`)."""
    return f"{results}/eval/{pool}/{groupset}/{elsa}"


def per_group_entries(config: dict, results: str = "results") -> list[dict]:
    """Every evaluation's ``per_group.parquet`` of the main ELSA run: SAGEA fusions and baselines."""
    entries = []
    saes = plan.sae_runs(config)
    for dataset in plan.datasets(config):
        elsa = plan.main_elsa(config, dataset)
        for pool in plan.group_pools(config):
            for groupset in plan.group_sets(config):
                base = _eval_dir(plan.rep_dir(config, dataset, results), dataset, pool, groupset, elsa)
                meta = {"dataset": dataset, "pool": pool, "groupset": groupset, "elsa": elsa}
                for sae, hp in saes.items():
                    for option in plan.sagea_options(config):
                        for fusion in plan.fusions(config):
                            entries.append(
                                {
                                    **meta,
                                    "path": f"{base}/{sae}/{option}/{fusion}/per_group.parquet",
                                    "family": "sagea",
                                    "strategy": fusion,
                                    "sae": sae,
                                    "option": option,
                                    **plan.parse_option(option),
                                    "sae_hp": dict(hp),
                                }
                            )
                for strategy in plan.baselines(config):
                    entries.append(
                        {
                            **meta,
                            "path": f"{base}/baselines/{strategy}/per_group.parquet",
                            "family": "baseline",
                            "strategy": strategy,
                        }
                    )
    return entries


def single_user_entries(config: dict, results: str = "results") -> list[dict]:
    """The main ELSA run's ``metrics.json`` and the single-user baselines of every dataset."""
    out = []
    for dataset in plan.datasets(config):
        elsa = plan.main_elsa(config, dataset)
        out.append(
            {
                "dataset": dataset,
                "elsa": elsa,
                "elsa_metrics": f"{plan.rep_dir(config, dataset, results)}/elsa/{elsa}/metrics.json",
                "baselines": f"{plan.rep_dir(config, dataset, results)}/baselines/metrics.json",
            }
        )
    return out


def sae_entries(config: dict, results: str = "results") -> list[dict]:
    """Every SAE variant's ``metrics.json`` (trained on the main ELSA run)."""
    out = []
    for dataset in plan.datasets(config):
        elsa = plan.main_elsa(config, dataset)
        for sae, hp in plan.sae_runs(config).items():
            out.append(
                {
                    "dataset": dataset,
                    "elsa": elsa,
                    "sae": sae,
                    "sae_hp": dict(hp),
                    "path": f"{plan.rep_dir(config, dataset, results)}/sae/{elsa}/{sae}/metrics.json",
                }
            )
    return out


def history_entries(config: dict, results: str = "results") -> list[dict]:
    """``history.parquet`` of every ELSA run and every SAE variant."""
    out = []
    for dataset in plan.datasets(config):
        elsa_main = plan.main_elsa(config, dataset)
        for elsa in plan.elsa_runs(config, dataset):
            out.append(
                {
                    "dataset": dataset,
                    "model": "ELSA",
                    "run": elsa,
                    "path": f"{plan.rep_dir(config, dataset, results)}/elsa/{elsa}/history.parquet",
                }
            )
        for sae in plan.sae_runs(config):
            out.append(
                {
                    "dataset": dataset,
                    "model": "SAE",
                    "run": sae,
                    "path": f"{plan.rep_dir(config, dataset, results)}/sae/{elsa_main}/{sae}/history.parquet",
                }
            )
    return out


def groups_entries(config: dict, results: str = "results") -> list[dict]:
    """Every group set parquet of every pool."""
    return [
        {
            "dataset": dataset,
            "pool": pool,
            "groupset": groupset,
            "path": f"{plan.rep_dir(config, dataset, results)}/groups/{pool}/{groupset}.parquet",
        }
        for dataset in plan.datasets(config)
        for pool in plan.group_pools(config)
        for groupset in plan.group_sets(config)
    ]


def report_entries(config: dict, results: str = "results") -> dict[str, list[dict]]:
    """All inputs of the collect step, by collected table name."""
    return {
        "per_group": per_group_entries(config, results),
        "single_user": single_user_entries(config, results),
        "sae": sae_entries(config, results),
        "history": history_entries(config, results),
        "groups": groups_entries(config, results),
    }


def entry_paths(entries: list[dict]) -> list[str]:
    """The files an entry list reads (for a rule's ``input:``)."""
    paths = []
    for e in entries:
        paths += [e[k] for k in ("path", "elsa_metrics", "baselines") if k in e]
    return list(dict.fromkeys(paths))


def options_from_config(config: dict) -> dict:
    """Keyword arguments of :class:`sagea.reports.options.ReportOptions` from a validated config."""
    r = config["reports"]
    return {
        "k": config["evaluation"]["k"],
        "test": r["test"],
        "correction": r["correction"],
        "alpha": r["alpha"],
        "bootstrap": r["bootstrap"],
        "seed": config["seed"],
        "selection_pool": r.get("selection_pool", "valid"),
        "report_pool": r.get("report_pool", "test"),
        "allow_selection_on_report_pool": r.get("allow_selection_on_report_pool", False),
        "main_option": plan.sagea_options(config)[0],
        "comparisons": [dict(c) for c in r["comparisons"]],
    }
