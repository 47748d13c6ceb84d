"""The evaluation stage's jobs: SAGEA fusions and baselines on one group set.

Each function is what one workflow rule does, with every setting passed in (no ``config``):
read the upstream files (docs/ARCHITECTURE.md), build the strategies, evaluate all groups in
chunks (:func:`sagea.evaluation.group.evaluate_groups`), write one folder per strategy and,
when a tracking URI is given, log one MLflow run per folder in ``GR_<dataset>``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping

from sagea.data.matrix import load_interactions, load_split
from sagea.evaluation.group import (
    GroupEvalSettings,
    evaluate_groups,
    log_summary,
    run_params,
    write_strategy_outputs,
)
from sagea.io import NonFiniteError, read_embeddings, read_parquet
from sagea.runtime import set_threads
from sagea.recommenders.aggregation import SCORE_AGGREGATIONS, ElsaMean, ElsaUnion, ScoreAggregation
from sagea.recommenders.epfuzzda import EPFuzzDA
from sagea.recommenders.gfar import GFAR
from sagea.recommenders.popular import Popular, item_popularity
from sagea.recommenders.sagea import SageaRecommender

log = logging.getLogger(__name__)


def _settings(settings: Mapping[str, Any] | GroupEvalSettings, device: str, threads: int | None = None) -> GroupEvalSettings:
    set_threads(threads)
    if isinstance(settings, GroupEvalSettings):
        return settings
    from sagea.runtime import select_device

    return GroupEvalSettings(**{**dict(settings), "device": str(select_device(device))})


def _load_common(data_dir, split_path, groups_path, popularity_with_targets: bool):
    from sagea.groups.io import load_groups

    rows = load_interactions(data_dir)
    split = load_split(split_path)
    groups = load_groups(groups_path)
    if groups.size and groups.max() >= rows.shape[0]:
        raise ValueError(f"{groups_path}: user index {groups.max()} beyond the {rows.shape[0]} users of {data_dir}")
    popularity = item_popularity(rows, split["train"], with_targets=popularity_with_targets)
    return rows, groups, popularity


def _write_all(
    results, out_dirs, params_of, k, tracking_uri, dataset, run_name_of, mlflow=None, data_dir=None
) -> dict[str, dict]:
    """Write every strategy's folder; with a tracking URI log each as one run keyed by its folder.

    ``mlflow``: ``(started, provenance, card_path)`` of the job; ``data_dir``: the lists get the
    original item ids of its ``items.parquet``.
    """
    from sagea.tracking import file_digest, output_key

    started, provenance, card = mlflow or (None, None, None)
    card_digest = (file_digest(card) if card else None) or "none"
    item_ids = None
    if data_dir is not None:
        item_ids = read_parquet(Path(data_dir) / "items.parquet", columns=["original_id"])["original_id"].to_numpy()
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
    data_dir: str | os.PathLike,
    split_path: str | os.PathLike,
    groups_path: str | os.PathLike,
    elsa_path: str | os.PathLike,
    item_embeddings_path: str | os.PathLike,
    sae_path: str | os.PathLike,
    out_dirs: Mapping[str, str | os.PathLike],
    *,
    dataset: str,
    pool: str,
    groupset: str,
    elsa_run: str,
    sae_run: str,
    sae_hp: Mapping[str, Any],
    topk_inference: bool,
    normalize_users_embeddings: bool,
    zero_fallback: str,
    settings: Mapping[str, Any] | GroupEvalSettings,
    popularity_with_targets: bool = False,
    device: str = "auto",
    tracking_uri: str | None = None,
    note: str | None = None,
    threads: int | None = None,
    provenance: Any = None,
) -> dict[str, dict]:
    """Evaluate every fusion in ``out_dirs`` (fusion -> output folder); returns the summaries.

    ``note``: template of the runs' ``note`` (fields: ``sagea.tracking.NOTE_FIELDS``; default the
    provenance's, else ``sagea.tracking.DEFAULT_NOTE``). ``provenance``: ``sagea.tracking.Provenance``.
    """
    from sagea.models.elsa import ELSA
    from sagea.models.sae import SAE
    from sagea.tracking import DEFAULT_NOTE

    started = time.time()
    settings = _settings(settings, device, threads)
    rows, groups, popularity = _load_common(data_dir, split_path, groups_path, popularity_with_targets)
    elsa = ELSA.load(elsa_path, settings.device)
    sae = SAE.load(sae_path, settings.device)
    k_sae = int(getattr(sae, "k", sae_hp.get("k", 0)))
    strategies = [
        SageaRecommender(elsa, sae, fusion, k_sae, topk_inference, normalize_users_embeddings, zero_fallback)
        for fusion in out_dirs
    ]
    option = f"ti{int(topk_inference)}-nu{int(normalize_users_embeddings)}"
    loss_id = sae_hp.get("reconstruction_loss", "l2")
    note = _note(note, provenance, "note", DEFAULT_NOTE, {  # before the evaluation: fails fast
        "dataset": dataset, "study": getattr(provenance, "study", ""), "user_set": pool, "group_set": groupset,
        "elsa_run": elsa_run, "strategy": "SAGEA", "sae_run": sae_run, "option": option,
        "variant": sae_hp.get("variant", ""), "width": int(sae_hp["width"]), "k": k_sae,
        "loss": {"l2": "L2", "cosine": "Cosine"}.get(loss_id, loss_id), "loss_id": loss_id,
        "contrastive": sae_hp.get("contrastive_coef", 0.0),
        "topk_inference": topk_inference, "normalize_users_embeddings": normalize_users_embeddings,
        "acts": "with_acts" if topk_inference else "without_acts",
        "normalized": "_normalized" if normalize_users_embeddings else "",
    })  # fmt: skip
    try:
        results = evaluate_groups(
            strategies, rows, groups, settings, popularity, read_embeddings(item_embeddings_path), elsa
        )
    except NonFiniteError as err:
        if str(item_embeddings_path) in str(err):
            raise
        raise NonFiniteError(
            f"{sae_path} (SAE) with {elsa_path} (ELSA) on {groups_path}: {err}; the checkpoints' weights are "
            "finite, so the scores overflowed: retrain the SAE (`snakemake --forcerun train_sae`)"
        ) from err

    def params_of(fusion: str) -> dict:
        return run_params(
            dataset, "SAGEA", fusion, pool, groupset, groups.shape[1], int(sae_hp["width"]), k_sae, note,
            topk_inference, normalize_users_embeddings,
            extra={"elsa_run": elsa_run, "sae_run": sae_run, "option": option, "eval_k": settings.k,
                   "zero_fallback": zero_fallback, "shared_mask": settings.shared_mask},
        )  # fmt: skip

    return _write_all(
        results, out_dirs, params_of, settings.k, tracking_uri, dataset,
        lambda f: f"SAGEA-{f}-{sae_run}-{option}-{pool}-{groupset}-{elsa_run}",
        (started, provenance, Path(data_dir) / "card.json"), data_dir,
    )  # fmt: skip


def build_baselines(
    names, elsa, popularity, elsa_seen_at_zero: bool = False, aggregation_seen_at_zero: bool = False
) -> list:
    """Baseline strategies by name (``plan.BASELINES``); the flags reproduce defects 6 and 7."""
    out = []
    for name in names:
        if name == "ELSA":
            out.append(ElsaMean(elsa, seen_at_zero=elsa_seen_at_zero))
        elif name == "ELSA_INT":
            out.append(ElsaUnion(elsa))
        elif name in SCORE_AGGREGATIONS:
            out.append(ScoreAggregation(elsa, name, seen_at_zero=aggregation_seen_at_zero))
        elif name == "GFAR":
            out.append(GFAR(elsa))
        elif name == "EPFuzzDA":
            out.append(EPFuzzDA(elsa))
        elif name == "POPULAR":
            out.append(Popular(popularity))
        else:
            raise ValueError(f"unknown baseline {name!r} (config evaluation.baselines)")
    return out


def evaluate_baselines_job(
    data_dir: str | os.PathLike,
    split_path: str | os.PathLike,
    groups_path: str | os.PathLike,
    elsa_path: str | os.PathLike,
    item_embeddings_path: str | os.PathLike,
    out_dirs: Mapping[str, str | os.PathLike],
    *,
    dataset: str,
    pool: str,
    groupset: str,
    elsa_run: str,
    settings: Mapping[str, Any] | GroupEvalSettings,
    popularity_with_targets: bool = False,
    device: str = "auto",
    tracking_uri: str | None = None,
    note: str | None = None,
    threads: int | None = None,
    elsa_seen_at_zero: bool = False,
    aggregation_seen_at_zero: bool = False,
    provenance: Any = None,
) -> dict[str, dict]:
    """Evaluate every baseline in ``out_dirs`` (strategy -> output folder); returns the summaries.

    ``elsa_seen_at_zero`` / ``aggregation_seen_at_zero`` reproduce defects 6 / 7 (seen items as
    candidates with score 0 in ELSA / ADD, MUL, LMS, MPL).

    ``note``: template of the runs' ``note`` (fields ``sagea.tracking.BASELINE_NOTE_FIELDS``).
    """
    from sagea.models.elsa import ELSA
    from sagea.tracking import DEFAULT_BASELINE_NOTE

    started = time.time()
    settings = _settings(settings, device, threads)
    rows, groups, popularity = _load_common(data_dir, split_path, groups_path, popularity_with_targets)
    elsa = ELSA.load(elsa_path, settings.device)
    strategies = build_baselines(list(out_dirs), elsa, popularity, elsa_seen_at_zero, aggregation_seen_at_zero)
    notes = {  # before the evaluation: a bad template fails fast
        name: _note(note, provenance, "baseline_note", DEFAULT_BASELINE_NOTE, {
            "dataset": dataset, "study": getattr(provenance, "study", ""), "user_set": pool,
            "group_set": groupset, "elsa_run": elsa_run, "strategy": name,
        })  # fmt: skip
        for name in out_dirs
    }
    results = evaluate_groups(
        strategies, rows, groups, settings, popularity, read_embeddings(item_embeddings_path), elsa
    )
    factors = int(elsa.encoder.shape[1])

    def params_of(name: str) -> dict:
        return run_params(
            dataset, name, None, pool, groupset, groups.shape[1], factors, None, notes[name],
            extra={"elsa_run": elsa_run, "eval_k": settings.k, "shared_mask": settings.shared_mask,
                   "popularity_with_targets": popularity_with_targets},
        )  # fmt: skip

    return _write_all(
        results, out_dirs, params_of, settings.k, tracking_uri, dataset,
        lambda s: f"{s}-{pool}-{groupset}-{elsa_run}",
        (started, provenance, Path(data_dir) / "card.json"), data_dir,
    )  # fmt: skip

