"""The ELSA stage's jobs: train + evaluate ELSA, extract embeddings, single-user baselines.

Each function is what one workflow rule does, with every setting passed in (no ``config``):
read the data stage's files (docs/ARCHITECTURE.md), call the library, write the outputs
atomically and, when a tracking URI is given, log one MLflow run.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from sagea.data.matrix import load_interactions, load_split
from sagea.evaluation.single_user import evaluate_scorer, single_user_split
from sagea.evaluation.validation_streams import legacy_target_split
from sagea.io import check_finite, read_json, write_embeddings, write_json, write_parquet
from sagea.models import elsa as elsa_model
from sagea.models.training import FitResult, clear_training_state, state_path
from sagea.recommenders.user_baselines import ease_scorer, pop_scorer
from sagea.runtime import seed_everything, select_device, set_threads

log = logging.getLogger(__name__)

#: Hyperparameters of one ELSA run (``plan.elsa_hp``).
ELSA_HP_KEYS = ("factors", "lr", "beta1", "beta2", "batch_size", "epochs", "patience", "seed")


def _find_key(obj: Any, key: str) -> Any:
    """First value of ``key`` anywhere in a nested dict/list (the data card's layout is the data stage's)."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        obj = list(obj.values())
    if isinstance(obj, list):
        for value in obj:
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def load_data(data_dir: str | os.PathLike, split_path: str | os.PathLike) -> tuple[sp.csr_matrix, dict[str, np.ndarray]]:
    """The full 0/1 CSR and the user split, with a clear error when they disagree."""
    matrix = load_interactions(data_dir)
    split = load_split(split_path)
    n_split = sum(len(v) for v in split.values())
    if n_split != matrix.shape[0]:
        raise ValueError(
            f"{split_path} assigns {n_split} users but {data_dir}/users.parquet has {matrix.shape[0]}; "
            "rebuild the data stage (delete results/<dataset>/data/ and rerun)"
        )
    return matrix, split


