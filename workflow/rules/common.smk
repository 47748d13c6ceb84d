# Configuration, validation, wildcard constraints and target functions shared by all rules.
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir).parent / "src"))
from sagea import plan  # noqa: E402


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


# ----------------------------------------------------------------------------- targets
# Each rules file defines a `<stage>_targets()` function; `rule all` asks for all of them.
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
