"""Gather the upstream stages' outputs into a few long tables that every report builder reads.

The workflow passes *entries*: dicts with a ``path`` to one upstream file plus the metadata that
identifies it (dataset, pool, group set, SAE hyperparameters, ...), computed from the config by
``sagea.plan``. Nothing is parsed from paths and nothing is read from MLflow.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from sagea.io import read_json, read_parquet
from sagea.plan import PAPER_GROUP_NAMES

log = logging.getLogger(__name__)

#: Paper names of SAGEA fusions (docs/method.md §7); others become ``SAE-<fusion>``.
FUSION_NAMES = {
    "topk": "SAE-TopK",
    "average": "SAE-Avg",
    "max": "SAE-Max",
    "wcom": "SAE-WCom",
    "common_features": "SAE-ComF",
}
#: Paper names of the baselines.
BASELINE_NAMES = {"ELSA_INT": "ELSA-INT"}
#: Row order of approaches in tables: the paper's, then anything else alphabetically.
APPROACH_ORDER = (
    "SAE-TopK",
    "SAE-Avg",
    "SAE-Max",
    "SAE-WCom",
    "SAE-ComF",
    "SAE-square_average",
    "SAE-min",
    "SAE-at_least_2_common_features",
    "ADD",
    "EPFuzzDA",
    "LMS",
    "ELSA",
    "GFAR",
    "ELSA-INT",
    "MPL",
    "MUL",
    "POPULAR",
)

#: Metadata columns of the collected per-group table, in order.
META_COLUMNS = [
    "dataset",
    "pool",
    "groupset",
    "kind",
    "elsa",
    "family",
    "strategy",
    "approach",
    "sae",
    "option",
    "variant",
    "width",
    "k",
    "loss",
    "l1_coef",
    "aux_coef",
    "contrastive_coef",
    "normalize",
    "sae_seed",
    "topk_inference",
    "normalize_users_embeddings",
]
#: SAE hyperparameter -> collected column.
SAE_HP_COLUMNS = {
    "variant": "variant",
    "width": "width",
    "k": "k",
    "reconstruction_loss": "loss",
    "l1_coef": "l1_coef",
    "aux_coef": "aux_coef",
    "contrastive_coef": "contrastive_coef",
    "normalize": "normalize",
    "seed": "sae_seed",
}


def kind_name(groupset: str) -> str:
    """Table name of a group set: ``sim``/``random``/``outlier`` for the paper's, else the set's name."""
    return PAPER_GROUP_NAMES.get(groupset, groupset)


def approach_name(family: str, strategy: str) -> str:
    """``SAE-TopK`` for fusion ``topk`` of SAGEA, ``ELSA-INT`` for baseline ``ELSA_INT``, ..."""
    if family == "sagea":
        return FUSION_NAMES.get(strategy, f"SAE-{strategy}")
    return BASELINE_NAMES.get(strategy, strategy)


def approach_sort_key(name: str) -> tuple[int, str]:
    return (APPROACH_ORDER.index(name), "") if name in APPROACH_ORDER else (len(APPROACH_ORDER), name)


def kind_order(df: pd.DataFrame) -> list[str]:
    """The group kinds of ``df`` in table order: ``sim``, ``random``, ``outlier``, then the others by name."""
    order = {"sim": 0, "random": 1, "outlier": 2}
    return sorted(dict.fromkeys(df["kind"]), key=lambda k: (order.get(k, 3), k))


def sae_row_columns(df: pd.DataFrame) -> list[str]:
    """Row labels of an SAE: ``h, k, loss`` and the variant id where those do not identify it."""
    cols = ["width", "k", "loss"]
    keyed = df.drop_duplicates(["sae"])
    if keyed.duplicated(cols).any():
        cols.append("sae")
    return cols


SAE_LABELS = {"width": "h", "k": "k", "loss": "loss", "sae": "SAE"}

def approach_order(rows: pd.DataFrame) -> list[str]:
    """The approaches of ``rows`` in table order (:func:`approach_sort_key`)."""
    return sorted(dict.fromkeys(rows["approach"]), key=approach_sort_key)




def _require(path: str | Path, what: str) -> None:
    if not Path(path).exists():
        raise FileNotFoundError(f"{what} not found: {path} (run the upstream stage first)")


def collect_per_group(entries: list[dict]) -> pd.DataFrame:
    """One row per (evaluation, group): the metadata of each entry + every per-group metric.

    Entry keys: ``path``, ``dataset``, ``pool``, ``groupset``, ``elsa``, ``family`` (``sagea`` or
    ``baseline``), ``strategy`` (fusion or baseline name), for SAGEA also ``sae``, ``option``,
    ``topk_inference``, ``normalize_users_embeddings`` and ``sae_hp`` (the variant's hyperparameters).
    """
    from sagea.evaluation.outputs import check_per_group

    frames = []
    for entry in entries:
        _require(entry["path"], "per-group evaluation table")
        df = read_parquet(entry["path"])
        if "group" not in df.columns:
            raise ValueError(f"{entry['path']}: per_group.parquet has no 'group' column (docs/ARCHITECTURE.md)")
        check_per_group(df, None, entry["path"])
        meta = {
            "dataset": entry["dataset"],
            "pool": entry["pool"],
            "groupset": entry["groupset"],
            "kind": kind_name(entry["groupset"]),
            "elsa": entry["elsa"],
            "family": entry["family"],
            "strategy": entry["strategy"],
            "approach": approach_name(entry["family"], entry["strategy"]),
            "sae": entry.get("sae"),
            "option": entry.get("option"),
            "topk_inference": entry.get("topk_inference"),
            "normalize_users_embeddings": entry.get("normalize_users_embeddings"),
        }
        for key, col in SAE_HP_COLUMNS.items():
            meta[col] = (entry.get("sae_hp") or {}).get(key)
        block = pd.DataFrame({col: [meta.get(col)] * len(df) for col in META_COLUMNS})
        frames.append(pd.concat([block, df.reset_index(drop=True)], axis=1))
    if not frames:
        return pd.DataFrame(columns=META_COLUMNS + ["group"])
    out = pd.concat(frames, ignore_index=True, sort=False)
    for col in ("width", "k"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("Int64")
    for col in ("l1_coef", "aux_coef", "contrastive_coef"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    for col in ("normalize", "topk_inference", "normalize_users_embeddings"):
        out[col] = out[col].astype("boolean")
    log.info("collected %d per-group rows from %d evaluations", len(out), len(frames))
    return out


def collect_single_user(entries: list[dict]) -> pd.DataFrame:
    """Single-user accuracy: rows (dataset, model, split) with every metric as a column.

    Entry keys: ``dataset``, ``elsa`` (run id), ``elsa_metrics`` (the ELSA ``metrics.json``) and
    ``baselines`` (``results/<dataset>/baselines/metrics.json``: POP, EASE).
    """
    rows = []
    for entry in entries:
        _require(entry["elsa_metrics"], "ELSA metrics.json")
        _require(entry["baselines"], "single-user baselines metrics.json")
        models = {"ELSA": read_json(entry["elsa_metrics"])}
        models.update(read_json(entry["baselines"]))
        for model, splits in models.items():
            for split in ("valid", "test"):
                values = (splits or {}).get(split)
                if isinstance(values, dict):
                    rows.append({"dataset": entry["dataset"], "model": model, "split": split, **values})
    return pd.DataFrame(rows)


def collect_sae(entries: list[dict]) -> pd.DataFrame:
    """SAE reconstruction metrics: rows (dataset, elsa, sae, split) + hyperparameter columns.

    Entry keys: ``dataset``, ``elsa``, ``sae``, ``sae_hp``, ``path`` (the SAE ``metrics.json``).
    """
    rows = []
    for entry in entries:
        _require(entry["path"], "SAE metrics.json")
        metrics = read_json(entry["path"])
        hp = {col: (entry.get("sae_hp") or {}).get(key) for key, col in SAE_HP_COLUMNS.items()}
        for split in ("valid", "test"):
            values = metrics.get(split)
            if isinstance(values, dict):
                rows.append(
                    {
                        "dataset": entry["dataset"],
                        "elsa": entry["elsa"],
                        "sae": entry["sae"],
                        **hp,
                        "split": split,
                        **values,
                    }
                )
    return pd.DataFrame(rows)


def collect_history(entries: list[dict]) -> pd.DataFrame:
    """Training curves in long form: ``dataset, model (ELSA/SAE), run, epoch, metric, value``.

    Entry keys: ``dataset``, ``model``, ``run``, ``path`` (a ``history.parquet`` with an ``epoch``
    column). Every other numeric column except ``seconds`` becomes a metric.
    """
    frames = []
    for entry in entries:
        _require(entry["path"], "training history.parquet")
        hist = read_parquet(entry["path"])
        if "epoch" not in hist.columns:
            hist = hist.assign(epoch=np.arange(len(hist)))
        value_cols = [
            c for c in hist.columns if c not in ("epoch", "seconds") and pd.api.types.is_numeric_dtype(hist[c])
        ]
        long = hist.melt(id_vars=["epoch"], value_vars=value_cols, var_name="metric", value_name="value")
        long.insert(0, "run", entry["run"])
        long.insert(0, "model", entry["model"])
        long.insert(0, "dataset", entry["dataset"])
        frames.append(long.dropna(subset=["value"]))
    if not frames:
        return pd.DataFrame(columns=["dataset", "model", "run", "epoch", "metric", "value"])
    return pd.concat(frames, ignore_index=True)


GROUP_COLUMNS = [
    "group_similarity",
    "subgroup_similarity_0",
    "subgroup_similarity_1",
    "between_similarity",
    "n_common_targets",
]


def _overlapping(members: pd.DataFrame, groups: np.ndarray) -> np.ndarray:
    """Per group (in ``groups`` order): shares at least half of its members with another group of the
    set (``sagea.groups.diagnostics.HEAVY_OVERLAP_THRESHOLD``: a near-duplicate)."""
    from sagea.groups.diagnostics import HEAVY_OVERLAP_THRESHOLD, member_overlap_pairs

    ordered = members.sort_values(["group", "member"])
    size = int(ordered.groupby("group").size().max()) if len(ordered) else 0
    if not size or len(ordered) != size * len(groups):
        return np.zeros(len(groups), dtype=bool)
    pairs = member_overlap_pairs(ordered["user"].to_numpy(np.int64).reshape(len(groups), size), HEAVY_OVERLAP_THRESHOLD)
    flagged = np.zeros(len(groups), dtype=bool)
    flagged[pairs[:, :2].reshape(-1)] = True
    return flagged


def collect_groups(entries: list[dict]) -> pd.DataFrame:
    """One row per sampled group: ``dataset, pool, groupset, kind, group`` + similarity columns,
    ``n_common_targets`` and ``overlapping`` (shares at least half of its members with another group).

    Entry keys: ``dataset``, ``pool``, ``groupset``, ``path`` (the group set parquet, one row per member).
    """
    frames = []
    for entry in entries:
        _require(entry["path"], "group set parquet")
        members = read_parquet(entry["path"])
        cols = [c for c in GROUP_COLUMNS if c in members.columns]
        per_group = members.groupby("group", sort=True)[cols].first().reset_index()
        per_group["overlapping"] = _overlapping(members, per_group["group"].to_numpy())
        per_group.insert(0, "kind", kind_name(entry["groupset"]))
        per_group.insert(0, "groupset", entry["groupset"])
        per_group.insert(0, "pool", entry["pool"])
        per_group.insert(0, "dataset", entry["dataset"])
        frames.append(per_group)
    if not frames:
        return pd.DataFrame(columns=["dataset", "pool", "groupset", "kind", "group"])
    return pd.concat(frames, ignore_index=True, sort=False)
