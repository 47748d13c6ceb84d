"""The training machinery ELSA and the SAE share: the epoch loop, early stopping, best-weight restore,
resumable state and one :class:`FitResult`.

A model's ``fit`` supplies what differs — one epoch of training steps and what a validation
measures — and :func:`train_epochs` does the rest:

- **Validation cadence.** After every ``validate_every`` epochs and after the last one; each
  validation appends one row to the history.
- **Early stopping** (:class:`EarlyStopping`). A validation *improves* when its score beats the
  best so far (``mode`` min: lower is better, max: higher). Training stops once ``patience``
  units passed without an improvement, counted in validations (``unit="validations"``) or in
  epochs since the best one (``unit="epochs"``); the best weights are restored at the end.
- **Resumable state** (:class:`ResumableState`). Every ``checkpoint_every`` epochs (and when
  training ends) the model, optimiser, buffers, stopping bookkeeping and history are written
  atomically to ``train_state.pt`` next to the outputs. Models draw their per-epoch randomness
  from ``(seed, epoch)``, so a run resumed from the state is identical to an uninterrupted one.
  The state sits beside the rule's outputs but is not one of them (Snakemake keeps it across
  a failed attempt); the stage removes it with :func:`clear_training_state` once the outputs are written.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from sagea.io import UnreadableFileError, UnsafeCheckpointError, read_torch, write_torch
from sagea.runtime import progress

log = logging.getLogger(__name__)

STATE_NAME = "train_state.pt"
#: Part of every fingerprint: a state written in an older layout is ignored, never misread.
STATE_FORMAT = 2
EARLY_STOP_UNITS = ("validations", "epochs")


@dataclass
class FitResult:
    """What ``fit`` learnt: the history (one row per validation), the restored best epoch with its
    monitored score and validation metrics, how many epochs ran and whether early stopping ended it."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = math.nan
    best_valid: dict = field(default_factory=dict)
    epochs_run: int = 0
    stopped_early: bool = False


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``model``'s state dict (weights to restore later)."""
    return {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}


class EarlyStopping:
    """Best-so-far bookkeeping: best score, epoch and weights; stop after ``patience`` units without
    improvement (``unit`` validations or epochs; ``patience`` None: never stop).

    ``initial`` (a :func:`snapshot`) is what :meth:`restore` puts back when no validation ever
    improved; without it the model keeps its last weights then.
    """

    def __init__(
        self, patience: int | None, unit: str = "validations", mode: str = "min",
        initial: dict[str, torch.Tensor] | None = None,
    ) -> None:  # fmt: skip
        if unit not in EARLY_STOP_UNITS:
            raise ValueError(f"early_stop_unit {unit!r}: expected one of {list(EARLY_STOP_UNITS)}")
        if mode not in ("min", "max"):
            raise ValueError(f"early stopping mode {mode!r}: expected 'min' or 'max'")
        self.patience, self.unit, self.mode = patience, unit, mode
        self.best_score = math.inf if mode == "min" else -math.inf
        self.best_epoch, self.bad, self.waited, self.stopped = 0, 0, 0, False
        self.best_weights = initial

    def update(self, score: float, epoch: int, model: nn.Module) -> bool:
        """Record a validation's ``score`` after ``epoch``; True when it is the best so far."""
        improved = score < self.best_score if self.mode == "min" else score > self.best_score
        if improved:
            self.best_score, self.best_epoch, self.bad = score, epoch, 0
            self.best_weights = snapshot(model)
        else:
            self.bad += 1
        self.waited = self.bad if self.unit == "validations" else epoch - self.best_epoch
        self.stopped = self.patience is not None and self.waited >= self.patience
        return improved

    def restore(self, model: nn.Module) -> None:
        """Put the best weights back into ``model`` (nothing to do before any improvement)."""
        if self.best_weights is not None:
            model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": float(self.best_score), "best_epoch": self.best_epoch, "bad": self.bad,
                "waited": self.waited, "stopped": self.stopped, "best_weights": self.best_weights}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("best_score", "best_epoch", "bad", "waited", "stopped", "best_weights"):
            setattr(self, name, state[name])


# ---------------------------------------------------------------------------- resumable state
def state_path(output_dir: str | os.PathLike) -> Path:
    """Where a rule keeps the resumable state of the model it writes into ``output_dir``."""
    return Path(output_dir) / STATE_NAME