def train_elsa(
    data_dir: str | os.PathLike,
    split_path: str | os.PathLike,
    model_path: str | os.PathLike,
    metrics_path: str | os.PathLike,
    history_path: str | os.PathLike,
    hp: dict[str, Any],
    *,
    k: int = 20,
    target_fraction: float = 0.2,
    split_seed: int = 42,
    target_method: str = "ours",
    device: str = "auto",
    threads: int | None = None,
    eval_batch_size: int = 1024,
    dataset: str = "",
    run_name: str = "",
    data_params: dict[str, Any] | None = None,
    mlflow_uri: str | None = None,
    research: dict[str, Any] | None = None,
    provenance: Any = None,
) -> dict:
    """Train ELSA on the training users, early-stop on validation, evaluate on test, write outputs.

    With ``research`` (config ``datasets.<name>.elsa_import``: ``path``) the encoder is imported from
    a research checkpoint instead of trained; its shape must be ``[items, factors]`` of this data.

    ``hp``: factors, lr, beta1, beta2, batch_size, epochs, patience, seed (config ``elsa``);
    optional research switches ``research_validation`` (the validation users' targets redrawn
    every epoch from seed ``split_seed + epoch``, :func:`validation_pairs`) and
    ``research_step_order`` (:func:`sagea.models.elsa.fit`).
    ``target_fraction``, ``split_seed``, ``target_method``: the single-user targets of the
    valid/test users (``datasets.<name>.split``), drawn in the split's row order.
    ``data_params``: min_user_interactions / min_item_interactions fallbacks for MLflow when the
    data card does not state them. ``provenance``: :class:`sagea.tracking.Provenance` of the
    MLflow run. Returns the metrics dict written to ``metrics_path``.
    """
    started = time.time()
    missing = [key for key in ELSA_HP_KEYS if key not in hp]
    if missing:
        raise KeyError(f"ELSA hyperparameters {missing} missing (config section elsa)")
    set_threads(threads)
    seed_everything(int(hp["seed"]))
    dev = select_device(device)
    matrix, split = load_data(data_dir, split_path)
    train = matrix[split["train"]]
    valid = single_user_split(matrix, split["valid"], target_fraction, split_seed, target_method)
    test = single_user_split(matrix, split["test"], target_fraction, split_seed, target_method)
    log.info(
        "ELSA %s on %s: %d items, %d train / %d valid / %d test users, device %s",
        run_name, dataset, matrix.shape[1], len(split["train"]), len(split["valid"]), len(split["test"]), dev,
    )  # fmt: skip
    state_file = state_path(Path(model_path).parent)
    tic = time.perf_counter()
    if research:
        from sagea.research import research_elsa

        model = research_elsa(research["path"], relu=bool(hp.get("relu", True))).to(dev)
        if (model.n_items, model.factors) != (matrix.shape[1], int(hp["factors"])):
            raise ValueError(
                f"research ELSA {research['path']} is [{model.n_items}, {model.factors}] but this dataset has "
                f"{matrix.shape[1]} items and elsa.factors is {hp['factors']}; prepare the data as the research "
                "code did (same filters and index order) and set the factors to match"
            )
        fit = FitResult()
    else:
        model = elsa_model.ELSA(
            matrix.shape[1], int(hp["factors"]), seed=int(hp["seed"]), relu=bool(hp.get("relu", True))
        )
        valid_stream = validation_pairs(matrix[split["valid"]], target_fraction, split_seed, valid,
                                        bool(hp.get("research_validation", False)))  # fmt: skip
        validate = validator(valid_stream, k=k, batch_size=eval_batch_size, device=dev)
        fit = elsa_model.fit(
            model, train, validate if len(split["valid"]) else None,
            lr=hp["lr"], beta1=hp["beta1"], beta2=hp["beta2"], batch_size=int(hp["batch_size"]),
            epochs=int(hp["epochs"]), patience=int(hp["patience"]), seed=int(hp["seed"]), k=k,
            device=dev, checkpoint_path=state_file,
            research_step_order=bool(hp.get("research_step_order", False)),
        )  # fmt: skip
    seconds = time.perf_counter() - tic

    def evaluate(pair):
        return evaluate_scorer(model.scores, *pair, k=k, batch_size=eval_batch_size, device=dev)

    metrics = {
        "valid": evaluate(valid),
        "test": evaluate(test),
        "history": fit.history,
        "best_epoch": fit.best_epoch,
        "stopped_early": fit.stopped_early,
        "train_seconds": seconds,
        "hyperparameters": dict(hp),
        **({"imported_from": str(research["path"])} if research else {}),
    }
    log.info(
        "best epoch %d: valid NDCG%d %.4f, test NDCG%d %.4f",
        fit.best_epoch,
        k,
        metrics["valid"][f"NDCG{k}"],
        k,
        metrics["test"][f"NDCG{k}"],
    )
    diverged = "training diverged: lower elsa.lr, then rerun `snakemake --forcerun train_elsa`"
    check_finite(model.encoder, model_path, "ELSA encoder weights to write", diverged)
    for part in ("valid", "test"):
        check_finite(dict(metrics[part]), metrics_path, f"{part} metrics to write", diverged)
    extra = {"imported_from": str(research["path"])} if research else {}
    model.save(model_path, hyperparameters={**hp, "k": k}, best_epoch=fit.best_epoch, dataset=dataset, **extra)
    history = pd.DataFrame(fit.history)
    cols = ["epoch", "loss", f"NDCG{k}_valid", f"R{k}_valid", "seconds"]
    for col in cols:
        if col not in history:
            history[col] = np.nan
    history = history[cols].astype({"epoch": "int32"})
    write_parquet(history, history_path)
    write_json(metrics, metrics_path)
    if mlflow_uri and not research:  # an imported model's run is the research one
        _log_mlflow(
            mlflow_uri, data_dir, dataset, run_name, hp, matrix, k, metrics, fit.history,
            [model_path, metrics_path, history_path], data_params or {}, started, provenance,
        )  # fmt: skip
    clear_training_state(state_file)
    return metrics


def validator(valid, *, k: int = 20, batch_size: int = 1024, device: torch.device | str = "cpu"):
    """ELSA's validation for :func:`sagea.models.elsa.fit`: ``(model, epoch) -> metrics`` of
    :func:`sagea.evaluation.single_user.evaluate_scorer` on ``valid`` = (inputs, targets), or on
    ``valid(epoch)`` when it is a function (targets redrawn every epoch, :func:`validation_pairs`)."""

    def validate(model: elsa_model.ELSA, epoch: int) -> dict[str, float]:
        pair = valid(epoch) if callable(valid) else valid
        return evaluate_scorer(model.scores, *pair, k=k, batch_size=batch_size, device=device, desc="validate")

    return validate


def validation_pairs(rows, target_fraction: float, split_seed: int, fixed, research: bool):
    """What ELSA validates on: the ``fixed`` (inputs, targets) pair, or with ``research`` a function
    ``epoch -> (inputs, targets)`` drawing the targets of ``rows`` anew from seed ``split_seed + epoch``
    (the research code's legacy per-row permutations; epochs count from 1 as there)."""
    if not research:
        return fixed
    return lambda epoch: legacy_target_split(rows, target_fraction, split_seed + epoch)


