"""ELSA — Scalable Linear Shallow Autoencoder (Vančura et al., RecSys 2022), docs/method.md §2.

One parameter ``encoder`` = ``A [items, factors]`` with unit-norm rows:

    encode(x)  = x A                      (user embedding, [B, d])
    decode(e)  = e Aᵀ                     ([B, items])
    forward(x) = relu(x A Aᵀ − x)         (prediction used in the loss)
    scores(x)  = x A Aᵀ − x               (ranking scores; min-max + input exclusion at evaluation)
    loss       = mean_b ‖ p_b/‖p_b‖ − x_b/‖x_b‖ ‖²   (normalised MSE)

Each step: backprop, project each row's gradient on the tangent space of the unit sphere
(``g ← g − (g·a) a``), Adam step (lr 1e-4, betas 0.9/0.99), re-normalise the rows, so the saved
rows are exactly unit-norm. ``research_step_order`` reproduces the research code instead:
re-normalise the rows, project the gradient on the re-normalised rows, then the Adam step (rows
end each step off the sphere by about the step size, ~1e-4). The state dict key is
``encoder``, as in the research code, so checkpoints are interchangeable.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

import sagea
from sagea.checkpoint import clear_training_state, load_training_state, save_training_state
from sagea.data.batches import DeviceCSR
from sagea.evaluation.single_user import evaluate_scorer
from sagea.io import NonFiniteError, check_finite, read_torch, write_torch
from sagea.runtime import progress
from sagea.scoring import elsa_scores

log = logging.getLogger(__name__)


class ELSA(nn.Module):
    """Linear autoencoder with tied, row-normalised item embeddings ``encoder [items, factors]``."""

    def __init__(self, n_items: int, factors: int, seed: int | None = None, relu: bool = True) -> None:
        super().__init__()
        # relu=False trains on the raw x A Aᵀ − x, as the official elsarec does (benchmarks/elsa_vs_elsarec.py)
        self.relu = relu
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        weight = nn.init.kaiming_uniform_(torch.empty(n_items, factors), generator=generator)
        self.encoder = nn.Parameter(F.normalize(weight, dim=1))

    @property
    def n_items(self) -> int:
        return self.encoder.shape[0]

    @property
    def factors(self) -> int:
        return self.encoder.shape[1]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``x A`` (``x`` dense or a torch sparse tensor)."""
        return torch.sparse.mm(x, self.encoder) if x.is_sparse else x @ self.encoder

    def decode(self, e: torch.Tensor) -> torch.Tensor:
        """``e Aᵀ``."""
        return e @ self.encoder.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Prediction ``relu(x A Aᵀ − x)`` (without the ReLU when ``relu`` is False)."""
        prediction = elsa_scores(self, x)
        return F.relu(prediction) if self.relu else prediction

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Ranking scores ``x A Aᵀ − x``."""
        return elsa_scores(self, x)

    @torch.no_grad()
    def project_gradient(self) -> None:
        """Keep the update tangent to the unit sphere: ``g ← g − (g·a) a`` per row."""
        a, g = self.encoder, self.encoder.grad
        if g is not None:
            g.sub_((g * a).sum(dim=1, keepdim=True) * a)

    @torch.no_grad()
    def normalize_rows(self) -> None:
        self.encoder.copy_(F.normalize(self.encoder, dim=1))

    def item_embeddings(self) -> torch.Tensor:
        """The L2-normalised rows of ``A`` (detached)."""
        return F.normalize(self.encoder.detach(), dim=1)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> "ELSA":
        """Model from a checkpoint written by :func:`save` (or the research code: key ``encoder``).

        Loaded with ``weights_only=True`` (:func:`sagea.io.read_torch`): a file holding Python
        objects is refused; an unreadable one is moved aside so a rerun regenerates it.
        """
        ckpt = read_torch(path, what="ELSA checkpoint")
        if not isinstance(ckpt, dict):
            raise ValueError(f"{path}: not an ELSA checkpoint (a {type(ckpt).__name__}, expected a dict)")
        state = ckpt.get("model_state_dict", ckpt)
        if "encoder" not in state:
            raise KeyError(f"{path}: no 'encoder' parameter in the checkpoint (keys {list(state)[:5]}); not an ELSA model")
        check_finite(state["encoder"], path, "ELSA encoder weights", "retrain ELSA: `snakemake --forcerun train_elsa`")
        n_items, factors = state["encoder"].shape
        model = cls(n_items, factors, relu=bool((ckpt.get("hyperparameters") or {}).get("relu", True)))
        model.load_state_dict({"encoder": state["encoder"]})
        return model.to(device).eval()


