"""Shared fixtures: repository paths and the real MovieLens sample."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ML_SMALL = SHARED / "datasets" / "ml-latest-small"

os.environ.setdefault("SAGEA_PROGRESS", "0")
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def python() -> str:
    """The interpreter running the tests (the project's .venv under `make test`)."""
    return sys.executable


@pytest.fixture(scope="session")
def ml_small() -> Path:
    """The real ml-latest-small release shipped in ../shared (skips when absent)."""
    if not (ML_SMALL / "ratings.csv").exists():
        pytest.skip(f"real MovieLens sample not found at {ML_SMALL} (../shared/datasets/ml-latest-small)")
    return ML_SMALL


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests: their tensors are tiny, and on a busy 2-core machine
    OpenMP spinning makes two threads many times slower than one. Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