def _log_mlflow(uri, data_dir, dataset, run_name, hp, matrix, k, metrics, history, files, data_params, started,
                provenance) -> None:
    """One run in ``Dense_<dataset>``: final metrics of the restored best epoch, history per epoch."""
    from sagea.tracking import file_digest, log_run, output_key

    card_path = Path(data_dir) / "card.json"
    card = read_json(card_path) if card_path.exists() else {}
    filters = {key: _find_key(card, key) for key in ("min_user_interactions", "min_item_interactions")}
    filters = {key: value if value is not None else data_params.get(key) for key, value in filters.items()}
    params = {
        "model": "ELSA", "dataset": dataset, "factors": hp["factors"], "items": matrix.shape[1],
        "users": matrix.shape[0], "lr": hp["lr"], "beta1": hp["beta1"], "beta2": hp["beta2"],
        "batch_size": hp["batch_size"], "epochs": hp["epochs"], "early_stop": hp["patience"],
        "seed": hp["seed"], "relu": hp.get("relu", True), **filters, "elsa_run": run_name,
    }  # fmt: skip
    # per-epoch values under history/...; the plain names hold the restored best model's values
    series = {"loss/train": "loss", f"NDCG{k}/valid": f"NDCG{k}_valid", f"R{k}/valid": f"R{k}_valid"}
    step_metrics = {f"history/{name}": [(r["epoch"], r.get(col)) for r in history] for name, col in series.items()}
    final = {f"{name}/{part}": metrics[part][name] for part in ("valid", "test") for name in metrics[part] if name != "users"}
    best = [r for r in history if r["epoch"] == metrics["best_epoch"]]
    if best:
        final["loss/train"] = best[0]["loss"]
    final["best_epoch"] = metrics["best_epoch"]
    final["epochs_run"] = len(history)
    tags = {"sagea.stage": "elsa", "sagea.dataset_card": file_digest(card_path) or "none"}
    log_run(
        uri, f"Dense_{dataset}", run_name or "ELSA", params, final, step_metrics, artifacts=files, tags=tags,
        key=output_key(Path(files[0]).parent), start_time=started, provenance=provenance,
    )


def extract_embeddings(
    model_path: str | os.PathLike,
    data_dir: str | os.PathLike,
    user_path: str | os.PathLike,
    item_path: str | os.PathLike,
    *,
    device: str = "auto",
    batch_size: int = 4096,
    threads: int | None = None,
) -> None:
    """``user_embeddings.parquet`` = ``x A`` of every user's full row; ``item_embeddings.parquet`` = rows of ``A``."""
    set_threads(threads)
    dev = select_device(device)
    model = elsa_model.ELSA.load(model_path, dev)
    matrix = load_interactions(data_dir)
    if matrix.shape[1] != model.n_items:
        raise ValueError(f"{model_path} has {model.n_items} items but {data_dir} has {matrix.shape[1]}; retrain ELSA")
    users = elsa_model.user_embeddings(model, matrix, batch_size=batch_size, device=dev)
    write_embeddings(users, "user", user_path)
    write_embeddings(model.item_embeddings().cpu().numpy(), "item", item_path)
    log.info("wrote %d user and %d item embeddings (d=%d)", users.shape[0], model.n_items, model.factors)


def single_user_baselines(
    data_dir: str | os.PathLike,
    split_path: str | os.PathLike,
    metrics_path: str | os.PathLike,
    *,
    ease_lambda: float = 500.0,
    k: int = 20,
    target_fraction: float = 0.2,
    split_seed: int = 42,
    target_method: str = "ours",
    device: str = "auto",
    batch_size: int = 1024,
    threads: int | None = None,
) -> dict:
    """POP and EASE fitted on the training users, evaluated on valid/test like ELSA."""
    set_threads(threads)
    dev = select_device(device)
    matrix, split = load_data(data_dir, split_path)
    train = matrix[split["train"]]
    parts = {
        name: single_user_split(matrix, split[name], target_fraction, split_seed, target_method)
        for name in ("valid", "test")
    }
    scorers = {"POP": lambda: pop_scorer(train, dev), "EASE": lambda: ease_scorer(train, ease_lambda, dev)}
    out: dict[str, dict] = {}
    for name, make in scorers.items():
        tic = time.perf_counter()
        score_fn = make()
        fit_seconds = time.perf_counter() - tic
        out[name] = {
            part: evaluate_scorer(score_fn, *pair, k=k, batch_size=batch_size, device=dev, desc=name)
            for part, pair in parts.items()
        }
        out[name]["fit_seconds"] = fit_seconds
        log.info(
            "%s: valid NDCG%d %.4f, test NDCG%d %.4f", name, k, out[name]["valid"][f"NDCG{k}"], k, out[name]["test"][f"NDCG{k}"]
        )
    out["EASE"]["lambda"] = ease_lambda
    for name in scorers:
        for part in parts:
            hint = "rerun `snakemake --forcerun single_user_baselines` (for EASE a larger elsa.ease_lambda may help)"
            check_finite(dict(out[name][part]), metrics_path, f"{name} {part} metrics to write", hint)
    write_json(out, metrics_path)
    return out
