"""What a validated config asks for: run identifiers, grids and output paths.

The workflow (``workflow/rules/common.smk``) and the tests call these pure functions on the
validated config dict; nothing here reads files or global state. Identifiers are readable:
ELSA runs are ``f256-s42`` (plus ``-<key><value>`` for every hyperparameter that differs from
the dataset's main run), SAE variants ``topk-h2048-k64-l2`` (plus suffixes for non-default
coefficients), group sets ``similar_3`` / ``opposing_2-1``, SAGEA options ``ti1-nu0``.
"""

from __future__ import annotations

import itertools
from typing import Any

from sagea import registry

# Short names used in ELSA run ids for hyperparameters that differ from the main run.
_ELSA_SHORT = {
    "lr": "lr", "beta1": "b1", "beta2": "b2", "batch_size": "b", "epochs": "e", "patience": "p", "relu": "relu",
}  # fmt: skip
ELSA_KEYS = ("factors", "lr", "beta1", "beta2", "batch_size", "epochs", "patience", "seed", "relu")
#: ELSA research-mode switches carried in a run's hyperparameters (not part of the run id).
ELSA_RESEARCH_KEYS = ("research_validation", "research_step_order")

# SAE hyperparameters whose non-default values appear in the variant id (docs/method.md §3 defaults).
_SAE_SUFFIX_DEFAULTS = {
    "l1_coef": ("l1_", 3e-4),
    "aux_coef": ("aux", 1 / 32),
    "contrastive_coef": ("con", 0.0),
    "seed": ("s", 42),
}

GROUP_KINDS = ("similar", "divergent", "random", "opposing")
#: The paper's table names of group kinds ("outlier" is opposing (2, 1)).
PAPER_GROUP_NAMES = {"similar_3": "sim", "random_3": "random", "opposing_2-1": "outlier"}

WILDCARD_CONSTRAINTS = {
    "dataset": r"[A-Za-z0-9_-][A-Za-z0-9_.-]*",
    "elsa": r"f\d+-s-?\d+(-[A-Za-z0-9_.]+)*",
    "sae": r"(topk|batchtopk|basic)-h\d+-k\d+-(l2|cosine)(-[A-Za-z0-9_.]+)*",
    "pool": r"test|valid|train|full",
    "groupset": r"(similar|divergent|random)_\d+|opposing_\d+-\d+",
    "option": r"ti[01]-nu[01]",
    # the registered names (sagea.registry), so a registered strategy is a valid folder name
    "strategy": "|".join(registry.baseline_names()),
    "fusion": "|".join(registry.fusion_names()),
    "study": r"[A-Za-z0-9_-][A-Za-z0-9_.-]*",
}

#: Allowed dataset and study names: they become folder names under results/.
NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$"


def check_names(config: dict) -> None:
    """Refuse dataset and study names that are not plain folder names (``.``, ``..``, hidden, ``/``)."""
    import re

    named = [("study", config.get("study"))] + [("datasets", name) for name in config.get("datasets") or {}]
    for key, name in named:
        if name is not None and not re.match(NAME_PATTERN, str(name)):
            raise ValueError(
                f"config {key}: name {name!r} is not allowed; it becomes a folder under results/, so use "
                "letters, digits, '_', '-' and '.', not starting with '.' (e.g. 'ml32m', 'lastfm-1k')"
            )


def check_strategies(config: dict) -> None:
    """Every fusion and baseline the config names must be registered (:mod:`sagea.registry`: the
    one list of strategy names); the error names the config key and the registered names."""
    evaluation = config.get("evaluation") or {}
    named = [("fusion", "evaluation.sagea.fusions", f) for f in (evaluation.get("sagea") or {}).get("fusions") or []]
    named += [("baseline", "evaluation.baselines", b) for b in evaluation.get("baselines") or []]
    for i, comparison in enumerate((config.get("reports") or {}).get("comparisons") or []):
        if "fusion" in comparison:
            named.append(("fusion", f"reports.comparisons[{i}].fusion", comparison["fusion"]))
    for kind, key, name in named:
        if name not in registry.names(kind):
            raise ValueError(
                f"config {key}: {name!r} is not a registered {kind}; registered: {list(registry.names(kind))} "
                "(a new one is added with the sagea.registry decorators, docs/extending.md)"
            )


