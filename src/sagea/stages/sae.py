"""The SAE stage's jobs: train one SAE of the grid with its metrics, extract codes and features.

Each function is what one workflow rule does, with every setting passed in (no ``config``):
read the upstream files (docs/ARCHITECTURE.md), call the library, write the outputs atomically
and, when a tracking URI is given, log one MLflow run in ``Sparse_<dataset>``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sagea.analysis.sae_features import feature_table, sparse_codes
from sagea.data.matrix import load_interactions, load_split
from sagea.evaluation.sae_metrics import code_statistics, reconstruction_metrics
from sagea.evaluation.validation_streams import sampled_interactions_embeddings
from sagea.io import atomic_path, check_finite, read_embeddings, read_parquet, write_json, write_parquet, write_torch
from sagea.models.elsa import ELSA
from sagea.models.sae import LOSS_TERMS, MODEL_NAMES, RECONSTRUCTION_LOSSES, SAE, fit
from sagea.models.sae_data import EmbeddingData, InteractionData
from sagea.models.sae_grid import fit_stack, stack_key
from sagea.models.training import clear_training_state, state_path
from sagea.runtime import seed_everything, select_device, set_threads

log = logging.getLogger(__name__)

#: Keys of one SAE run's hyperparameters (``plan.sae_hp``; config section ``sae.base``).
SAE_HP_KEYS = (
    "variant", "width", "k", "reconstruction_loss", "l1_coef", "aux_coef", "contrastive_coef", "normalize",
    "lr", "beta1", "beta2", "batch_size", "epochs", "validate_every", "patience", "early_stop_unit",
    "dead_after", "aux_k", "train_path", "max_train_users", "seed",
)  # fmt: skip
METRIC_KEY_K = 20


def build_model(hp: dict[str, Any], input_dim: int) -> SAE:
    """An untrained SAE from a run's hyperparameters."""
    return SAE(
        input_dim, int(hp["width"]), int(hp["k"]), hp["variant"], hp["reconstruction_loss"],
        float(hp["l1_coef"]), float(hp["aux_coef"]), float(hp["contrastive_coef"]), bool(hp["normalize"]),
        int(hp["dead_after"]), int(hp["aux_k"]), seed=int(hp["seed"]), dead_rule=hp.get("dead_rule", "at_least"),
    )  # fmt: skip


def mlflow_params(hp: dict[str, Any], dataset: str, elsa_run: str, sae_run: str, base_factors: int) -> dict:
    """The research code's MLflow parameter names for one SAE run."""
    return {
        "dataset": dataset, "model": MODEL_NAMES[hp["variant"]], "embedding_dim": hp["width"],
        "top_k": hp["k"], "reconstruction_loss": RECONSTRUCTION_LOSSES[hp["reconstruction_loss"]],
        "l1_coef": hp["l1_coef"], "auxiliary_coef": hp["aux_coef"], "contrastive_coef": hp["contrastive_coef"],
        "reconstruction_coef": 1 - (hp["l1_coef"] + hp["aux_coef"] + hp["contrastive_coef"]),
        "base_factors": base_factors, "normalize": hp["normalize"], "lr": hp["lr"], "beta1": hp["beta1"],
        "beta2": hp["beta2"], "batch_size": hp["batch_size"], "epochs": hp["epochs"],
        "evaluate_every": hp["validate_every"], "early_stop": hp["patience"],
        "early_stop_unit": hp["early_stop_unit"], "n_batches_to_dead": hp["dead_after"], "topk_aux": hp["aux_k"],
        "train_path": hp["train_path"], "max_train_users": hp["max_train_users"], "seed": hp["seed"],
        "elsa_run": elsa_run, "sae_run": sae_run,
    }  # fmt: skip


