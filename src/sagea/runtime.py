"""Device choice, seeding and logging shared by the workflow scripts."""

from __future__ import annotations

import logging
import os
import random
import sys

import numpy as np

log = logging.getLogger("sagea")


def select_device(preference: str = "auto") -> "torch.device":  # noqa: F821
    """``auto``: CUDA, then Apple MPS, then CPU; otherwise the named device (error if absent)."""
    import torch

    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config key 'device' is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if preference == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("config key 'device' is 'mps' but Apple MPS is not available; use 'auto' or 'cpu'")
    return torch.device(preference)


def set_threads(threads: int | None) -> None:
    """Torch intra-op threads = the rule's ``threads`` (more threads than cores stalls every op)."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels.

    ``torch.set_deterministic_debug_mode("warn")`` is ``use_deterministic_algorithms(True,
    warn_only=True)`` for eager kernels without the latter's import of the torch.compile stack
    (inductor, dynamo: 1.5 s of every job's start-up; nothing here compiles).
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_deterministic_debug_mode("warn")


def setup_logging(logfile: str | None = None, level: int = logging.INFO) -> logging.Logger:
    """Log to ``logfile`` (a rule's ``log:``) and stderr, with timestamps."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile:
        os.makedirs(os.path.dirname(os.path.abspath(logfile)), exist_ok=True)
        handlers.append(logging.FileHandler(logfile, mode="w"))
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    for noisy in ("alembic", "mlflow", "urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return log


_TTY = None


def progress_stream():
    """Where progress bars go: the terminal when there is one, else nowhere.

    ``SAGEA_PROGRESS``: ``auto`` (default) draws on stderr when it is a terminal, else on the
    controlling terminal (``/dev/tty``, which a Snakemake job started from a shell still has even
    when its stderr is piped), else not at all — so cluster jobs, CI and log files stay clean;
    ``1`` always draws on stderr; ``0`` never draws.
    """
    global _TTY
    mode = os.environ.get("SAGEA_PROGRESS", "auto")
    if mode == "0":
        return None
    if mode == "1" or sys.stderr.isatty():
        return sys.stderr
    if _TTY is None:
        try:
            _TTY = open("/dev/tty", "w")  # noqa: SIM115 (kept open for the process)
        except OSError:
            _TTY = False
    return _TTY or None


def progress(iterable=None, **kwargs):
    """A tqdm progress bar drawn where :func:`progress_stream` says (quiet in logs and on clusters)."""
    from tqdm.auto import tqdm

    stream = progress_stream()
    disable = kwargs.pop("disable", None)
    if disable is None:
        disable = stream is None
    return tqdm(iterable, disable=disable, mininterval=1.0, file=stream or sys.stderr, **kwargs)