def sae_import(config: dict, dataset: str, sae: str) -> dict | None:
    """The ``datasets.<dataset>.sae_import`` entry of an SAE id, or None when that SAE is trained."""
    return (dataset_spec(config, dataset).get("sae_import") or {}).get(sae)


def check_imports(config: dict) -> None:
    """Every ``datasets.<name>.sae_import`` id must be an SAE of the grid (else it would be ignored)."""
    known = sae_runs(config)
    for dataset in datasets(config):
        unknown = [sae for sae in dataset_spec(config, dataset).get("sae_import") or {} if sae not in known]
        if unknown:
            raise ValueError(
                f"config datasets.{dataset}.sae_import: {unknown} are not SAE ids of the sae grid, so they would "
                f"never be used; the grid's ids are {list(known)} (add the import's width/k to sae.grid)"
            )


def groups_import_files(config: dict, dataset: str, pool: str, group_sets: list[str]) -> list[str]:
    """Research group files of ``pool`` named by ``datasets.<dataset>.groups_import`` (empty when none):
    ``<path>/<set>_<user set>.npy`` with ``opposing_2-1`` written ``opposing_2_1``."""
    entry = dataset_spec(config, dataset).get("groups_import")
    if not entry:
        return []
    user_set = (entry.get("user_sets") or {}).get(pool, pool)
    return [f"{entry['path'].rstrip('/')}/{name.replace('-', '_')}_{user_set}.npy" for name in group_sets]


def elsa_import(config: dict, dataset: str, elsa: str) -> dict | None:
    """The ``datasets.<dataset>.elsa_import`` entry when ``elsa`` is the dataset's main run, else None."""
    entry = dataset_spec(config, dataset).get("elsa_import")
    return entry if entry and elsa == main_elsa(config, dataset) else None


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# ----------------------------------------------------------------------------- seeds
#: Where stage seeds live; each defaults to the top-level ``seed`` when the config leaves it out.
STAGE_SEEDS = (("elsa",), ("sae", "base"), ("groups",), ("groups", "split"), ("compare",))
DATASET_SEEDS = (("split",), ("synthetic",))


#: The schema's default ``datasets`` (workflow/schemas/config.schema.yaml), filled in early so that
#: the seed and research-mode expansions reach it too.
DEFAULT_DATASETS = {"synthetic": {"source": "synthetic"}}


def apply_global_seed(config: dict) -> dict:
    """Fill every stage seed the config does not set with the top-level ``seed`` (in place).

    Call before schema validation (which would fill them with the schema's 42). Without a
    top-level ``seed`` nothing changes, so the schema's defaults (the paper's 42) apply.
    """
    if "seed" not in config:
        return config
    seed = config["seed"]
    config.setdefault("datasets", {k: dict(v) for k, v in DEFAULT_DATASETS.items()})  # its seeds too

    def fill(section: dict, path: tuple[str, ...]) -> None:
        for key in path:
            section = section.setdefault(key, {})
            if not isinstance(section, dict):
                return
        section.setdefault("seed", seed)

    for path in STAGE_SEEDS:
        fill(config, path)
    for spec in (config.get("datasets") or {}).values():
        if isinstance(spec, dict):
            for path in DATASET_SEEDS:
                if path != ("synthetic",) or spec.get("source") == "synthetic":
                    fill(spec, path)
    return config