def train_sae(
    embeddings_path: str | os.PathLike,
    elsa_path: str | os.PathLike,
    data_dir: str | os.PathLike,
    split_path: str | os.PathLike,
    model_path: str | os.PathLike,
    metrics_path: str | os.PathLike,
    history_path: str | os.PathLike,
    hp: dict[str, Any],
    *,
    target_fraction: float = 0.2,
    split_seed: int = 42,
    target_method: str = "ours",
    device: str = "auto",
    threads: int | None = None,
    eval_batch_size: int = 1024,
    dataset: str = "",
    elsa_run: str = "",
    sae_run: str = "",
    mlflow_uri: str | None = None,
    research: dict[str, Any] | None = None,
    provenance: Any = None,
) -> dict:
    """Train one SAE on the training users' ELSA embeddings; metrics on valid/test; write outputs.

    With ``research`` (config ``datasets.<name>.sae_import.<sae id>``: ``path`` and optionally
    ``k``, ``width``, ``variant``, ``mlflow: {tracking_uri, run_id}``) the weights are imported from
    a research checkpoint instead of trained (:mod:`sagea.research`); its k/width/variant must
    agree with ``hp`` (the SAE id), and the metrics are computed as for a trained model.

    Fast path (``train_path: embeddings``) reads the precomputed ``user_embeddings.parquet``;
    the interaction path encodes batches through the ELSA checkpoint on the fly and is taken
    whenever ``contrastive_coef > 0`` (the positive views need the interactions).
    ``max_train_users`` subsamples the training users (seeded). Optional research switches in
    ``hp``: ``research_validation`` (validation losses on :func:`research_validation_data`),
    ``research_step_order`` (:func:`sagea.models.sae.fit`), ``dead_rule``. ``provenance``:
    :class:`sagea.tracking.Provenance` of the MLflow run. Returns the metrics dict.
    """
    started = time.time()
    _check_hp(hp)
    set_threads(threads)
    seed = int(hp["seed"])
    seed_everything(seed)
    inputs = _load_inputs(embeddings_path, elsa_path, data_dir, split_path, device)
    job = SAEJob(sae_run, hp, model_path, metrics_path, history_path, research)
    settings = dict(target_fraction=target_fraction, split_seed=split_seed, target_method=target_method,
                    eval_batch_size=eval_batch_size, dataset=dataset, elsa_run=elsa_run, mlflow_uri=mlflow_uri,
                    provenance=provenance, started=started)  # fmt: skip
    if research:
        return _import_research(research, hp, model_path, metrics_path, history_path, inputs.embeddings, inputs.elsa,
                                inputs.matrix, inputs.split, target_fraction, split_seed, eval_batch_size,
                                inputs.device, sae_run, target_method)  # fmt: skip
    data = _training_data(hp, inputs, eval_batch_size)
    model = build_model(hp, inputs.embeddings.shape[1])
    _log_start(job, data, inputs, dataset, elsa_run)
    return _train_alone(job, model, data, inputs, data_dir, settings)


@dataclass
class SAEJob:
    """One SAE of the grid in a job: its id, hyperparameters, output files and optional research import."""

    sae_run: str
    hp: dict[str, Any]
    model_path: str | os.PathLike
    metrics_path: str | os.PathLike
    history_path: str | os.PathLike
    research: dict[str, Any] | None = None


