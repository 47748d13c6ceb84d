"""Sparse autoencoders over ELSA user embeddings (docs/method.md §3).

One model class, :class:`SAE`, with three activations (``variant``):

- ``topk``: keep the ``k`` largest pre-activations of each vector (``TopKSAE`` in the research);
- ``batchtopk``: while training keep the ``k·B`` largest over a batch of ``B`` vectors and track
  the running mean of the smallest kept value as ``threshold``; at inference keep ``pre > threshold``;
- ``basic``: plain ReLU, kept sparse by the L1 penalty.

Forward pass for an input ``x`` (a user's ELSA embedding, dimension ``d``)::

    x̂ = (x - mean(x)) / (std(x) + 1e-7)                      per-vector standardisation
    pre = relu((x̂ - decoder_b) @ encoder_w + encoder_b)       [B, h]
    code = activation(pre)  (optionally L2-normalised)
    out = (code @ decoder_w + decoder_b) · (std + 1e-7) + mean  de-standardisation

Loss = rec_coef·rec + l1_coef·L1 + aux_coef·aux + con_coef·con, rec_coef = 1 − (l1 + aux + con).
Decoder rows stay on the unit sphere: gradients are projected on the tangent space
(``g -= (g·w) w``) before the Adam step and rows are re-normalised after it. The research code's
order (``research_step_order``) re-normalises the rows first, projects on the re-normalised rows,
then steps, so its rows end each step slightly off the sphere (~lr).

A latent is *dead* after ``dead_after`` consecutive training batches without activation
(``dead_rule="at_least"``: count >= dead_after); the research code needs one batch more
(``"more_than"``: count > dead_after).

Parameter names match the research code (``encoder_w [d, h]``, ``encoder_b [h]``,
``decoder_w [h, d]``, ``decoder_b [d]``, and ``threshold`` for BatchTopK), so checkpoints
are interchangeable. :func:`fit` trains with validation-based early stopping, restores the best
weights and can resume from a periodic checkpoint (:mod:`sagea.models.training`); the data it
trains on is in :mod:`sagea.models.sae_data`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import sagea
from sagea.io import NonFiniteError, check_finite, read_torch, write_torch
from sagea.models.sae_data import TrainData, epoch_batches
from sagea.models.training import EARLY_STOP_UNITS, EarlyStopping, FitResult, ResumableState, train_epochs

log = logging.getLogger(__name__)

#: Research class names of the variants (MLflow param ``model``).
MODEL_NAMES = {"topk": "TopKSAE", "batchtopk": "BatchTopKSAE", "basic": "BasicSAE"}
#: Names of the reconstruction losses in the loss dict (research spelling).
RECONSTRUCTION_LOSSES = {"l2": "L2", "cosine": "Cosine"}
STD_EPS = 1e-7
#: What to do about a non-finite SAE (the rule train_sae writes model.pt).
NON_FINITE_HINT = "retrain the SAE: `snakemake --forcerun train_sae`"
LOSS_TERMS = ("Loss", "L2", "Cosine", "L1", "L0", "Auxiliary", "Contrastive")
#: When a latent counts as dead: inactive for >= dead_after batches, or (research) > dead_after.
DEAD_RULES = ("at_least", "more_than")


class SAE(nn.Module):
    """Sparse autoencoder with per-vector standardisation and a unit-norm decoder."""

    def __init__(
        self,
        input_dim: int,
        width: int,
        k: int = 32,
        variant: str = "topk",
        reconstruction_loss: str = "l2",
        l1_coef: float = 3e-4,
        aux_coef: float = 1 / 32,
        contrastive_coef: float = 0.0,
        normalize: bool = False,
        dead_after: int = 5,
        aux_k: int = 512,
        seed: int | None = 42,
        dead_rule: str = "at_least",
    ) -> None:
        super().__init__()
        if variant not in MODEL_NAMES:
            raise ValueError(f"sae variant {variant!r} unknown; expected one of {list(MODEL_NAMES)}")
        if reconstruction_loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"sae reconstruction_loss {reconstruction_loss!r} unknown; expected l2 or cosine")
        if dead_rule not in DEAD_RULES:
            raise ValueError(f"sae dead_rule {dead_rule!r} unknown; expected one of {list(DEAD_RULES)}")
        if variant != "basic" and not 1 <= k <= width:
            raise ValueError(f"sae k={k} must lie in 1..width={width}")
        self.rec_coef = 1.0 - (l1_coef + aux_coef + contrastive_coef)
        if self.rec_coef <= 0:
            raise ValueError(
                "sae l1_coef + aux_coef + contrastive_coef must stay below 1 "
                f"(the reconstruction coefficient is 1 - their sum = {self.rec_coef:g})"
            )
        self.hparams = dict(
            input_dim=int(input_dim), width=int(width), k=int(k), variant=variant,
            reconstruction_loss=reconstruction_loss, l1_coef=float(l1_coef), aux_coef=float(aux_coef),
            contrastive_coef=float(contrastive_coef), normalize=bool(normalize),
            dead_after=int(dead_after), aux_k=int(aux_k), dead_rule=dead_rule,
        )  # fmt: skip
        self.variant, self.k, self.normalize = variant, int(k), bool(normalize)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        encoder_w = nn.init.kaiming_uniform_(torch.empty(input_dim, width), generator=generator)
        self.encoder_w = nn.Parameter(encoder_w)
        self.encoder_b = nn.Parameter(torch.zeros(width))
        # decoder = transpose of the encoder, so every latent starts with a live direction
        self.decoder_w = nn.Parameter(F.normalize(encoder_w.t().clone(), dim=-1))
        self.decoder_b = nn.Parameter(torch.zeros(input_dim))
        # consecutive training batches without activation, per latent (training state, not weights)
        self.register_buffer("inactive_batches", torch.zeros(width, dtype=torch.long), persistent=False)
        if variant == "batchtopk":
            self.register_buffer("threshold", torch.zeros(()))
            self.register_buffer("threshold_batches", torch.zeros((), dtype=torch.long), persistent=False)

    # ------------------------------------------------------------------ standardisation
    @staticmethod
    def standardize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x - mean) / std`` per row, with ``std`` the (unbiased) row std + 1e-7."""
        mean = x.mean(dim=-1, keepdim=True)
        centred = x - mean
        std = centred.std(dim=-1, keepdim=True) + STD_EPS
        return centred / std, mean, std

    @staticmethod
    def destandardize(out: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return out * std + mean

    # ------------------------------------------------------------------ encode / decode
    def pre_activation(self, xs: torch.Tensor) -> torch.Tensor:
        """``relu((x̂ - decoder_b) @ encoder_w + encoder_b)`` on standardised input."""
        return F.relu((xs - self.decoder_b) @ self.encoder_w + self.encoder_b)

    def activate(self, pre: torch.Tensor, topk_inference: bool = True, track: bool = False) -> torch.Tensor:
        """The variant's sparsifying activation (in training mode always sparse).

        ``track`` (training only) updates the BatchTopK threshold with this batch.
        """
        sparse = self.training or topk_inference
        if self.variant == "topk" and sparse:
            top = torch.topk(pre, self.k, dim=-1)
            code = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        elif self.variant == "batchtopk" and self.training:
            flat = pre.reshape(-1)
            top = torch.topk(flat, min(self.k * pre.shape[0], flat.numel()))
            code = torch.zeros_like(flat).scatter(-1, top.indices, top.values).reshape(pre.shape)
            if track:  # running mean of the smallest kept positive activation (no host sync)
                kept = top.values.detach()
                smallest = torch.where(kept > 0, kept, torch.full_like(kept, torch.inf)).min()
                seen = torch.isfinite(smallest)
                self.threshold_batches += seen.long()
                step = (smallest - self.threshold) / self.threshold_batches.clamp_min(1)
                self.threshold += torch.where(seen, step, torch.zeros_like(step))
        elif self.variant == "batchtopk" and sparse:
            code = torch.where(pre > self.threshold, pre, torch.zeros_like(pre))
        else:
            code = pre
        if self.normalize:
            code = F.normalize(code, dim=-1)
        return code

    def encode(
        self, x: torch.Tensor, topk_inference: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sparse code ``[B, h]`` and the per-row ``mean``, ``std`` ``[B, 1]`` needed by :meth:`decode`.

        ``topk_inference=False`` keeps every positive activation (TopK / BatchTopK off).
        """
        xs, mean, std = self.standardize(x)
        return self.activate(self.pre_activation(xs), topk_inference), mean, std

    def decode(self, code: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """``(code @ decoder_w + decoder_b) · std + mean``."""
        return self.destandardize(code @ self.decoder_w + self.decoder_b, mean, std)

    def forward(self, x: torch.Tensor, topk_inference: bool = True) -> torch.Tensor:
        """Reconstruction of ``x``."""
        return self.decode(*self.encode(x, topk_inference))

    # ------------------------------------------------------------------ losses
    def dead_latents(self) -> torch.Tensor:
        """Bool ``[h]``: latents inactive for at least (``dead_rule="more_than"``: more than)
        ``dead_after`` consecutive training batches."""
        if self.hparams["dead_rule"] == "more_than":
            return self.inactive_batches > self.hparams["dead_after"]
        return self.inactive_batches >= self.hparams["dead_after"]

    def _track_activity(self, code: torch.Tensor) -> None:
        active = (code != 0).any(dim=0)
        self.inactive_batches.add_(1).masked_fill_(active, 0)

    def auxiliary_loss(self, xs: torch.Tensor, pre: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """MSE of standardised ``x`` vs ``(code + aux) @ decoder_w + decoder_b``.

        ``aux`` keeps the ``aux_k`` largest pre-activations of the dead latents (0 if none dead).
        """
        dead = self.dead_latents()
        n_dead = int(dead.sum())
        if n_dead == 0:
            return pre.new_zeros(())
        pre_dead = pre[:, dead]
        top = torch.topk(pre_dead, min(self.hparams["aux_k"], n_dead), dim=-1)
        aux = torch.zeros_like(pre_dead).scatter(-1, top.indices, top.values)
        recon = code @ self.decoder_w + aux @ self.decoder_w[dead] + self.decoder_b
        return (xs - recon).pow(2).mean()

    @staticmethod
    def contrastive_loss(code: torch.Tensor, code_positive: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE without temperature: logits = cosine similarities, targets = diagonal."""
        a, b = F.normalize(code, dim=-1), F.normalize(code_positive, dim=-1)
        logits = a @ b.t()
        targets = torch.arange(len(a), device=a.device)
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2

    def losses(self, x: torch.Tensor, x_positive: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every loss term (research names) and their weighted total ``Loss``.

        In training mode the batch also updates the dead-latent counters and the BatchTopK
        threshold. ``L2`` = mean squared error and ``Cosine`` = mean(1 − cos) are measured in the
        input space (after de-standardisation); the auxiliary loss in the standardised space.
        """
        xs, mean, std = self.standardize(x)
        pre = self.pre_activation(xs)
        code = self.activate(pre, topk_inference=True, track=self.training)
        if self.training:
            self._track_activity(code)
        out = self.destandardize(code @ self.decoder_w + self.decoder_b, mean, std)
        terms = {
            "L2": (out - x).pow(2).mean(),
            "Cosine": (1 - F.cosine_similarity(x, out, dim=-1)).mean(),
            "L1": code.abs().sum(-1).mean(),
            "L0": (code != 0).float().sum(-1).mean().detach(),
            "Auxiliary": self.auxiliary_loss(xs, pre, code),
            "Contrastive": x.new_zeros(()),
        }
        if x_positive is not None and self.hparams["contrastive_coef"] > 0:
            terms["Contrastive"] = self.contrastive_loss(code, self.encode(x_positive)[0])
        hp = self.hparams
        terms["Loss"] = (
            self.rec_coef * terms[RECONSTRUCTION_LOSSES[hp["reconstruction_loss"]]]
            + hp["l1_coef"] * terms["L1"]
            + hp["aux_coef"] * terms["Auxiliary"]
            + hp["contrastive_coef"] * terms["Contrastive"]
        )
        return terms

    # ------------------------------------------------------------------ decoder constraint
    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove the radial part of each decoder row's gradient: ``g -= (g·w) w`` (rows unit-norm)."""
        g, w = self.decoder_w.grad, self.decoder_w
        if g is not None:
            g -= (g * w).sum(-1, keepdim=True) * w

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.decoder_w.copy_(F.normalize(self.decoder_w, dim=-1))

    def train_step(
        self, optimizer: torch.optim.Optimizer, x: torch.Tensor, x_positive: torch.Tensor | None = None,
        research_step_order: bool = False,
    ) -> dict[str, torch.Tensor]:
        """One Adam step on a batch; returns the loss terms (detached, still on the device: no sync).

        ``research_step_order``: re-normalise the decoder rows, project, then step (module docstring).
        """
        self.train()
        terms = self.losses(x, x_positive)
        optimizer.zero_grad(set_to_none=True)
        terms["Loss"].backward()
        if research_step_order:
            self.normalize_decoder()
            self.project_decoder_grad()
            optimizer.step()
        else:
            self.project_decoder_grad()
            optimizer.step()
            self.normalize_decoder()
        return {name: value.detach() for name, value in terms.items()}

    # ------------------------------------------------------------------ persistence
    @property
    def model_name(self) -> str:
        return MODEL_NAMES[self.variant]

    def checkpoint(self, **extra: Any) -> dict:
        """The ``model.pt`` dict of docs/ARCHITECTURE.md (``extra``: e.g. the training run's settings)."""
        return {
            "model_state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            "hyperparameters": dict(self.hparams),
            "model": self.model_name,
            "version": sagea.__version__,
            **extra,
        }

    def save(self, path: str | os.PathLike, **extra: Any) -> None:
        """Write :meth:`checkpoint` to ``path`` atomically."""
        write_torch(self.checkpoint(**extra), path)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, device: str | torch.device = "cpu", where: str = "checkpoint") -> "SAE":
        """Model from our checkpoint dict; a research checkpoint (no hyperparameters) is refused.

        The research code saves no ``k`` or variant, and a wrong ``k`` silently changes every
        code, so they are never guessed: import such a file with ``python -m sagea.research sae``
        (or the config's ``datasets.<name>.sae_import``), which takes them explicitly.
        """
        if not isinstance(checkpoint, dict) or "model_state_dict" not in checkpoint:
            raise ValueError(f"{where}: not an SAE checkpoint (no 'model_state_dict')")
        state = checkpoint["model_state_dict"]
        if "encoder_w" not in state:
            raise ValueError(f"{where}: model_state_dict has no 'encoder_w' (keys {sorted(state)[:6]}); not an SAE")
        hp = dict(checkpoint.get("hyperparameters") or {})
        if not {"k", "variant"} <= set(hp):
            raise ValueError(
                f"{where} has no SAE hyperparameters (k, variant): it looks like a research checkpoint. "
                "Its k cannot be read from the weights and is not guessed; import it with its k, width and "
                "variant: `python -m sagea.research sae SRC DEST --k K --variant TopKSAE` or the config key "
                "datasets.<name>.sae_import (docs/importing.md)."
            )
        d, h = state["encoder_w"].shape
        hp.update(input_dim=d, width=h)
        known = ("input_dim", "width", "k", "variant", "reconstruction_loss", "l1_coef", "aux_coef",
                 "contrastive_coef", "normalize", "dead_after", "aux_k", "dead_rule")  # fmt: skip
        model = cls(**{key: hp[key] for key in known if key in hp}, seed=None)
        state = dict(state)
        state.pop("processed_batches_count", None)  # research BatchTopK bookkeeping, not needed at inference
        if "threshold" in state:
            state["threshold"] = state["threshold"].reshape(())
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(f"{where}: weights do not fit its hyperparameters {hp}: {error}") from None
        return model.to(device).eval()

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "SAE":
        """Load a ``model.pt`` written by :meth:`save` (in eval mode; ``weights_only`` loading,
        :func:`sagea.io.read_torch`)."""
        checkpoint = read_torch(path, what="SAE checkpoint")
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model_state_dict"), dict):
            check_finite(dict(checkpoint["model_state_dict"]), path, "SAE weights", NON_FINITE_HINT)
        return cls.from_checkpoint(checkpoint, device, where=str(path))


# ====================================================================== fit
def _evaluate_loss(
    model: SAE, data: TrainData, batch_size: int, seed: int, device
) -> dict[str, float]:
    """Loss terms over ``data`` in eval mode (positive views from a fixed seed), size-weighted."""
    model.eval()
    rng = np.random.default_rng([seed, 2**31 - 1])
    totals: dict[str, float] = {}
    n = len(data)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            index = np.arange(start, min(n, start + batch_size))
            x, x_pos = data.batch(index, rng, device)
            for name, value in model.losses(x, x_pos).items():
                totals[name] = totals.get(name, 0.0) + float(value) * len(index)
    return {name: value / max(n, 1) for name, value in totals.items()}


def validation_row(
    model: SAE, valid: TrainData, epoch: int, epoch_terms: dict[str, float], batch_size: int, seed: int, device,
    on_validation: Callable[[SAE, int], dict[str, float]] | None, started: float,
    valid_terms: dict[str, float] | None = None,
) -> tuple[float, dict[str, Any]]:
    """A validation's score (the validation loss) and history row: train and valid loss terms, the share
    of dead latents, seconds since ``started`` and what ``on_validation(model, epoch)`` adds.
    ``valid_terms``: the validation loss terms when already computed (a stack computes every model's at once)."""
    # without validation users the training loss decides (and early stopping rarely fires)
    if valid_terms is None:
        valid_terms = _evaluate_loss(model, valid, batch_size, seed, device) if len(valid) else dict(epoch_terms)
    row = {"epoch": epoch, **{f"{k}_train": epoch_terms[k] for k in LOSS_TERMS},
           **{f"{k}_valid": valid_terms[k] for k in LOSS_TERMS},
           "DeadLatents_train": float(model.dead_latents().float().mean()),
           "seconds": time.perf_counter() - started}  # fmt: skip
    if on_validation is not None:
        row.update(on_validation(model, epoch))
    return valid_terms["Loss"], row


def fit(
    model: SAE,
    train: TrainData,
    valid: TrainData,
    *,
    lr: float = 1e-5,
    beta1: float = 0.9,
    beta2: float = 0.99,
    batch_size: int = 1024,
    epochs: int = 4000,
    validate_every: int = 10,
    patience: int = 250,
    early_stop_unit: str = "validations",
    seed: int = 42,
    device: str | torch.device = "cpu",
    checkpoint_path: str | os.PathLike | None = None,
    fingerprint: dict | None = None,
    on_validation: Callable[[SAE, int], dict[str, float]] | None = None,
    stop_after_epochs: int | None = None,
    research_step_order: bool = False,
) -> FitResult:
    """Train ``model`` with Adam; validate every ``validate_every`` epochs; keep the best weights.

    The validation loss decides (:mod:`sagea.models.training`): stop when it has not improved
    for ``patience`` validations (``early_stop_unit="validations"``, our default) or ``patience``
    epochs (``"epochs"``: the research behaviour, defect 9). Batches follow a permutation drawn
    from ``(seed, epoch)``, so a run resumed from ``checkpoint_path`` (saved after every
    validation) is identical to an uninterrupted one. ``on_validation(model, epoch)`` may add
    metrics to each history row (the stage passes the evaluation code's statistics).
    ``stop_after_epochs`` ends the loop early without finishing (tests of resumption).
    ``research_step_order``: the research code's order of the decoder constraint and the Adam step.
    """
    if early_stop_unit not in EARLY_STOP_UNITS:
        raise ValueError(f"sae early_stop_unit {early_stop_unit!r}: expected 'validations' or 'epochs'")
    device = torch.device(device)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(beta1, beta2))
    fingerprint = {**(fingerprint or {}), **model.hparams, "n_train": len(train), "lr": lr,
                   "batch_size": batch_size, "seed": seed}  # fmt: skip
    if research_step_order:  # a state saved under the other step order must not be resumed
        fingerprint["research_step_order"] = True
    buffers = ("inactive_batches", "threshold_batches") if model.variant == "batchtopk" else ("inactive_batches",)
    n = len(train)
    if n == 0:
        raise ValueError("no training users for the SAE (empty train split)")
    started = time.perf_counter()

    def train_epoch(epoch: int) -> dict[str, float]:
        sums: dict[str, torch.Tensor] = {}
        for index, x, x_pos in epoch_batches(train, batch_size, seed, epoch, device):
            for name, value in model.train_step(optimizer, x, x_pos, research_step_order).items():
                sums[name] = sums.get(name, 0.0) + value * len(index)
        terms = {name: float(value) / n for name, value in sums.items()}
        if not math.isfinite(terms["Loss"]):
            raise NonFiniteError(
                f"SAE training loss became non-finite in epoch {epoch} (terms {terms}); "
                "check the input embeddings or lower sae.base.lr. " + NON_FINITE_HINT
            )
        return {"loss": terms["Loss"], **terms}

    def validation(epoch: int, epoch_terms: dict[str, float]) -> tuple[float, dict, dict]:
        score, row = validation_row(model, valid, epoch, epoch_terms, batch_size, seed, device, on_validation, started)
        return score, row, {k: row[f"{k}_valid"] for k in LOSS_TERMS}

    return train_epochs(
        model, optimizer, epochs=epochs, train_epoch=train_epoch, validate=validation,
        stopping=EarlyStopping(patience, early_stop_unit, "min"),
        state=ResumableState(checkpoint_path, fingerprint, buffers), validate_every=validate_every,
        checkpoint_every=validate_every, stop_after_epochs=stop_after_epochs, desc="SAE epochs",
    )