# ----------------------------------------------------------------------------- research mode
#: What ``research_mode: true`` switches on: (config path, research value) for every switch that
#: reproduces the research code (its defects and random streams). Keys the config sets itself win.
#: ``datasets.*`` paths apply to every dataset.
RESEARCH_MODE: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("evaluation", "research", "hit_rate_needs_two"), True),
    (("evaluation", "research", "popularity_with_targets"), True),
    (("evaluation", "sagea", "zero_fallback"), "nan"),
    (("groups", "split", "shared_mask"), True),
    (("sae", "base", "early_stop_unit"), "epochs"),
    (("datasets", "index_order"), "appearance"),
    (("datasets", "split", "method"), "research"),
    (("datasets", "split", "target_method"), "research"),
    # training protocol and baselines' lists (docs/research_mode_training.md)
    (("elsa", "research_validation"), True),
    (("elsa", "research_step_order"), True),
    (("sae", "base", "research_validation"), True),
    (("sae", "base", "research_step_order"), True),
    (("sae", "base", "dead_rule"), "more_than"),
    (("evaluation", "research", "elsa_seen_at_zero"), True),
    (("evaluation", "research", "aggregation_seen_at_zero"), True),
)


def apply_research_mode(config: dict) -> dict:
    """Expand the umbrella switch ``research_mode: true`` into its switches (in place).

    Call before schema validation. Each switch of :data:`RESEARCH_MODE` the config leaves unset
    takes its research value; explicit settings are kept, so one can reproduce all but one defect.
    """
    if not config.get("research_mode"):
        return config

    def fill(section: dict, path: tuple[str, ...], value: Any) -> None:
        for key in path[:-1]:
            section = section.setdefault(key, {})
            if not isinstance(section, dict):
                return
        section.setdefault(path[-1], value)

    config.setdefault("datasets", {k: dict(v) for k, v in DEFAULT_DATASETS.items()})
    for path, value in RESEARCH_MODE:
        if path[0] == "datasets":
            for spec in (config.get("datasets") or {}).values():
                if isinstance(spec, dict):
                    fill(spec, path[1:], value)
        else:
            fill(config, path, value)
    return config


# ----------------------------------------------------------------------------- replicates
def replicate_seeds(config: dict) -> list[int]:
    """The top-level seeds of a study: ``seeds`` (one whole chain each) or ``[seed]``."""
    seeds = config.get("seeds")
    return list(dict.fromkeys(seeds)) if seeds else [config.get("seed", 42)]


def replicate_config(raw: dict, seed: int) -> dict:
    """The config of one replicate: ``raw`` (as the user wrote it) with top-level ``seed``, every
    stage seed it leaves out filled from it, and the research switches expanded (not validated)."""
    import copy

    config = copy.deepcopy(raw)
    config["seed"] = seed
    apply_global_seed(config)
    apply_research_mode(config)
    return config


def rep_tag(config: dict, dataset: str) -> str:
    """Folder of a dataset's seed-dependent outputs (split, models, groups, evaluations) in one
    replicate: ``s<seed>``, plus ``-<name><value>`` for each stage seed pinned to another value
    (``sp`` split, ``syn`` synthetic data, ``g`` groups, ``gs`` group split, ``c`` compare); the
    ELSA and SAE seeds are part of their run ids."""
    seed = config["seed"]
    spec = dataset_spec(config, dataset)
    values = {"sp": (spec.get("split") or {}).get("seed", 42)}
    if spec["source"] == "synthetic":
        values["syn"] = (spec.get("synthetic") or {}).get("seed", 42)
    values["g"] = config["groups"].get("seed", 42)
    values["gs"] = (config["groups"].get("split") or {}).get("seed", 42)
    values["c"] = (config.get("compare") or {}).get("seed", 42)
    tag = f"s{seed}"
    for name in ("sp", "syn", "g", "gs", "c"):
        if name in values and values[name] != seed:
            tag += f"-{name}{values[name]}"
    return tag


def study_tag(config: dict) -> str:
    """Folder of a study's per-seed tables and figures: ``s<seed>``."""
    return f"s{config['seed']}"


