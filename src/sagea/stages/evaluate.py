"""The evaluation stage's jobs: SAGEA fusions and baselines on one group set.

Each function is what one workflow rule does, with every setting passed in as settings objects
(no ``config``; the workflow scripts build them): read the upstream files (docs/ARCHITECTURE.md),
build the strategies, evaluate all groups in chunks
(:func:`sagea.evaluation.group.evaluate_groups`), write one folder per strategy
(:mod:`sagea.evaluation.outputs`) and, when a tracking URI is given, log one MLflow run per folder
in ``GR_<dataset>`` (:mod:`sagea.stages.evaluate_mlflow`).

Settings objects: :class:`EvalInputs` (upstream files), :class:`EvalScope` (what is evaluated:
dataset, pool, group set, ELSA run), :class:`~sagea.evaluation.group.GroupEvalSettings` (the
evaluation itself, built by :func:`group_eval_settings`), :class:`SageaSettings` (the SAE and the
SAGEA option), :class:`BaselineSettings` (research switches of the baselines) and
:class:`TrackingSettings` (MLflow).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from sagea import registry
from sagea.data.matrix import load_interactions, load_split
from sagea.evaluation.group import GroupEvalSettings, evaluate_groups
from sagea.evaluation.outputs import write_strategy_outputs
from sagea.io import NonFiniteError, read_embeddings, read_parquet
from sagea.runtime import set_threads
from sagea.recommenders.sagea import SageaRecommender
from sagea.scoring import item_popularity
from sagea.stages.evaluate_mlflow import log_summary, run_params

log = logging.getLogger(__name__)

PathLike = str | os.PathLike


@dataclass(frozen=True)
class EvalInputs:
    """The upstream files of one evaluation job (``sae_path`` only for SAGEA)."""

    data_dir: PathLike
    split_path: PathLike
    groups_path: PathLike
    elsa_path: PathLike
    item_embeddings_path: PathLike
    sae_path: PathLike | None = None


@dataclass(frozen=True)
class EvalScope:
    """What one job evaluates: names of the dataset, user pool, group set and ELSA run."""

    dataset: str
    pool: str
    groupset: str
    elsa_run: str


@dataclass(frozen=True)
class SageaSettings:
    """The SAE (run name and hyperparameters) and the SAGEA option of a job."""

    sae_run: str
    sae_hp: Mapping[str, Any]
    topk_inference: bool
    normalize_users_embeddings: bool
    zero_fallback: str

    @property
    def option(self) -> str:
        return f"ti{int(self.topk_inference)}-nu{int(self.normalize_users_embeddings)}"


@dataclass(frozen=True)
class BaselineSettings:
    """Research switches of the baselines: seen items as candidates with score 0 in ELSA
    (defect 6) / in ADD, MUL, LMS, MPL (defect 7)."""

    elsa_seen_at_zero: bool = False
    aggregation_seen_at_zero: bool = False


@dataclass(frozen=True)
class TrackingSettings:
    """MLflow: ``uri`` (None: no logging), the ``note`` template (fields
    ``sagea.tracking.NOTE_FIELDS``; default the provenance's, else the built-in one) and the
    job's ``sagea.tracking.Provenance``."""

    uri: str | None = None
    note: str | None = None
    provenance: Any = field(default=None, compare=False)


def group_eval_settings(
    settings: Mapping[str, Any] | GroupEvalSettings, device: str = "auto", popularity_with_targets: bool = False
) -> GroupEvalSettings:
    """:class:`GroupEvalSettings` from the rule's settings mapping, ``device`` resolved
    (``auto``: the best available) and the popularity research switch (defect 4)."""
    from sagea.runtime import select_device

    base = dataclasses.asdict(settings) if isinstance(settings, GroupEvalSettings) else dict(settings)
    base.update(device=str(select_device(device)), popularity_with_targets=popularity_with_targets)
    return GroupEvalSettings(**base)


def _load_common(inputs: EvalInputs, popularity_with_targets: bool):
    from sagea.groups.io import load_groups

    rows = load_interactions(inputs.data_dir)
    split = load_split(inputs.split_path)
    groups = load_groups(inputs.groups_path)
    if groups.size and groups.max() >= rows.shape[0]:
        raise ValueError(
            f"{inputs.groups_path}: user index {groups.max()} beyond the {rows.shape[0]} users of {inputs.data_dir}"
        )
    popularity = item_popularity(rows, split["train"], with_targets=popularity_with_targets)
    return rows, groups, popularity


def _write_all(results, out_dirs, params_of, k, tracking: TrackingSettings, dataset, run_name_of, started, card):
    """Write every strategy's folder; with a tracking URI log each as one run keyed by its folder.

    ``started``: the job's start time; ``card``: the dataset card (its digest tags the runs).
    """
    from sagea.tracking import file_digest, output_key

    tracking_uri, provenance = tracking.uri, tracking.provenance
    card_digest = (file_digest(card) if card else None) or "none"
    items = read_parquet(Path(card).parent / "items.parquet", columns=["original_id"]) if card else None
    item_ids = None if items is None else items["original_id"].to_numpy()
    summaries = {}
    for name, out_dir in out_dirs.items():
        summary = write_strategy_outputs(results[name], out_dir, params_of(name), k, item_ids)
        summaries[name] = summary
        log.info("%s: %s", name, {m: round(v, 4) for m, v in summary["metrics"].items() if "NDCG" in m and "/" in m})
        if tracking_uri:
            files = [Path(out_dir) / f for f in ("per_group.parquet", "recommendations.parquet", "summary.json")]
            log_summary(
                tracking_uri, dataset, run_name_of(name), summary, files, key=output_key(out_dir),
                start_time=started, provenance=provenance, tags={"sagea.dataset_card": card_digest},
            )  # fmt: skip
    return summaries


def _note(template: str | None, provenance, attr: str, default: str, fields: Mapping[str, Any]) -> str:
    """The run's ``note``: ``template``, else the provenance's (config ``mlflow.<attr>``), else the default."""
    from sagea.tracking import render_note

    template = template or (getattr(provenance, attr, None) if provenance is not None else None) or default
    return render_note(template, fields, f"mlflow.{attr}")


def evaluate_sagea_job(
    inputs: EvalInputs,
    out_dirs: Mapping[str, PathLike],
    scope: EvalScope,
    sagea: SageaSettings,
    settings: GroupEvalSettings,
    tracking: TrackingSettings = TrackingSettings(),
    threads: int | None = None,
) -> dict[str, dict]:
    """Evaluate every fusion in ``out_dirs`` (fusion -> output folder); returns the summaries."""
    from sagea.models.elsa import ELSA
    from sagea.models.sae import SAE
    from sagea.tracking import DEFAULT_NOTE

    started = time.time()
    set_threads(threads)
    provenance = tracking.provenance
    rows, groups, popularity = _load_common(inputs, settings.popularity_with_targets)
    elsa = ELSA.load(inputs.elsa_path, settings.device)
    sae = SAE.load(inputs.sae_path, settings.device)
    sae_hp = sagea.sae_hp
    k_sae = int(getattr(sae, "k", sae_hp.get("k", 0)))
    strategies = [
        SageaRecommender(
            elsa, sae, fusion, k_sae, sagea.topk_inference, sagea.normalize_users_embeddings, sagea.zero_fallback
        )
        for fusion in out_dirs
    ]
    option = sagea.option
    loss_id = sae_hp.get("reconstruction_loss", "l2")
    note = _note(tracking.note, provenance, "note", DEFAULT_NOTE, {  # before the evaluation: fails fast
        "dataset": scope.dataset, "study": getattr(provenance, "study", ""), "user_set": scope.pool,
        "group_set": scope.groupset, "elsa_run": scope.elsa_run, "strategy": "SAGEA", "sae_run": sagea.sae_run,
        "option": option, "variant": sae_hp.get("variant", ""), "width": int(sae_hp["width"]), "k": k_sae,
        "loss": {"l2": "L2", "cosine": "Cosine"}.get(loss_id, loss_id), "loss_id": loss_id,
        "contrastive": sae_hp.get("contrastive_coef", 0.0),
        "topk_inference": sagea.topk_inference, "normalize_users_embeddings": sagea.normalize_users_embeddings,
        "acts": "with_acts" if sagea.topk_inference else "without_acts",
        "normalized": "_normalized" if sagea.normalize_users_embeddings else "",
    })  # fmt: skip
    try:
        results = evaluate_groups(
            strategies, rows, groups, settings, popularity, read_embeddings(inputs.item_embeddings_path), elsa
        )
    except NonFiniteError as err:
        if str(inputs.item_embeddings_path) in str(err):
            raise
        raise NonFiniteError(
            f"{inputs.sae_path} (SAE) with {inputs.elsa_path} (ELSA) on {inputs.groups_path}: {err}; the checkpoints' "
            "weights are finite, so the scores overflowed: retrain the SAE (`snakemake --forcerun train_sae`)"
        ) from err

    def params_of(fusion: str) -> dict:
        return run_params(
            scope.dataset, "SAGEA", fusion, scope.pool, scope.groupset, groups.shape[1], int(sae_hp["width"]), k_sae,
            note, sagea.topk_inference, sagea.normalize_users_embeddings,
            extra={"elsa_run": scope.elsa_run, "sae_run": sagea.sae_run, "option": option, "eval_k": settings.k,
                   "zero_fallback": sagea.zero_fallback, "shared_mask": settings.shared_mask},
        )  # fmt: skip

    return _write_all(
        results, out_dirs, params_of, settings.k, tracking, scope.dataset,
        lambda f: f"SAGEA-{f}-{sagea.sae_run}-{option}-{scope.pool}-{scope.groupset}-{scope.elsa_run}",
        started, Path(inputs.data_dir) / "card.json",
    )  # fmt: skip


def build_baselines(
    names, elsa, popularity, elsa_seen_at_zero: bool = False, aggregation_seen_at_zero: bool = False
) -> list:
    """Baseline strategies by registered name (:mod:`sagea.registry`); the flags reproduce defects 6 and 7."""
    return [
        registry.build_baseline(name, elsa, popularity, elsa_seen_at_zero=elsa_seen_at_zero,
                                aggregation_seen_at_zero=aggregation_seen_at_zero)
        for name in names
    ]  # fmt: skip


def evaluate_baselines_job(
    inputs: EvalInputs,
    out_dirs: Mapping[str, PathLike],
    scope: EvalScope,
    settings: GroupEvalSettings,
    baselines: BaselineSettings = BaselineSettings(),
    tracking: TrackingSettings = TrackingSettings(),
    threads: int | None = None,
) -> dict[str, dict]:
    """Evaluate every baseline in ``out_dirs`` (strategy -> output folder); returns the summaries.

    The runs' ``note`` template has the fields ``sagea.tracking.BASELINE_NOTE_FIELDS``.
    """
    from sagea.models.elsa import ELSA
    from sagea.tracking import DEFAULT_BASELINE_NOTE

    started = time.time()
    set_threads(threads)
    provenance = tracking.provenance
    rows, groups, popularity = _load_common(inputs, settings.popularity_with_targets)
    elsa = ELSA.load(inputs.elsa_path, settings.device)
    strategies = build_baselines(
        list(out_dirs), elsa, popularity, baselines.elsa_seen_at_zero, baselines.aggregation_seen_at_zero
    )
    notes = {  # before the evaluation: a bad template fails fast
        name: _note(tracking.note, provenance, "baseline_note", DEFAULT_BASELINE_NOTE, {
            "dataset": scope.dataset, "study": getattr(provenance, "study", ""), "user_set": scope.pool,
            "group_set": scope.groupset, "elsa_run": scope.elsa_run, "strategy": name,
        })  # fmt: skip
        for name in out_dirs
    }
    results = evaluate_groups(
        strategies, rows, groups, settings, popularity, read_embeddings(inputs.item_embeddings_path), elsa
    )
    factors = int(elsa.encoder.shape[1])

    def params_of(name: str) -> dict:
        return run_params(
            scope.dataset, name, None, scope.pool, scope.groupset, groups.shape[1], factors, None, notes[name],
            extra={"elsa_run": scope.elsa_run, "eval_k": settings.k, "shared_mask": settings.shared_mask,
                   "popularity_with_targets": settings.popularity_with_targets},
        )  # fmt: skip

    return _write_all(
        results, out_dirs, params_of, settings.k, tracking, scope.dataset,
        lambda s: f"{s}-{scope.pool}-{scope.groupset}-{scope.elsa_run}",
        started, Path(inputs.data_dir) / "card.json",
    )  # fmt: skip
