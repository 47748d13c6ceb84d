# Configuration, validation, wildcard constraints and target functions shared by all rules.
import json
import copy
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
from sagea import plan_report  # noqa: E402

# The config as written, before seeds and defaults are filled in (one replicate per seed below).
RAW_CONFIG = copy.deepcopy(dict(config))
if isinstance(RAW_CONFIG.get("seeds"), list):  # --config 'seeds=[42,43]' gives strings
    RAW_CONFIG["seeds"] = [
        int(s) if isinstance(s, str) and s.lstrip("-").isdigit() else s
        for s in RAW_CONFIG["seeds"]
    ]
plan.check_names(config)


def _validated(raw, seed):
    """One replicate's config: stage seeds from ``seed``, research switches, schema defaults."""
    rep = plan.replicate_config(raw, seed)
    validate(rep, schema="../schemas/config.schema.yaml")
    plan.check_imports(rep)
    plan.check_strategies(rep)  # names from sagea.registry
    return rep


# `seeds: [42, 43, 44]` runs the whole chain once per seed (a replicate); without it, `seed` alone.
# `config` is the first replicate's; rules read seed-dependent values from `rep_config(wildcards)`.
REPLICATES = [
    _validated(RAW_CONFIG, seed)
    for seed in plan.replicate_seeds(_validated(RAW_CONFIG, RAW_CONFIG.get("seed", 42)))
]
config.clear()
config.update(REPLICATES[0])


def _prepared_users(rep):
    """User counts of datasets already prepared (their cards), for pool-size checks."""
    import json

    counts = {}
    for dataset in plan.datasets(rep):
        card = Path(plan.data_dir(rep, dataset), "card.json")
        if card.exists():
            try:
                counts[dataset] = json.loads(card.read_text())["counts"]["users"]
            except (ValueError, KeyError):
                pass  # a damaged card is rebuilt by its rule; check what the config alone says
    return counts


for _rep in REPLICATES:
    plan.check_config(_rep, _prepared_users(_rep))

#: (dataset, replicate tag) -> that replicate's config; study tag (s<seed>) -> config.
REP_CONFIGS = {
    (dataset, plan.rep_tag(rep, dataset)): rep
    for rep in REPLICATES
    for dataset in plan.datasets(rep)
}
STUDY_CONFIGS = {plan.study_tag(rep): rep for rep in REPLICATES}


def rep_config(wc):
    """The config of the replicate a job belongs to (its {dataset} and {rep} wildcards)."""
    try:
        return REP_CONFIGS[(wc.dataset, wc.rep)]
    except KeyError:
        raise ValueError(
            f"results/{wc.dataset}/{wc.rep}/ belongs to no replicate of this config "
            f"(planned: {sorted(tag for d, tag in REP_CONFIGS if d == wc.dataset)}); "
            "check `seed` / `seeds` and the stage seeds"
        ) from None


def study_config(wc):
    """The config of the replicate a report job belongs to (its {srep} wildcard)."""
    return STUDY_CONFIGS[wc.srep]


def data_file(name):
    """Input function: a prepared-data file of the job's dataset (plan.data_dir)."""
    return lambda wc: f"{plan.data_dir(rep_config(wc), wc.dataset, RESULTS)}/{name}"


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
    return plan.dataset_spec(rep_config(wc), wc.dataset)


def elsa_hp(wc):
    return plan.elsa_hp(rep_config(wc), wc.dataset, wc.elsa)


def sae_hp(wc):
    return plan.sae_hp(rep_config(wc), wc.sae)


def sae_import(wc):
    """The research checkpoint replacing this SAE's training (datasets.<name>.sae_import), or None."""
    return plan.sae_import(rep_config(wc), wc.dataset, wc.sae)


def elsa_import(wc):
    """The research checkpoint replacing this ELSA run's training (datasets.<name>.elsa_import), or None."""
    return plan.elsa_import(rep_config(wc), wc.dataset, wc.elsa)


def import_input(entry):
    """Input function: the research file of an import entry (so Snakemake tracks it), else nothing."""
    return lambda wc: {"research": entry(wc)["path"]} if entry(wc) else {}


def main_elsa(wc):
    """The main ELSA run of the job's replicate (its id carries the replicate's ELSA seed)."""
    return plan.main_elsa(rep_config(wc), wc.dataset)


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
# mlflow.deferred: jobs write their runs to spool files, rule mlflow_log logs them all at the end.
MLFLOW_DEFERRED = bool(config["mlflow"]["enabled"] and config["mlflow"]["deferred"])


def mlflow_spool(paths):
    """The output entry ``mlflow`` of a job that logs runs: its spool file(s) (mlflow.deferred), else none."""
    return {"mlflow": paths} if MLFLOW_DEFERRED else {}