def rep_dir(config: dict, dataset: str, results: str = "results") -> str:
    """``results/<dataset>/<rep tag>``: where the seed-dependent outputs of a dataset live."""
    return f"{results}/{dataset}/{rep_tag(config, dataset)}"


def data_dir(config: dict, dataset: str, results: str = "results") -> str:
    """Prepared data of a dataset: ``results/<dataset>/data`` (independent of every seed) or, for
    synthetic data (generated with a seed), inside the replicate folder."""
    if dataset_spec(config, dataset)["source"] == "synthetic":
        return f"{rep_dir(config, dataset, results)}/data"
    return f"{results}/{dataset}/data"


# ----------------------------------------------------------------------------- datasets
def datasets(config: dict) -> list[str]:
    """Dataset names in config order."""
    return list(config["datasets"])


def dataset_spec(config: dict, dataset: str) -> dict:
    return config["datasets"][dataset]


#: Dataset keys that change the prepared data (ELSA or split settings must not re-run prepare).
PREPARE_KEYS = ("source", "release", "threshold", "custom", "synthetic", "filter", "index_order")
DATA_FILES = ("interactions.parquet", "users.parquet", "items.parquet", "card.json", "card.md")
#: Research switches of a dataset and their defaults. Rule params leave them out at the default,
#: so results built before the switches existed stay up to date (Snakemake reruns on new params).
DATASET_SWITCH_DEFAULTS = {"index_order": "sorted"}
SPLIT_SWITCH_DEFAULTS = {"method": "ours", "target_method": "ours"}


def _drop_defaults(section: dict, defaults: dict) -> dict:
    return {key: value for key, value in section.items() if defaults.get(key, object()) != value}


def prepare_params(config: dict, dataset: str) -> dict:
    spec = dataset_spec(config, dataset)
    return _drop_defaults({key: spec[key] for key in PREPARE_KEYS if key in spec}, DATASET_SWITCH_DEFAULTS)


def download_params(config: dict, dataset: str) -> dict:
    spec = dataset_spec(config, dataset)
    return {key: spec.get(key) for key in ("source", "release", "url", "sha256")}


def split_settings(config: dict, dataset: str) -> dict:
    """``datasets.<name>.split`` for the training/evaluation rules, research switches at their
    default left out (``target_method`` absent = ``ours``)."""
    return _drop_defaults(dict(dataset_spec(config, dataset).get("split") or {}), SPLIT_SWITCH_DEFAULTS)


def split_params(config: dict, dataset: str) -> dict:
    """Arguments of ``sagea.data.splits.split_users`` (``method`` only when not ``ours``)."""
    split = dataset_spec(config, dataset)["split"]
    params = {key: split[key] for key in ("valid_fraction", "test_fraction", "seed")}
    return {**params, **_drop_defaults({"method": split.get("method", "ours")}, SPLIT_SWITCH_DEFAULTS)}


def raw_input(config: dict, dataset: str, results: str = "results") -> dict[str, str]:
    """Raw input of ``prepare``: none (synthetic), the configured ``path``, or the download folder."""
    spec = dataset_spec(config, dataset)
    if spec["source"] == "synthetic":
        return {}
    if spec.get("path"):
        return {"raw": spec["path"]}
    if spec["source"] == "custom":
        raise ValueError(f"datasets.{dataset}.path is required for source 'custom' (the file to read)")
    return {"raw": f"{results}/{dataset}/raw/files"}


def data_files(config: dict, results: str = "results") -> list[str]:
    """Prepared data, card and split of every configured dataset (for one replicate's config)."""
    out = []
    for dataset in datasets(config):
        out += [f"{data_dir(config, dataset, results)}/{name}" for name in DATA_FILES]
        out.append(f"{rep_dir(config, dataset, results)}/split.parquet")
    return out