def train_sae_grid(
    embeddings_path: str | os.PathLike,
    elsa_path: str | os.PathLike,
    data_dir: str | os.PathLike,
    split_path: str | os.PathLike,
    jobs: list[SAEJob],
    *,
    stack: bool = True,
    target_fraction: float = 0.2,
    split_seed: int = 42,
    target_method: str = "ours",
    device: str = "auto",
    threads: int | None = None,
    eval_batch_size: int = 1024,
    dataset: str = "",
    elsa_run: str = "",
    mlflow_uri: str | None = None,
    provenance: Any = None,
) -> dict[str, dict]:
    """Train several SAEs of the grid on one ELSA run in one process; each writes what :func:`train_sae`
    writes (its files, one MLflow run). Returns the metrics per SAE id.

    The inputs are read once. With ``stack`` the SAEs that see the same batches (same training
    data, seed, batch size, epochs, validation cadence, Adam betas and step order; TopK or basic)
    are trained together as one stack (:mod:`sagea.models.sae_grid`: equal to one-at-a-time
    training up to float rounding) — on a GPU all widths in one stack, on a CPU one stack per
    width (BENCHMARKS.md, "SAE grid, batched"); the others, and all with ``stack=False``, one
    after another.
    A stack keeps no resumable state: an interrupted job trains it again from the start.
    """
    started = time.time()
    for job in jobs:
        _check_hp(job.hp)
    set_threads(threads)
    inputs = _load_inputs(embeddings_path, elsa_path, data_dir, split_path, device)
    settings = dict(target_fraction=target_fraction, split_seed=split_seed, target_method=target_method,
                    eval_batch_size=eval_batch_size, dataset=dataset, elsa_run=elsa_run, mlflow_uri=mlflow_uri,
                    provenance=provenance, started=started)  # fmt: skip
    out: dict[str, dict] = {}
    groups: dict[tuple, list[tuple[SAEJob, SAE]]] = {}
    for job in jobs:
        if job.research:
            out[job.sae_run] = _import_research(
                job.research, job.hp, job.model_path, job.metrics_path, job.history_path, inputs.embeddings,
                inputs.elsa, inputs.matrix, inputs.split, target_fraction, split_seed, eval_batch_size,
                inputs.device, job.sae_run, target_method,
            )  # fmt: skip
            continue
        model = build_model(job.hp, inputs.embeddings.shape[1])
        key = stack_key(model) if stack else None
        # a GPU step is bound by launch overhead: every width shares one stack (smaller ones padded);
        # on a CPU the arithmetic dominates and padding would waste it: one stack per width
        width = () if inputs.device.type == "cuda" else (model.hparams["width"],)
        key = (job.sae_run,) if key is None else (*_data_key(job.hp), *key, *width)
        groups.setdefault(key, []).append((job, model))
    for members in groups.values():
        hp = members[0][0].hp
        seed_everything(int(hp["seed"]))
        data = _training_data(hp, inputs, eval_batch_size)
        for job, _ in members:
            _log_start(job, data, inputs, dataset, elsa_run)
        if len(members) == 1:
            (job, model), = members
            out[job.sae_run] = _train_alone(job, model, data, inputs, data_dir, settings)
            continue
        tic = time.perf_counter()
        results = fit_stack(
            [model for _, model in members], data.train, data.valid,
            lrs=[float(job.hp["lr"]) for job, _ in members], patiences=[int(job.hp["patience"]) for job, _ in members],
            early_stop_units=[job.hp["early_stop_unit"] for job, _ in members], beta1=float(hp["beta1"]),
            beta2=float(hp["beta2"]), batch_size=int(hp["batch_size"]), epochs=int(hp["epochs"]),
            validate_every=int(hp["validate_every"]), seed=int(hp["seed"]), device=inputs.device,
            on_validation=[_on_validation(inputs, eval_batch_size)] * len(members),
            research_step_order=bool(hp.get("research_step_order", False)), names=[job.sae_run for job, _ in members],
        )  # fmt: skip
        seconds = time.perf_counter() - tic
        log.info("trained a stack of %d SAEs in %.1f s: %s", len(members), seconds, [j.sae_run for j, _ in members])
        for (job, model), result in zip(members, results):
            out[job.sae_run] = _write_outputs(job, model, result, seconds, data, inputs, data_dir, **settings,
                                              stack_size=len(members))  # fmt: skip
            clear_training_state(state_path(Path(job.model_path).parent))  # one left by an earlier single run
    return out


