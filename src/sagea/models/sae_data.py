"""What the SAE trains on (docs/method.md §3): batches of ELSA user embeddings, and for the
contrastive loss a positive view of each user.

- :class:`EmbeddingData`: the fast path, precomputed embeddings ``[n, d]`` (optionally with fixed
  positive views, as the research code's validation set has);
- :class:`InteractionData`: user rows encoded through ELSA batch by batch, with a positive view
  built from the interactions when the contrastive loss needs one;
- :func:`positive_view`: ``ceil(keep·n_u)`` of a user's items plus ``ceil(noise·n_u)`` random items.

Both views answer ``batch(index, rng, device) -> (x, x_positive | None)``; ``rng`` is the
epoch's generator, so positive views follow the training's random stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp
import torch

from sagea.data.batches import DeviceCSR


class Encoder(Protocol):
    """What the SAE needs from ELSA: ``encode(x [B, items]) -> [B, d]``."""

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...


def positive_view(
    rows: sp.csr_matrix, rng: np.random.Generator, keep: float = 0.5, noise: float = 0.1
) -> sp.csr_matrix:
    """Augmented view of each row: ``ceil(keep·n_u)`` of its items plus ``ceil(noise·n_u)`` random items.

    Vectorised over rows: one uniform key per stored item, the smallest keys of a row are kept.
    """
    rows = sp.csr_matrix(rows)
    counts = np.diff(rows.indptr)
    row_of = np.repeat(np.arange(rows.shape[0]), counts)
    order = np.lexsort((rng.random(rows.nnz), row_of))
    rank = np.empty(rows.nnz, dtype=np.int64)
    rank[order] = np.arange(rows.nnz) - np.repeat(rows.indptr[:-1], counts)
    kept = rank < np.repeat(np.ceil(keep * counts - 1e-9).astype(np.int64), counts)
    n_noise = np.ceil(noise * counts - 1e-9).astype(np.int64)
    noise_rows = np.repeat(np.arange(rows.shape[0]), n_noise)
    noise_items = rng.integers(0, rows.shape[1], size=int(n_noise.sum()))
    view = sp.csr_matrix(
        (
            np.ones(int(kept.sum()) + len(noise_items), dtype=np.float32),
            (np.concatenate([row_of[kept], noise_rows]), np.concatenate([rows.indices[kept], noise_items])),
        ),
        shape=rows.shape,
    )
    view.sum_duplicates()
    view.data[:] = 1.0  # duplicates (a noise item hitting a kept one) collapse to 1
    return view


@dataclass
class EmbeddingData:
    """Fast path: precomputed ELSA user embeddings ``[n, d]`` (and optionally fixed positive views)."""

    embeddings: torch.Tensor
    positives: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.embeddings)

    def batch(self, index: np.ndarray, rng: np.random.Generator | None, device) -> tuple[torch.Tensor, torch.Tensor | None]:
        rows = torch.from_numpy(index)
        positive = None if self.positives is None else self.positives[rows].to(device)
        return self.embeddings[rows].to(device), positive


class InteractionData:
    """Interaction path: user rows encoded through ELSA on the fly, with a positive view when
    ``contrastive`` (50 % of the row + 10 % noise items, :func:`positive_view`)."""

    def __init__(self, rows: sp.csr_matrix, elsa: Encoder, contrastive: bool = False, device="cpu") -> None:
        self.rows = sp.csr_matrix(rows, dtype=np.float32)
        self.elsa, self.contrastive = elsa, contrastive
        self.device_rows = DeviceCSR(self.rows, device)

    def __len__(self) -> int:
        return self.rows.shape[0]

    @torch.no_grad()
    def batch(
        self, index: np.ndarray, rng: np.random.Generator | None, device
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.elsa.encode(self.device_rows.dense(index)).to(device)
        if not self.contrastive or rng is None:
            return x, None
        view = positive_view(self.rows[index], rng)
        return x, self.elsa.encode(DeviceCSR(view, self.device_rows.device).dense(np.arange(len(index)))).to(device)


TrainData = EmbeddingData | InteractionData


def epoch_batches(train: TrainData, batch_size: int, seed: int, epoch: int, device, load: bool = True):
    """One epoch's batches ``(index, x, x_pos)``: a permutation drawn from ``default_rng([seed, epoch])``,
    cut into ``batch_size`` chunks (each sorted), whose positive views draw from the same generator.
    ``load=False``: only the indices (``x`` and ``x_pos`` None), for data whose batches draw nothing
    from the generator (:class:`EmbeddingData`).

    The one batch stream of SAE training: a single SAE (:func:`sagea.models.sae.fit`) and a stack of
    grid variants (:mod:`sagea.models.sae_grid`) see exactly the same batches.
    """
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(train))
    for start in range(0, len(train), batch_size):
        index = np.sort(perm[start : start + batch_size])
        x, x_pos = train.batch(index, rng, device) if load else (None, None)
        yield index, x, x_pos