# ----------------------------------------------------------------------------- ELSA
def elsa_base_hp(config: dict, dataset: str) -> dict:
    """The dataset's main ELSA hyperparameters: the ``elsa`` section with its overrides."""
    hp = {key: config["elsa"][key] for key in ELSA_KEYS if key != "relu"}
    hp["relu"] = config["elsa"].get("relu", True)  # added after the first configs: absent = research default
    for key in ELSA_RESEARCH_KEYS:  # research-mode switches: absent = our protocol
        hp[key] = config["elsa"].get(key, False)
    hp.update(dataset_spec(config, dataset).get("elsa") or {})
    return hp


def elsa_id(hp: dict, base: dict) -> str:
    """``f{factors}-s{seed}`` plus ``-<short><value>`` for each key differing from ``base``."""
    ident = f"f{hp['factors']}-s{hp['seed']}"
    for key, short in _ELSA_SHORT.items():
        if hp.get(key) != base.get(key):
            ident += f"-{short}{_fmt(hp[key])}"
    return ident


def elsa_runs(config: dict, dataset: str) -> dict[str, dict]:
    """All ELSA runs of a dataset, id -> hyperparameters; the main run comes first."""
    base = elsa_base_hp(config, dataset)
    runs = {elsa_id(base, base): base}
    for extra in config["elsa"].get("extra_runs", []):
        hp = {**base, **extra}
        runs.setdefault(elsa_id(hp, base), hp)
    return runs


def main_elsa(config: dict, dataset: str) -> str:
    return next(iter(elsa_runs(config, dataset)))


def elsa_hp(config: dict, dataset: str, run: str) -> dict:
    runs = elsa_runs(config, dataset)
    if run not in runs:
        raise KeyError(f"ELSA run {run!r} is not declared for dataset {dataset!r}; known: {list(runs)}")
    return runs[run]


# ----------------------------------------------------------------------------- SAE
def sae_id(hp: dict) -> str:
    """Readable SAE variant id, e.g. ``topk-h2048-k64-l2`` or ``topk-h1024-k32-cosine-con0.3-norm``."""
    ident = f"{hp['variant']}-h{hp['width']}-k{hp['k']}-{hp['reconstruction_loss']}"
    for key, (short, default) in _SAE_SUFFIX_DEFAULTS.items():
        if hp[key] != default:
            ident += f"-{short}{_fmt(hp[key])}"
    if hp["normalize"]:
        ident += "-norm"
    return ident


def sae_runs(config: dict) -> dict[str, dict]:
    """Every combination of ``sae.grid`` over ``sae.base``, id -> hyperparameters (config order)."""
    base = dict(config["sae"]["base"])
    grid = config["sae"].get("grid") or {}
    keys = list(grid)
    runs: dict[str, dict] = {}
    for values in itertools.product(*(grid[k] for k in keys)):
        hp = {**base, **dict(zip(keys, values))}
        runs.setdefault(sae_id(hp), hp)
    return runs


def sae_hp(config: dict, sae: str) -> dict:
    runs = sae_runs(config)
    if sae not in runs:
        raise KeyError(f"SAE variant {sae!r} is not in the sae grid; known: {list(runs)}")
    return runs[sae]


# ----------------------------------------------------------------------------- groups
def group_set_name(kind: str, size: int | list[int]) -> str:
    if kind == "opposing":
        a, b = size
        return f"opposing_{a}-{b}"
    return f"{kind}_{size}"


def parse_group_set(name: str) -> tuple[str, list[int]]:
    """``similar_3`` -> ("similar", [3]); ``opposing_2-1`` -> ("opposing", [2, 1])."""
    kind, _, size = name.partition("_")
    if kind not in GROUP_KINDS or not size:
        raise ValueError(f"not a group set name: {name!r} (expected e.g. similar_3 or opposing_2-1)")
    return kind, [int(s) for s in size.split("-")]


def group_sets(config: dict) -> list[str]:
    kinds = config["groups"]["kinds"]
    return [group_set_name(kind, size) for kind in GROUP_KINDS for size in kinds.get(kind, [])]


