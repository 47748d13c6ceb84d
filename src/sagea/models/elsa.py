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

import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

import sagea
from sagea.data.batches import DeviceCSR
from sagea.io import NonFiniteError, check_finite, read_torch, write_torch
from sagea.models.training import EarlyStopping, FitResult, ResumableState, snapshot, train_epochs
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

    # ------------------------------------------------------------------ persistence
    def checkpoint(self, **extra: Any) -> dict:
        """The ``model.pt`` dict of docs/ARCHITECTURE.md; ``hyperparameters`` in ``extra`` (the
        training run's) are recorded beside the model's own ``relu``."""
        hyperparameters = extra.pop("hyperparameters", None) or {}
        return {
            "model_state_dict": {"encoder": self.encoder.detach().cpu().clone()},
            "hyperparameters": {"relu": self.relu, **hyperparameters},
            "n_items": self.n_items,
            "factors": self.factors,
            "version": sagea.__version__,
            **extra,
        }

    def save(self, path: str | Path, **extra: Any) -> None:
        """Write :meth:`checkpoint` to ``path`` atomically."""
        write_torch(self.checkpoint(**extra), path)

    @classmethod
    def from_checkpoint(cls, checkpoint: Any, device: torch.device | str = "cpu", where: str = "checkpoint") -> "ELSA":
        """Model from a checkpoint dict of :meth:`checkpoint` (or the research code's: key ``encoder``)."""
        if not isinstance(checkpoint, dict):
            raise ValueError(f"{where}: not an ELSA checkpoint (a {type(checkpoint).__name__}, expected a dict)")
        state = checkpoint.get("model_state_dict", checkpoint)
        if "encoder" not in state:
            raise KeyError(f"{where}: no 'encoder' parameter in the checkpoint (keys {list(state)[:5]}); not an ELSA model")
        check_finite(state["encoder"], where, "ELSA encoder weights", "retrain ELSA: `snakemake --forcerun train_elsa`")
        n_items, factors = state["encoder"].shape
        model = cls(n_items, factors, relu=bool((checkpoint.get("hyperparameters") or {}).get("relu", True)))
        model.load_state_dict({"encoder": state["encoder"]})
        return model.to(device).eval()

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> "ELSA":
        """Model from a ``model.pt`` written by :meth:`save` (or the research code: key ``encoder``).

        Loaded with ``weights_only=True`` (:func:`sagea.io.read_torch`): a file holding Python
        objects is refused; an unreadable one is moved aside so a rerun regenerates it.
        """
        return cls.from_checkpoint(read_torch(path, what="ELSA checkpoint"), device, where=str(path))


def nmse_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Normalised MSE: ``mean_b Σ_i (p_bi/‖p_b‖ − x_bi/‖x_b‖)²``."""
    return (F.normalize(prediction, dim=-1) - F.normalize(target, dim=-1)).pow(2).sum(dim=-1).mean()


def fit(
    model: ELSA,
    train: sp.csr_matrix,
    validate: Callable[[ELSA, int], dict[str, float]] | None = None,
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
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 1,
    callback: Callable[[dict], None] | None = None,
    research_step_order: bool = False,
) -> FitResult:
    """Train ``model`` on the rows of ``train`` (CSR users x items); early stopping on validation NDCG@k.

    ``validate(model, epoch)`` (epochs count from 1) returns the validation metrics of the model
    in eval mode, at least ``NDCG{k}`` and ``R{k}`` (the stage builds it from the evaluation
    code: :func:`sagea.stages.elsa.validator`); without it the training loss decides and
    training never stops early. Each epoch visits the training rows in a permutation drawn from
    ``(seed, epoch)``; batches become dense only on ``device``. After ``patience`` epochs
    without a better validation NDCG@k training stops and the best weights are restored
    (:mod:`sagea.models.training`). With ``checkpoint_path`` a resumable state is saved every
    ``checkpoint_every`` epochs (and used when present), so an interrupted run continues to
    exactly the result of an uninterrupted one. ``callback(record)`` is called after each
    epoch with the history record. ``research_step_order``: the research code's step order
    (module docstring).
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
    stopping = EarlyStopping(patience if validate is not None else None, "validations", "max", initial=snapshot(model))
    buffer = torch.empty(min(batch_size, max(n, 1)), model.n_items, device=device)
    key = f"NDCG{k}"
    started: dict[str, float] = {}

    def train_epoch(epoch: int) -> dict[str, Any]:
        started["tic"] = tic = time.perf_counter()
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
        record: dict[str, Any] = {"epoch": epoch, "loss": float(loss_sum.item()) / max(n, 1)}
        if not np.isfinite(record["loss"]):
            raise NonFiniteError(
                f"ELSA training loss became non-finite in epoch {epoch}; lower elsa.lr, then rerun "
                "`snakemake --forcerun train_elsa`"
            )
        record["train_seconds"] = time.perf_counter() - tic
        return record

    def validation(epoch: int, record: dict[str, Any]) -> tuple[float, dict, dict]:
        train_seconds = record.pop("train_seconds")
        if validate is not None:
            model.eval()
            metrics = validate(model, epoch)
            model.train()
            record.update({f"{name}_valid": metrics[name] for name in (key, f"R{k}")})
            score = metrics[key]
        else:
            metrics, score = {}, -record["loss"]
        record["seconds"] = time.perf_counter() - started["tic"]
        record["train_seconds"] = train_seconds
        return score, record, metrics

    return train_epochs(
        model, optimizer, epochs=epochs, train_epoch=train_epoch, validate=validation, stopping=stopping,
        state=ResumableState(checkpoint_path, fingerprint), checkpoint_every=checkpoint_every, callback=callback,
        desc="ELSA epochs",
    )


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