def _train_alone(job: SAEJob, model: SAE, data, inputs, data_dir, settings) -> dict:
    """One SAE of a grid job trained on its own (resumable, as :func:`train_sae`)."""
    hp = job.hp
    state_file = state_path(Path(job.model_path).parent)
    tic = time.perf_counter()
    result = fit(
        model, data.train, data.valid, lr=float(hp["lr"]), beta1=float(hp["beta1"]), beta2=float(hp["beta2"]),
        batch_size=int(hp["batch_size"]), epochs=int(hp["epochs"]), validate_every=int(hp["validate_every"]),
        patience=int(hp["patience"]), early_stop_unit=hp["early_stop_unit"], seed=int(hp["seed"]),
        device=inputs.device, checkpoint_path=state_file,
        fingerprint={"path": data.path, "n_users": len(inputs.embeddings)},
        on_validation=_on_validation(inputs, settings["eval_batch_size"]),
        research_step_order=bool(hp.get("research_step_order", False)),
    )  # fmt: skip
    metrics = _write_outputs(job, model, result, time.perf_counter() - tic, data, inputs, data_dir, **settings)
    clear_training_state(state_file)
    return metrics


def _check_hp(hp: dict[str, Any]) -> None:
    missing = [key for key in SAE_HP_KEYS if key not in hp]
    if missing:
        raise KeyError(f"SAE hyperparameters {missing} missing (config section sae.base)")


@dataclass
class _Inputs:
    embeddings: np.ndarray
    matrix: Any
    split: dict[str, np.ndarray]
    elsa: ELSA
    device: torch.device


def _load_inputs(embeddings_path, elsa_path, data_dir, split_path, device) -> _Inputs:
    """The ELSA embeddings, interactions, split and ELSA model an SAE job reads, checked against each other."""
    dev = select_device(device)
    embeddings = read_embeddings(embeddings_path)
    matrix = load_interactions(data_dir)
    split = load_split(split_path)
    if len(embeddings) != matrix.shape[0]:
        raise ValueError(
            f"{embeddings_path} has {len(embeddings)} users but {data_dir}/users.parquet {matrix.shape[0]}; "
            "rerun the ELSA stage for this dataset"
        )
    elsa = ELSA.load(elsa_path, dev)
    if elsa.factors != embeddings.shape[1]:
        raise ValueError(f"{elsa_path} has {elsa.factors} factors but {embeddings_path} {embeddings.shape[1]}")
    return _Inputs(embeddings, matrix, split, elsa, dev)


@dataclass
class _TrainingData:
    train: Any
    valid: Any
    path: str
    train_users: np.ndarray


def _data_key(hp: dict[str, Any]) -> tuple:
    """What decides the batches an SAE sees (and the settings a stack shares)."""
    contrastive = float(hp["contrastive_coef"]) > 0
    return ("interactions" if contrastive else hp["train_path"], contrastive, int(hp["seed"]), hp["max_train_users"],
            bool(hp.get("research_validation", False)), int(hp["batch_size"]), int(hp["epochs"]),
            int(hp["validate_every"]), float(hp["beta1"]), float(hp["beta2"]),
            bool(hp.get("research_step_order", False)))  # fmt: skip


def _training_data(hp: dict[str, Any], inputs: _Inputs, eval_batch_size: int) -> _TrainingData:
    """Training and validation data of one SAE run (the fast or the interaction path, subsampled users)."""
    seed, split, dev = int(hp["seed"]), inputs.split, inputs.device
    train_users = split["train"]
    if hp["max_train_users"] and len(train_users) > hp["max_train_users"]:
        train_users = np.sort(np.random.default_rng(seed).choice(train_users, int(hp["max_train_users"]), replace=False))
    contrastive = float(hp["contrastive_coef"]) > 0
    path = "interactions" if contrastive else hp["train_path"]
    if path != hp["train_path"]:
        log.info("contrastive_coef > 0: training on the interaction path (positive views need interactions)")
    if path == "interactions":
        train = InteractionData(inputs.matrix[train_users], inputs.elsa, contrastive, dev)
        valid = InteractionData(inputs.matrix[split["valid"]], inputs.elsa, contrastive, dev)
    else:
        train = EmbeddingData(torch.from_numpy(inputs.embeddings[train_users]).to(dev))
        valid = EmbeddingData(torch.from_numpy(inputs.embeddings[split["valid"]]).to(dev))
    if hp.get("research_validation", False):
        valid = research_validation_data(inputs.elsa, inputs.matrix[split["valid"]], seed, eval_batch_size, dev)
    return _TrainingData(train, valid, path, train_users)


