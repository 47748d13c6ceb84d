"""The compare stage's plan: what the ``compare`` config section asks for (the runs and
dictionaries to compare, the target files).

Pure functions of the validated config (imported by ``workflow/rules/compare.smk`` while it parses).
"""

from __future__ import annotations

from sagea import plan


def elsa_runs(config: dict, dataset: str) -> dict[str, dict]:
    """ELSA run id -> hyperparameters of every run of the dataset; the first (main run) is the reference."""
    return plan.elsa_runs(config, dataset)


def sae_members(config: dict, dataset: str) -> dict[str, tuple[str, str, dict]]:
    """Comparison id ``<elsa>/<sae>`` -> ``(elsa, sae, hyperparameters)`` of every SAE compared.

    The SAE grid on the main ELSA run, plus the grid on each run of ``compare.sae_elsa_runs``.
    ELSA hyperparameters enter as ``elsa_<key>``, so seed pairs and the varied-parameter labels
    see them.
    """
    runs = plan.elsa_runs(config, dataset)
    elsas = [plan.main_elsa(config, dataset)]
    for extra in config["compare"].get("sae_elsa_runs", []):
        if extra not in runs:
            raise ValueError(
                f"config key compare.sae_elsa_runs: {extra!r} is not an ELSA run of dataset "
                f"{dataset!r}; known runs: {list(runs)} (declare it under elsa.extra_runs)"
            )
        if extra not in elsas:
            elsas.append(extra)
    members = {}
    for elsa in elsas:
        elsa_part = {f"elsa_{k}": v for k, v in runs[elsa].items()}
        for sae, hp in plan.sae_runs(config).items():
            members[f"{elsa}/{sae}"] = (elsa, sae, {**elsa_part, **hp})
    return members


def targets(config: dict, results: str = "results") -> list[str]:
    """Files ``rule all`` needs from the compare stage (nothing where fewer than two runs exist)."""
    out: list[str] = []
    c = config["compare"]
    for dataset in plan.datasets(config):
        folder = f"{plan.rep_dir(config, dataset, results)}/compare"
        if c.get("elsa") and len(elsa_runs(config, dataset)) > 1:
            out += [f"{folder}/elsa.{ext}" for ext in ("parquet", "csv", "md", "png")]
        if c.get("sae") and len(sae_members(config, dataset)) > 1:
            out += [f"{folder}/sae.{ext}" for ext in ("parquet", "csv", "md", "png")]
            out.append(f"{folder}/sae_pairs.png")
    return out