def group_pools(config: dict) -> list[str]:
    return list(config["groups"]["pools"])


# ----------------------------------------------------------------------------- evaluation
def option_id(topk_inference: bool, normalize_users_embeddings: bool) -> str:
    return f"ti{int(topk_inference)}-nu{int(normalize_users_embeddings)}"


def parse_option(option: str) -> dict:
    ti, nu = option.split("-")
    return {"topk_inference": ti == "ti1", "normalize_users_embeddings": nu == "nu1"}


def sagea_options(config: dict) -> list[str]:
    s = config["evaluation"]["sagea"]
    return [
        option_id(ti, nu)
        for ti in s["topk_inference"]
        for nu in s["normalize_users_embeddings"]
    ]


def fusions(config: dict) -> list[str]:
    return list(config["evaluation"]["sagea"]["fusions"])


def baselines(config: dict) -> list[str]:
    return list(config["evaluation"]["baselines"])


# ----------------------------------------------------------------------------- cross-key checks
class ConfigError(ValueError):
    """A config whose keys contradict each other; the message names every key involved."""


def pool_size_estimate(config: dict, dataset: str, pool: str, n_users: int | None = None) -> int | None:
    """Users a group pool holds: from the dataset's user count (``n_users``, e.g. its card once
    prepared) or, for synthetic data, the generator's ``n_users`` (an upper bound: filtering may
    drop a few); ``None`` when unknown before the data is prepared."""
    spec = dataset_spec(config, dataset)
    if n_users is None and spec["source"] == "synthetic":
        n_users = (spec.get("synthetic") or {}).get("n_users", 3000)
    if n_users is None:
        return None
    split = spec.get("split") or {}
    valid = int(n_users * split.get("valid_fraction", 0.1) + 1e-9)
    test = int(n_users * split.get("test_fraction", 0.1) + 1e-9)
    size = {"valid": valid, "test": test, "train": n_users - valid - test, "full": n_users}[pool]
    return min(size, config["groups"].get("max_pool_users", 20_000))


def _needs_selection(config: dict) -> bool:
    """Whether the report picks an SAE configuration on a pool (overall/fairness tables, heatmap)."""
    return bool(fusions(config))