def _log_start(job: SAEJob, data: _TrainingData, inputs: _Inputs, dataset: str, elsa_run: str) -> None:
    split = inputs.split
    log.info(
        "SAE %s on %s/%s: d=%d, %d train users (%s path), %d valid, %d test, device %s",
        job.sae_run, dataset, elsa_run, inputs.embeddings.shape[1], len(data.train_users), data.path,
        len(split["valid"]), len(split["test"]), inputs.device,
    )  # fmt: skip


def _on_validation(inputs: _Inputs, eval_batch_size: int):
    """What each validation adds to the history: CosineSim and DeadNeurons of the validation users."""
    if not len(inputs.split["valid"]):
        return None
    valid_embeddings = inputs.embeddings[inputs.split["valid"]]

    def on_validation(sae: SAE, epoch: int) -> dict[str, float]:
        stats = code_statistics(sae, valid_embeddings, eval_batch_size, True, inputs.device)
        return {f"{name}_valid": stats[name] for name in ("CosineSim", "DeadNeurons")}  # L0_valid: a loss term

    return on_validation


def _write_outputs(job: SAEJob, model: SAE, result, seconds: float, data: _TrainingData, inputs: _Inputs, data_dir,
                   *, target_fraction, split_seed, target_method, eval_batch_size, dataset, elsa_run, mlflow_uri,
                   provenance, started, stack_size: int | None = None) -> dict:  # fmt: skip
    """Metrics on valid/test, ``model.pt``, ``history.parquet``, ``metrics.json`` and the MLflow run of one SAE."""
    hp = job.hp
    metrics: dict[str, Any] = _split_metrics(model, inputs.elsa, inputs.matrix, inputs.embeddings, inputs.split,
                                             target_fraction, split_seed, target_method, eval_batch_size,
                                             inputs.device)  # fmt: skip
    metrics.update(
        history=result.history, best_epoch=result.best_epoch, best_valid_loss=result.best_score,
        epochs_run=result.epochs_run, stopped_early=result.stopped_early, train_seconds=seconds,
        train_users=len(data.train_users), train_path=data.path, hyperparameters=dict(hp),
    )  # fmt: skip
    if stack_size is not None:
        metrics["stack_size"] = stack_size  # trained in a stack of this many SAEs; train_seconds is the stack's
    diverged = "training diverged: lower sae.base.lr, then rerun `snakemake --forcerun train_sae`"
    checkpoint = model.checkpoint(training=dict(hp), best_epoch=result.best_epoch, dataset=dataset, elsa_run=elsa_run)
    check_finite(checkpoint["model_state_dict"], job.model_path, "SAE weights to write", diverged)
    for part in ("valid", "test"):
        check_finite(dict(metrics[part]), job.metrics_path, f"{part} metrics to write", diverged)
    write_torch(checkpoint, job.model_path)
    write_parquet(history_frame(result.history), job.history_path)
    write_json(metrics, job.metrics_path)
    if mlflow_uri:
        _log_mlflow(
            mlflow_uri, dataset, elsa_run, job.sae_run, hp, inputs.embeddings.shape[1], metrics,
            [job.model_path, job.metrics_path, job.history_path], Path(data_dir) / "card.json", started, provenance,
        )  # fmt: skip
    return metrics


def research_validation_data(elsa: ELSA, rows, seed: int, batch_size: int, device) -> EmbeddingData:
    """The research code's SAE validation set: ELSA encodings of the validation users' rows with each
    interaction kept with probability 0.8, and as positive views a second such draw (one seeded
    stream, embeddings first, as there)."""
    generator = torch.Generator().manual_seed(int(seed))
    sampled = [sampled_interactions_embeddings(elsa.encode, rows, generator, 0.8, batch_size, device) for _ in range(2)]
    return EmbeddingData(sampled[0], positives=sampled[1])


