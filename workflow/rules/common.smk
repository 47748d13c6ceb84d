# Configuration, validation, wildcard constraints and target functions shared by all rules.
import json
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))  # this repo's library, never another
from sagea import plan  # noqa: E402

plan.apply_global_seed(config)
plan.apply_research_mode(config)
validate(config, schema="../schemas/config.schema.yaml")

RESULTS = "results"
LOGS = "logs"
BENCH = "logs/benchmarks"


wildcard_constraints:
    **plan.WILDCARD_CONSTRAINTS,


# ----------------------------------------------------------------------------- helpers
def heavy_resources(base_mem=None):
    """Portable resources of a heavy (training/evaluation) job; memory and time grow per retry."""
    mem = base_mem or config["resources"]["mem_mb"]
    return dict(
        gpu=config["resources"]["gpu"],
        mem_mb=lambda wc, attempt: mem * attempt,
        runtime=lambda wc, attempt: config["resources"]["runtime"] * attempt,
    )


def dataset_spec(wc):
    return plan.dataset_spec(config, wc.dataset)


def elsa_hp(wc):
    return plan.elsa_hp(config, wc.dataset, wc.elsa)


def sae_hp(wc):
    return plan.sae_hp(config, wc.sae)


def main_elsa(dataset):
    return plan.main_elsa(config, dataset)


def mlflow_uri():
    """Tracking URI, or None when MLflow logging is off."""
    m = config["mlflow"]
    return m["tracking_uri"] if m["enabled"] else None


def _mlflow_provenance():
    """Study, git commit, config digest, note templates and group sampling settings of the runs.

    A sagea.tracking.Provenance object (also when MLflow is off): Snakemake leaves it out of its
    params rerun trigger, so a new commit or an unrelated config change reruns no finished job.
    """
    from sagea import tracking

    m = config["mlflow"]
    tracking.check_note_templates(m["note"], m["baseline_note"])
    validated = json.loads(tracking.canonical_json(config))
    return tracking.Provenance(
        study=config["study"],
        **tracking.git_state(workflow.basedir),
        config_digest=tracking.config_digest(validated),
        config=validated,
        note=m["note"],
        baseline_note=m["baseline_note"],
        group_params=tracking.flat_params(
            config["groups"], "groups", skip=("pools", "kinds")
        ),
    )


MLFLOW_PROVENANCE = _mlflow_provenance()


# ----------------------------------------------------------------------------- stage helpers
def sae_split_params(wc):
    """The single-user evaluation split of the dataset (datasets.<name>.split)."""
    split = plan.dataset_spec(config, wc.dataset).get("split") or {}
    return {
        "target_fraction": split.get("target_fraction", 0.2),
        "split_seed": split.get("seed", 42),
    }


def sae_targets():
    targets = []
    for dataset in plan.datasets(config):
        elsa = main_elsa(dataset)
        for sae in plan.sae_runs(config):
            folder = f"results/{dataset}/sae/{elsa}/{sae}"
            targets += [
                f"{folder}/{name}"
                for name in (
                    "model.pt",
                    "metrics.json",
                    "history.parquet",
                    "codes_topk.parquet",
                    "codes_all.parquet",
                    "features.parquet",
                )
            ]
    return targets


def report_targets():
    """Every table (csv, tex, md) and figure (png, svg) of the study."""
    study = config["study"]
    datasets = plan.datasets(config)
    names = _report_tables().table_names(datasets, config["reports"]["comparisons"])
    out = [
        f"{RESULTS}/{study}/tables/{name}.{ext}"
        for name in names
        for ext in ("csv", "tex", "md")
    ]
    out += [
        f"{RESULTS}/{study}/figures/{name}.{ext}"
        for name in _report_figures().figure_names(datasets)
        for ext in ("png", "svg")
    ]
    return out


def _report_tables():
    from sagea.reports import tables

    return tables


def _report_figures():
    from sagea.reports import figures

    return figures


# ----------------------------------------------------------------------------- targets
# Each stage has a `<stage>_targets()` function (in its rules file or above); `rule all` asks for all.
STAGE_TARGETS = (
    "data_targets",
    "elsa_targets",
    "sae_targets",
    "groups_targets",
    "evaluation_targets",
    "report_targets",
    "compare_targets",
)


def all_targets(wildcards=None):
    targets = []
    for name in STAGE_TARGETS:
        fn = globals().get(name)
        if fn is not None:
            targets.extend(fn())
    return targets