def config_problems(config: dict, n_users: dict[str, int] | None = None) -> list[str]:
    """Constraints between keys of a schema-validated config, one message per violation.

    ``n_users`` maps datasets already prepared to their user count (for pool-size checks).
    Everything here is known before any job runs, so a study fails in seconds, not after
    hours of training.
    """
    n_users = n_users or {}
    problems: list[str] = []
    # SAE: k cannot exceed the width; the loss coefficients must leave a positive rec_coef
    for sae, hp in sae_runs(config).items():
        if hp["variant"] in ("topk", "batchtopk") and hp["k"] > hp["width"]:
            problems.append(
                f"sae: variant {sae} has k={hp['k']} > width={hp['width']} (sae.base.k / sae.grid.k must be "
                "<= sae.base.width / sae.grid.width); drop that combination or raise the width"
            )
        coefs = hp["l1_coef"] + hp["aux_coef"] + hp["contrastive_coef"]
        if coefs >= 1:
            problems.append(
                f"sae: variant {sae} has l1_coef + aux_coef + contrastive_coef = {coefs:g} >= 1, so the "
                "reconstruction weight 1 - (l1 + aux + contrastive) is not positive; lower the coefficients"
            )
    # groups: the pools must exist, and hold enough users for the groups asked for
    pools = group_pools(config)
    sizes = [sum(parse_group_set(s)[1]) for s in group_sets(config)]
    for dataset in datasets(config):
        split = dataset_spec(config, dataset).get("split") or {}
        fractions = {"valid": split.get("valid_fraction", 0.1), "test": split.get("test_fraction", 0.1)}
        if fractions["valid"] + fractions["test"] >= 1:
            problems.append(
                f"datasets.{dataset}.split: valid_fraction + test_fraction = "
                f"{fractions['valid'] + fractions['test']:g} leaves no training user; keep their sum below 1"
            )
        for pool in pools:
            if fractions.get(pool, 1) == 0:
                problems.append(
                    f"groups.pools lists {pool!r} but datasets.{dataset}.split.{pool}_fraction is 0, so the "
                    f"pool is empty; raise the fraction or drop {pool!r} from groups.pools"
                )
                continue
            size = pool_size_estimate(config, dataset, pool, n_users.get(dataset))
            if size is not None and sizes and max(sizes) > size:
                problems.append(
                    f"groups.kinds: groups of {max(sizes)} members cannot be drawn from the {pool} pool of "
                    f"{dataset} (about {size} users); use smaller groups, a larger "
                    f"datasets.{dataset}.split.{pool}_fraction or another pool"
                )
    # reports: choose SAE configurations on one pool, report on another (unless explicitly allowed)
    r = config.get("reports") or {}
    if _needs_selection(config) and group_sets(config):
        sel, rep = r.get("selection_pool", "valid"), r.get("report_pool", "test")
        allowed = r.get("allow_selection_on_report_pool", False)
        for key, pool in (("selection_pool", sel), ("report_pool", rep)):
            if pool not in pools:
                if key == "selection_pool" and allowed and rep in pools:
                    continue
                problems.append(
                    f"reports.{key} is {pool!r} but groups.pools {pools} has no such pool; add {pool!r} to "
                    f"groups.pools" + (
                        " (the SAE configuration must be chosen on groups the tables do not report)"
                        if key == "selection_pool" else ""
                    )
                )  # fmt: skip
        if sel == rep and not allowed:
            problems.append(
                f"reports.selection_pool and reports.report_pool are both {sel!r}: the tables would choose "
                "the SAE configuration on the very groups they report. Select on another pool, or set "
                "reports.allow_selection_on_report_pool: true to accept it (the tables then say so)"
            )
    # reports.comparisons must select something that is evaluated
    grid = {**{k: [v] for k, v in config["sae"]["base"].items()}, **(config["sae"].get("grid") or {})}
    options = config["evaluation"]["sagea"]
    for i, comparison in enumerate(r.get("comparisons") or []):
        if comparison.get("fusion", "average") not in fusions(config):
            problems.append(
                f"reports.comparisons[{i}] ({comparison['name']}): fusion {comparison.get('fusion', 'average')!r} "
                "is not in evaluation.sagea.fusions"
            )
        for side in ("main", "compare"):
            for key, value in comparison[side].items():
                values = options[key] if key in ("topk_inference", "normalize_users_embeddings") else grid.get(key, [])
                if value not in values:
                    where = f"evaluation.sagea.{key}" if key in options else f"sae.grid.{key} / sae.base.{key}"
                    problems.append(
                        f"reports.comparisons[{i}] ({comparison['name']}).{side}: {key}={value!r} is never "
                        f"evaluated ({where} holds {values}); add it there or fix the comparison"
                    )
    # compare: extra SAE grids only on declared ELSA runs
    for dataset in datasets(config):
        runs = elsa_runs(config, dataset)
        for run in (config.get("compare") or {}).get("sae_elsa_runs", []):
            if run not in runs:
                problems.append(
                    f"compare.sae_elsa_runs names {run!r}, which is not an ELSA run of {dataset} "
                    f"(declared: {list(runs)}); add it to elsa.extra_runs or fix the id"
                )
    return problems


def check_config(config: dict, n_users: dict[str, int] | None = None) -> None:
    """Raise :class:`ConfigError` listing every cross-key problem of the config."""
    problems = config_problems(config, n_users)
    if problems:
        raise ConfigError(
            "the config is inconsistent (nothing was run):\n" + "\n".join(f"  - {p}" for p in problems)
        )