def _import_research(research, hp, model_path, metrics_path, history_path, embeddings, elsa, matrix, split,
                     target_fraction, split_seed, eval_batch_size, dev, sae_run, target_method="ours") -> dict:  # fmt: skip
    """The ``research`` branch of :func:`train_sae`: import, check against the SAE id, evaluate, write."""
    from sagea.research import VARIANTS, research_sae

    mlflow = research.get("mlflow") or {}
    model = research_sae(
        research["path"], k=research.get("k", hp["k"] if not mlflow else None), width=research.get("width"),
        variant=research.get("variant"), normalize=bool(hp["normalize"]),
        reconstruction_loss=hp["reconstruction_loss"], mlflow_uri=mlflow.get("tracking_uri"),
        run_id=mlflow.get("run_id"),
    )  # fmt: skip
    found = {"k": model.k, "width": model.hparams["width"], "variant": model.variant, "normalize": model.normalize}
    wanted = {"k": int(hp["k"]), "width": int(hp["width"]), "variant": VARIANTS[hp["variant"]],
              "normalize": bool(hp["normalize"])}  # fmt: skip
    if found != wanted:
        raise ValueError(
            f"research SAE {research['path']} has {found} but the SAE id {sae_run} means {wanted}; "
            f"list it under the sae_import id that matches (datasets.<name>.sae_import)"
        )
    if model.hparams["input_dim"] != embeddings.shape[1]:
        raise ValueError(f"research SAE {research['path']} expects d={model.hparams['input_dim']}, "
                         f"the ELSA embeddings have {embeddings.shape[1]}")  # fmt: skip
    model = model.to(dev)
    metrics: dict[str, Any] = _split_metrics(model, elsa, matrix, embeddings, split, target_fraction, split_seed,
                                             target_method, eval_batch_size, dev)  # fmt: skip
    metrics.update(history=[], best_epoch=0, best_valid_loss=None, epochs_run=0, stopped_early=False,
                   train_seconds=0.0, train_users=0, train_path="imported", hyperparameters=dict(hp),
                   imported_from=str(research["path"]))  # fmt: skip
    model.save(model_path, training=dict(hp), imported_from=str(research["path"]))
    write_parquet(history_frame([]), history_path)
    write_json(metrics, metrics_path)
    log.info("imported research SAE %s as %s", research["path"], sae_run)
    return metrics


def _split_metrics(model, elsa, matrix, embeddings, split, target_fraction, split_seed, target_method,
                   eval_batch_size, dev) -> dict[str, dict]:  # fmt: skip
    """Reconstruction metrics (CosineSim, L0, NDCG with the SAE inserted, ...) of the valid and test users."""
    metrics = {}
    for part in ("valid", "test"):
        users = split[part]
        metrics[part] = reconstruction_metrics(
            model, elsa, matrix[users], embeddings[users], target_fraction=target_fraction, seed=split_seed,
            target_method=target_method, k=METRIC_KEY_K, batch_size=eval_batch_size, device=dev,
        )  # fmt: skip
        log.info("%s: %s", part, ", ".join(f"{k}={v:.4f}" for k, v in metrics[part].items()))
    return metrics


def history_frame(history: list[dict]) -> pd.DataFrame:
    """One row per validation: epoch, train/valid loss terms (incl. L0), valid CosineSim/DeadNeurons, seconds."""
    cols = (["epoch"] + [f"{t}_{p}" for p in ("train", "valid") for t in LOSS_TERMS]
            + ["DeadLatents_train", "CosineSim_valid", "DeadNeurons_valid", "seconds"])  # fmt: skip
    frame = pd.DataFrame(history)
    for col in cols:
        if col not in frame:
            frame[col] = np.nan
    return frame[cols].astype({"epoch": "int32", **{c: "float64" for c in cols[1:]}})