def save_training_state(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Atomically write ``state`` (torch-serialisable) to ``path``."""
    write_torch(state, path)


def load_training_state(path: str | os.PathLike, fingerprint: dict[str, Any] | None = None) -> dict | None:
    """The saved state, or None when absent, unreadable or saved for other hyperparameters.

    ``fingerprint`` (the hyperparameters and data sizes) must equal the one stored under
    ``state["fingerprint"]``; a mismatch means the state belongs to another configuration and
    is ignored (with a warning) rather than silently resumed.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:  # weights_only loading: a state file holding Python objects is refused, never unpickled
        state = read_torch(path, heal=False, what="training state")
    except (UnreadableFileError, UnsafeCheckpointError) as error:  # truncated or foreign: start afresh
        log.warning("ignoring training checkpoint %s: %s", path, error)
        path.unlink(missing_ok=True)
        return None
    if not isinstance(state, dict):
        log.warning("ignoring training checkpoint %s: not a dict", path)
        return None
    if fingerprint is not None and state.get("fingerprint") != fingerprint:
        log.warning("ignoring training checkpoint %s: saved for another configuration", path)
        return None
    log.info("resuming from training checkpoint %s (epoch %s)", path, state.get("epoch"))
    return state


def clear_training_state(path: str | os.PathLike | None) -> None:
    """Remove the resumable state (the stage calls it once the run's outputs are written)."""
    if path is not None:
        Path(path).unlink(missing_ok=True)


class ResumableState:
    """The resumable state of one ``fit`` at ``path`` (None: not kept), tied to ``fingerprint``.

    ``buffers`` names the model's training buffers that are not in its state dict (e.g. the
    SAE's dead-latent counters) but must survive an interruption.
    """

    def __init__(self, path: str | os.PathLike | None, fingerprint: dict[str, Any], buffers: tuple[str, ...] = ()):
        self.path = None if path is None else Path(path)
        self.fingerprint = {**fingerprint, "state_format": STATE_FORMAT}
        self.buffers = buffers

    def resume(self, model: nn.Module, optimizer: torch.optim.Optimizer, stopping: EarlyStopping) -> tuple[FitResult, int]:
        """Load a matching state into ``model``/``optimizer``/``stopping``: (result so far, last epoch done)."""
        saved = load_training_state(self.path, self.fingerprint) if self.path is not None else None
        if saved is None:
            return FitResult(), 0
        model.load_state_dict(saved["model"])
        for name in self.buffers:
            getattr(model, name).copy_(saved["buffers"][name])
        optimizer.load_state_dict(saved["optimizer"])
        stopping.load_state_dict(saved["stopping"])
        return FitResult(**saved["result"]), int(saved["epoch"])

    def save(self, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer, stopping: EarlyStopping,
             result: FitResult) -> None:  # fmt: skip
        if self.path is None:
            return
        save_training_state(
            {"fingerprint": self.fingerprint, "epoch": epoch,
             "model": {name: value.cpu() for name, value in model.state_dict().items()},
             "buffers": {name: getattr(model, name).cpu() for name in self.buffers},
             "optimizer": optimizer.state_dict(), "stopping": stopping.state_dict(),
             "result": dataclasses.asdict(result)},
            self.path,
        )  # fmt: skip


# ---------------------------------------------------------------------------- the loop
def train_epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    train_epoch: Callable[[int], dict[str, Any]],
    validate: Callable[[int, dict[str, Any]], tuple[float, dict[str, Any], dict[str, Any]]],
    stopping: EarlyStopping,
    state: ResumableState,
    validate_every: int = 1,
    checkpoint_every: int = 1,
    stop_after_epochs: int | None = None,
    callback: Callable[[dict], None] | None = None,
    desc: str = "epochs",
) -> FitResult:
    """Run epochs ``1..epochs`` (continuing a resumable ``state``) and restore the best weights.

    ``train_epoch(epoch)`` trains one epoch and returns its training record (e.g. the losses);
    ``validate(epoch, record)`` returns ``(score, history row, metrics)``: the score early
    stopping monitors, the row appended to the history, the metrics kept as ``best_valid``.
    The state is saved after validations at multiples of ``checkpoint_every`` epochs and when
    training ends. ``callback(row)`` follows each validation. ``stop_after_epochs`` leaves the
    loop before ``epochs`` without restoring anything (tests of resumption).
    """
    result, done = state.resume(model, optimizer, stopping)
    bar = progress(range(done + 1, epochs + 1), desc=desc, unit="epoch", initial=done, total=epochs)
    for epoch in bar:
        if stopping.stopped or (stop_after_epochs is not None and epoch > stop_after_epochs):
            break
        record = train_epoch(epoch)
        result.epochs_run = epoch
        if "loss" in record:
            bar.set_postfix(loss=f"{record['loss']:.4g}")
        if epoch % validate_every and epoch != epochs:
            continue
        score, row, metrics = validate(epoch, record)
        result.history.append(row)
        if stopping.update(score, epoch, model):
            result.best_valid = dict(metrics)
        result.best_epoch, result.best_score = stopping.best_epoch, float(stopping.best_score)
        result.stopped_early = stopping.stopped
        log.info("%s %d/%d: score %.5g (best %.5g at epoch %d)%s", desc, epoch, epochs, score, stopping.best_score,
                 stopping.best_epoch, " (best)" if stopping.best_epoch == epoch else "")  # fmt: skip
        if stopping.stopped:
            log.info("early stop at epoch %d: no better validation for %d %s; best epoch %d", epoch,
                     stopping.waited, stopping.unit, stopping.best_epoch)  # fmt: skip
        if epoch % checkpoint_every == 0 or stopping.stopped or epoch == epochs:
            state.save(epoch, model, optimizer, stopping, result)
        if callback is not None:
            callback(row)
    bar.close()
    finished = stopping.stopped or result.epochs_run >= epochs
    if stop_after_epochs is not None and not finished:
        return result
    stopping.restore(model)
    model.eval()
    return result
