"""Validation data drawn the way the research code draws it (research mode of ELSA and SAE training).

- :func:`legacy_target_split`: per row, ``ceil(ratio · nnz)`` targets chosen by NumPy's legacy
  ``RandomState(seed).permutation`` of ``[True]·t + [False]·(nnz − t)``, one call per row in row
  order, aligned with the row's column-sorted entries. ELSA's research validation redraws it
  every epoch with seed ``seed + epoch``.
- :func:`sampled_interactions_embeddings`: ELSA encodings of the rows with each stored
  interaction kept with probability 0.8 (``rand < 0.8`` over the dense batch), as the research
  SAE validation set.

The per-row loop is inherent: each permutation consumes the one sequential random stream,
and its number of draws depends on the row length. It costs a few microseconds per row.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from sagea.data.batches import DeviceCSR


def legacy_target_mask(indptr: np.ndarray, target_fraction: float, seed: int) -> np.ndarray:
    """Bool per stored entry (CSR order): True = target, drawn as described in the module docstring."""
    rng = np.random.RandomState(seed)  # the legacy stream of np.random.seed(seed), without global state
    counts = np.diff(np.asarray(indptr))
    parts = []
    for nnz in counts.tolist():
        n_targets = int(np.ceil(nnz * target_fraction))
        parts.append(rng.permutation(np.array([True] * n_targets + [False] * (nnz - n_targets), dtype=bool)))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def legacy_target_split(
    rows: sp.csr_matrix, target_fraction: float = 0.2, seed: int = 42
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(inputs, targets) CSR of ``rows`` (0/1) under :func:`legacy_target_mask`, rows in the given order."""
    rows = sp.csr_matrix(rows, dtype=np.float32, copy=True)
    rows.sum_duplicates()  # also sorts the column indices of each row
    rows.data[:] = 1.0
    is_target = legacy_target_mask(rows.indptr, target_fraction, seed)
    targets, inputs = rows.copy(), rows.copy()
    targets.data = is_target.astype(np.float32)
    inputs.data = (~is_target).astype(np.float32)
    targets.eliminate_zeros()
    inputs.eliminate_zeros()
    return inputs, targets


@torch.no_grad()
def sampled_interactions_embeddings(
    encode,
    rows: sp.csr_matrix,
    generator: torch.Generator,
    keep: float = 0.8,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``encode(x · (u < keep))`` per dense batch of ``rows`` (``u`` uniform per cell), ``[n, d]`` on ``device``.

    The uniforms come from the CPU ``generator``, one ``[B, items]`` block per batch in row
    order, so the result does not depend on the device (calls in sequence continue the stream,
    as the research code's validation and positive views do).
    """
    device = torch.device(device)
    data = DeviceCSR(sp.csr_matrix(rows, dtype=np.float32), device)
    out = []
    for start in range(0, data.n_rows, batch_size):
        index = torch.arange(start, min(start + batch_size, data.n_rows), device=device)
        x = data.dense(index)
        keep_mask = torch.rand(x.shape, generator=generator) < keep
        out.append(encode(x * keep_mask.to(device)))
    if not out:
        return torch.zeros(0, 0, device=device)
    return torch.cat(out)