def _log_mlflow(uri, dataset, elsa_run, sae_run, hp, base_factors, metrics, files, card, started, provenance) -> None:
    """One run in ``Sparse_<dataset>``: final metrics of the restored best model, history per validation."""
    from sagea.tracking import file_digest, log_run, output_key

    params = mlflow_params(hp, dataset, elsa_run, sae_run, base_factors)
    final = {f"{name}/{part}": value for part in ("valid", "test") for name, value in metrics[part].items()}
    history = metrics["history"]
    series = {f"loss/{t}/{p}": f"{t}_{p}" for t in LOSS_TERMS for p in ("train", "valid")}
    series.update({f"{name}/valid": f"{name}_valid" for name in ("CosineSim", "DeadNeurons")})
    # per-validation values under history/... (step = epoch); the plain names hold the restored best
    step_metrics = {f"history/{name}": [(r["epoch"], r.get(col)) for r in history] for name, col in series.items()}
    best = [r for r in history if r["epoch"] == metrics["best_epoch"]]
    if best:
        final.update({f"loss/{t}/{p}": best[0].get(f"{t}_{p}") for t in LOSS_TERMS for p in ("train", "valid")})
    final["best_epoch"] = metrics["best_epoch"]
    final["epochs_run"] = metrics["epochs_run"]
    tags = {"sagea.stage": "sae", "sagea.dataset_card": file_digest(card) or "none"}
    log_run(
        uri, f"Sparse_{dataset}", f"{elsa_run}/{sae_run}", params, final, step_metrics, artifacts=files, tags=tags,
        key=output_key(Path(files[0]).parent), start_time=started, provenance=provenance,
    )


def extract_sae(
    sae_path: str | os.PathLike,
    elsa_path: str | os.PathLike,
    embeddings_path: str | os.PathLike,
    items_path: str | os.PathLike,
    codes_topk_path: str | os.PathLike,
    codes_all_path: str | os.PathLike,
    features_path: str | os.PathLike,
    *,
    top_items: int = 10,
    batch_size: int = 4096,
    device: str = "auto",
    threads: int | None = None,
) -> None:
    """Sparse codes of every user (TopK at inference on / off) and the per-feature table."""
    set_threads(threads)
    dev = select_device(device)
    sae = SAE.load(sae_path, dev)
    elsa = ELSA.load(elsa_path, dev)
    embeddings = read_embeddings(embeddings_path)
    items = read_parquet(items_path)
    if len(items) != elsa.n_items:
        raise ValueError(f"{items_path} lists {len(items)} items but {elsa_path} has {elsa.n_items}; rerun ELSA")
    codes_topk = sparse_codes(sae, embeddings, True, batch_size, dev)
    codes_all = sparse_codes(sae, embeddings, False, batch_size, dev)
    titles = None
    if "title" in items:
        titles = items.sort_values("item")["title"].fillna("").astype(str).to_numpy()
    features = feature_table(sae, elsa, codes_topk, len(embeddings), top_items, titles, batch_size, dev)
    hint = "the SAE or the embeddings it encodes are broken; rerun `snakemake --forcerun train_sae`"
    check_finite(codes_topk["value"], codes_topk_path, "sparse codes (TopK at inference) to write", hint)
    check_finite(codes_all["value"], codes_all_path, "sparse codes (all activations) to write", hint)
    check_finite(features[["mean_activation"]], features_path, "feature table to write", hint)
    write_parquet(codes_topk, codes_topk_path)
    write_parquet(codes_all, codes_all_path)
    write_features(features, features_path)
    log.info(
        "codes of %d users: L0 %.2f with TopK, %.2f without; %d of %d features ever active",
        len(embeddings), len(codes_topk) / max(len(embeddings), 1), len(codes_all) / max(len(embeddings), 1),
        int((features["frequency"] > 0).sum()), len(features),
    )  # fmt: skip


def write_features(features: pd.DataFrame, path: str | os.PathLike) -> None:
    """``features.parquet`` with the contract's explicit types (list<int32>, list<string>)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("feature", pa.int32()), ("frequency", pa.float32()), ("mean_activation", pa.float32()),
                        ("top_items", pa.list_(pa.int32())), ("top_titles", pa.list_(pa.string()))])  # fmt: skip
    table = pa.Table.from_pandas(features, schema=schema, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
