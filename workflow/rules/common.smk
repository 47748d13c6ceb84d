# Configuration, validation, wildcard constraints and target functions shared by all rules.
import json
import os
import sys
from pathlib import Path

from snakemake.utils import validate

# This workflow's own library, never another checkout's or an installed copy: first on the path
# here (parsing needs only sagea.plan and other pure modules) and on every job's PYTHONPATH (jobs
# inherit the environment), so rules run in any env that has the dependencies
# (workflow/envs/sagea.yaml), wherever it lives.
SAGEA_SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SAGEA_SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in (SAGEA_SRC, os.environ.get("PYTHONPATH")) if p
    )
)
from sagea import plan  # noqa: E402
from sagea.reports import names as report_names  # noqa: E402

plan.apply_global_seed(config)
plan.apply_research_mode(config)
plan.check_names(config)
validate(config, schema="../schemas/config.schema.yaml")
plan.check_imports(config)


def _prepared_users():
    """User counts of datasets already prepared (their cards), for pool-size checks."""
    import json

    counts = {}
    for dataset in plan.datasets(config):
        card = Path("results", dataset, "data", "card.json")
        if card.exists():
            try:
                counts[dataset] = json.loads(card.read_text())["counts"]["users"]
            except (ValueError, KeyError):
                pass  # a damaged card is rebuilt by its rule; check what the config alone says
    return counts


plan.check_config(config, _prepared_users())

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


def sae_import(wc):
    """The research checkpoint replacing this SAE's training (datasets.<name>.sae_import), or None."""
    return plan.sae_import(config, wc.dataset, wc.sae)


def elsa_import(wc):
    """The research checkpoint replacing this ELSA run's training (datasets.<name>.elsa_import), or None."""
    return plan.elsa_import(config, wc.dataset, wc.elsa)


def import_input(entry):
    """Input function: the research file of an import entry (so Snakemake tracks it), else nothing."""
    return lambda wc: {"research": entry(wc)["path"]} if entry(wc) else {}


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
    split = plan.split_settings(config, wc.dataset)
    params = {
        "target_fraction": split.get("target_fraction", 0.2),
        "split_seed": split.get("seed", 42),
    }
    if "target_method" in split:  # absent at the default, so older results stay up to date
        params["target_method"] = split["target_method"]
    return params


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
    names = report_names.table_names(datasets, config["reports"]["comparisons"])
    out = [
        f"{RESULTS}/{study}/tables/{name}.{ext}"
        for name in names
        for ext in ("csv", "tex", "md", "html")
    ]
    out += [
        f"{RESULTS}/{study}/figures/{name}.{ext}"
        for name in report_names.figure_names(datasets)
        for ext in ("png", "svg")
    ]
    out.append(f"{RESULTS}/{study}/report/front.rst")
    return out


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