# Spool files of the jobs (names fixed here; the rules declare them via mlflow_spool()).
ELSA_SPOOL = "results/{dataset}/{rep}/elsa/{elsa}/mlflow_run.json"
SAE_SPOOL = "results/{dataset}/{rep}/sae/{elsa}/{sae}/mlflow_run.json"
EVAL_SPOOL = "results/{dataset}/{rep}/eval/{pool}/mlflow/{elsa}-{what}.json"
MLFLOW_LOGGED = f"{RESULTS}/{config['study']}/mlflow_runs.parquet"


def mlflow_spools():
    """Every spool file of the study: each ELSA run, each SAE of the grid, each pool's evaluations."""
    out = []
    for rep, dataset in replicate_datasets():
        tag, main = plan.rep_tag(rep, dataset), plan.main_elsa(rep, dataset)
        ids = dict(dataset=dataset, rep=tag)
        out += [
            ELSA_SPOOL.format(**ids, elsa=run) for run in plan.elsa_runs(rep, dataset)
        ]
        out += [
            SAE_SPOOL.format(**ids, elsa=main, sae=sae) for sae in plan.sae_runs(rep)
        ]
        whats = (
            ["sagea"] if plan.sae_runs(rep) and plan.sagea_options(rep) else []
        ) + (["baselines"] if plan.baselines(rep) else [])
        out += [
            EVAL_SPOOL.format(**ids, pool=pool, elsa=main, what=what)
            for pool in plan.group_pools(rep)
            for what in whats
        ]
    return out


# ----------------------------------------------------------------------------- stage helpers
def sae_split_params(wc):
    """The single-user evaluation split of the dataset (datasets.<name>.split)."""
    split = plan.split_settings(rep_config(wc), wc.dataset)
    params = {
        "target_fraction": split.get("target_fraction", 0.2),
        "split_seed": split.get("seed", 42),
    }
    if (
        "target_method" in split
    ):  # absent at the default, so older results stay up to date
        params["target_method"] = split["target_method"]
    return params


# SAE ids of the grid trained together by train_sae_grid (sae.batch_grid): every TopK or basic
# variant (the ones sagea.models.sae_grid can stack); BatchTopK keeps train_sae. With fewer than
# two such variants there is nothing to batch and train_sae trains each one.
SAE_GRID = [
    sae
    for sae, hp in plan.sae_runs(config).items()
    if config["sae"]["batch_grid"] and hp["variant"] in ("topk", "basic")
]
if len(SAE_GRID) < 2:
    SAE_GRID = []


def sae_grid_hp(wc):
    return [plan.sae_hp(rep_config(wc), sae) for sae in SAE_GRID]


def sae_grid_import(wc):
    return [plan.sae_import(rep_config(wc), wc.dataset, sae) for sae in SAE_GRID]


def sae_grid_import_input(wc):
    """The research files of the grid's imported SAEs (so Snakemake tracks them)."""
    return {
        f"research_{i}": entry["path"]
        for i, entry in enumerate(sae_grid_import(wc))
        if entry
    }


def sae_targets():
    targets = []
    for rep, dataset in replicate_datasets():
        elsa = plan.main_elsa(rep, dataset)
        for sae in plan.sae_runs(rep):
            folder = f"{plan.rep_dir(rep, dataset, RESULTS)}/sae/{elsa}/{sae}"
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


def replicate_datasets():
    """(replicate config, dataset) of every replicate and dataset, in order."""
    return [(rep, dataset) for rep in REPLICATES for dataset in plan.datasets(rep)]


def report_targets():
    """Every table (csv, tex, md, html) and figure (png, svg) of each replicate of the study, the
    across-seed tables when there are several seeds, and the landing page."""
    study = config["study"]
    datasets = plan.datasets(config)
    names = plan_report.table_names(datasets, config["reports"]["comparisons"])
    out = []
    for rep in REPLICATES:
        folder = f"{RESULTS}/{study}/{plan.study_tag(rep)}"
        out += [
            f"{folder}/tables/{name}.{ext}"
            for name in names
            for ext in ("csv", "tex", "md", "html")
        ]
        out += [
            f"{folder}/figures/{name}.{ext}"
            for name in plan_report.figure_names(datasets)
            for ext in ("png", "svg")
        ]
    if len(REPLICATES) > 1:
        out += [
            f"{RESULTS}/{study}/seeds/tables/{name}.{ext}"
            for name in plan_report.seeds_table_names(datasets)
            for ext in ("csv", "tex", "md", "html")
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
    "explain_targets",
    "mlflow_targets",
)


def all_targets(wildcards=None):
    targets = []
    for name in STAGE_TARGETS:
        fn = globals().get(name)
        if fn is not None:
            targets.extend(fn())
    return targets