def nmse_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Normalised MSE: ``mean_b Σ_i (p_bi/‖p_b‖ − x_bi/‖x_b‖)²``."""
    return (F.normalize(prediction, dim=-1) - F.normalize(target, dim=-1)).pow(2).sum(dim=-1).mean()


def save(model: ELSA, path: str | Path, hyperparameters: dict[str, Any] | None = None, **extra: Any) -> None:
    """Write the checkpoint format of docs/ARCHITECTURE.md atomically."""
    write_torch(
        {
            "model_state_dict": {"encoder": model.encoder.detach().cpu().clone()},
            "hyperparameters": {"relu": model.relu, **(hyperparameters or {})},
            "n_items": model.n_items,
            "factors": model.factors,
            "version": sagea.__version__,
            **extra,
        },
        path,
    )


@dataclass
class FitResult:
    """What :func:`fit` learnt: per-epoch history, the restored best epoch and its validation metrics."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: dict = field(default_factory=dict)
    stopped_early: bool = False


def fit(
    model: ELSA,
    train: sp.csr_matrix,
    valid: tuple[sp.csr_matrix, sp.csr_matrix] | Callable[[int], tuple[sp.csr_matrix, sp.csr_matrix]] | None = None,
    *,
    lr: float = 1e-4,
    beta1: float = 0.9,
    beta2: float = 0.99,
    batch_size: int = 1024,
    epochs: int = 100,
    patience: int = 10,
    seed: int = 42,
    k: int = 20,
    device: torch.device | str = "cpu",
    state_file: str | Path | None = None,
    checkpoint_every: int = 1,
    eval_batch_size: int = 1024,
    callback: Callable[[dict], None] | None = None,
    research_step_order: bool = False,
) -> FitResult:
    """Train ``model`` on the rows of ``train`` (CSR users x items); early stopping on validation NDCG@k.

    ``valid`` = (inputs, targets) of the validation users, or a function ``epoch -> (inputs,
    targets)`` (epochs count from 1) for targets redrawn every epoch. Each epoch visits the training rows
    in a permutation drawn from ``(seed, epoch)``; batches become dense only on ``device``.
    After ``patience`` epochs without a better validation NDCG@k training stops and the best
    weights are restored. With ``state_file`` a resumable state is saved every
    ``checkpoint_every`` epochs (and used when present), so an interrupted run continues
    to exactly the result of an uninterrupted one; it is removed at the end.
    ``callback(record)`` is called after each epoch with the history record.
    ``research_step_order``: the research code's step order (module docstring).
    """
    device = torch.device(device)
    model.to(device).train()
    if train.shape[1] != model.n_items:
        raise ValueError(f"training matrix has {train.shape[1]} items but the model {model.n_items}")
    data = DeviceCSR(train, device)
    n = data.n_rows
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(beta1, beta2))
    fingerprint = {
        "lr": lr, "beta1": beta1, "beta2": beta2, "batch_size": batch_size, "seed": seed,
        "factors": model.factors, "shape": tuple(train.shape), "nnz": int(train.nnz), "k": k,
    }  # fmt: skip
    if research_step_order:  # a state saved under the other step order must not be resumed
        fingerprint["research_step_order"] = True
    result = FitResult()
    best_state = model.encoder.detach().clone()
    best_score, wait, start_epoch = -np.inf, 0, 1
    state = load_training_state(state_file, fingerprint) if state_file else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        best_state = state["best_state"].to(device)
        best_score, wait, start_epoch = state["best_score"], state["wait"], state["epoch"] + 1
        result = FitResult(**state["result"])
    buffer = torch.empty(min(batch_size, max(n, 1)), model.n_items, device=device)
    key = f"NDCG{k}"
    for epoch in range(start_epoch, epochs + 1):
        if result.stopped_early:
            break
        tic = time.perf_counter()
        order = torch.as_tensor(np.random.default_rng([seed, epoch]).permutation(n), device=device)
        loss_sum = torch.zeros((), device=device)
        for start in progress(range(0, n, batch_size), desc=f"ELSA epoch {epoch}/{epochs}", leave=False):
            rows = order[start : start + batch_size]
            x = data.dense(rows, out=buffer)
            optimizer.zero_grad(set_to_none=False)
            loss = nmse_loss(model(x), x)
            loss.backward()
            if research_step_order:  # research: re-normalise, project on the new rows, then Adam
                model.normalize_rows()
                model.project_gradient()
                optimizer.step()
            else:
                model.project_gradient()
                optimizer.step()
                model.normalize_rows()
            loss_sum += loss.detach() * rows.shape[0]
        train_seconds = time.perf_counter() - tic
        record: dict[str, Any] = {"epoch": epoch, "loss": float(loss_sum.item()) / max(n, 1)}
        if not np.isfinite(record["loss"]):
            raise NonFiniteError(
                f"ELSA training loss became non-finite in epoch {epoch}; lower elsa.lr, then rerun "
                "`snakemake --forcerun train_elsa`"
            )
        if valid is not None:
            model.eval()
            pair = valid(epoch) if callable(valid) else valid
            metrics = evaluate_scorer(model.scores, *pair, k=k, batch_size=eval_batch_size, device=device, desc="validate")
            model.train()
            record.update({f"{name}_valid": metrics[name] for name in (key, f"R{k}")})
            score = metrics[key]
        else:
            metrics, score = {}, -record["loss"]
        record["seconds"] = time.perf_counter() - tic
        record["train_seconds"] = train_seconds
        result.history.append(record)
        if score > best_score:
            best_score, wait = score, 0
            best_state = model.encoder.detach().clone()
            result.best_epoch, result.best_valid = epoch, dict(metrics)
        else:
            wait += 1
        result.stopped_early = valid is not None and wait >= patience
        log.info(
            "epoch %d/%d loss %.5f %s %.2fs%s",
            epoch, epochs, record["loss"],
            " ".join(f"{k_}={v:.4f}" for k_, v in record.items() if k_.endswith("_valid")),
            record["seconds"], " (best)" if wait == 0 else "",
        )  # fmt: skip
        if state_file and (epoch % checkpoint_every == 0 or result.stopped_early or epoch == epochs):
            save_training_state(
                {
                    "fingerprint": fingerprint, "epoch": epoch, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "best_state": best_state.cpu(),
                    "best_score": float(best_score), "wait": wait, "result": dataclasses.asdict(result),
                },
                state_file,
            )  # fmt: skip
        if callback is not None:
            callback(record)
    if result.stopped_early:
        log.info("early stop: no better validation %s for %d epochs; best epoch %d", key, patience, result.best_epoch)
    with torch.no_grad():
        model.encoder.copy_(best_state)
    model.eval()
    return result


def finish_training(state_file: str | Path | None) -> None:
    """Remove the resumable state once the run's outputs are written."""
    if state_file:
        clear_training_state(state_file)


def user_embeddings(model: ELSA, matrix: sp.csr_matrix, batch_size: int = 4096, device: torch.device | str = "cpu") -> np.ndarray:
    """``x A`` of every row of ``matrix`` as float32 ``[n, d]`` (sparse rows, batched on the device)."""
    device = torch.device(device)
    model.to(device).eval()
    data = DeviceCSR(matrix, device)
    out = np.empty((data.n_rows, model.factors), dtype=np.float32)
    buffer = torch.empty(min(batch_size, max(data.n_rows, 1)), model.n_items, device=device)
    with torch.inference_mode():
        for start in progress(range(0, data.n_rows, batch_size), desc="user embeddings"):
            rows = torch.arange(start, min(start + batch_size, data.n_rows), device=device)
            out[start : start + len(rows)] = model.encode(data.dense(rows, out=buffer)).cpu().numpy()
    return out
