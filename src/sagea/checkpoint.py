"""Periodic training checkpoints, so a killed job resumes where it stopped.

A trainer calls :func:`save_training_state` every few epochs with everything needed to continue
(model and optimiser state, epoch, best-so-far bookkeeping, RNG states) and
:func:`load_training_state` at start. Trainers draw their per-epoch randomness from
``(seed, epoch)`` so a resumed run is identical to an uninterrupted one. The state file sits
next to the rule's outputs but is not one of them, so Snakemake keeps it across a failed
attempt; :func:`clear_training_state` removes it once the outputs are written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sagea.io import UnreadableFileError, UnsafeCheckpointError, read_torch, write_torch

log = logging.getLogger(__name__)

STATE_NAME = "train_state.pt"


def state_path(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / STATE_NAME


def save_training_state(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Atomically write ``state`` (torch-serialisable) to ``path``."""
    write_torch(state, path)


def load_training_state(path: str | os.PathLike, fingerprint: dict[str, Any] | None = None) -> dict | None:
    """The saved state, or None when absent or saved for other hyperparameters.

    ``fingerprint`` (e.g. the hyperparameters and data sizes) must equal the one stored under
    ``state["fingerprint"]``; a mismatch means the checkpoint belongs to another configuration
    and is ignored (with a warning) rather than silently resumed.
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


def clear_training_state(path: str | os.PathLike) -> None:
    Path(path).unlink(missing_ok=True)
