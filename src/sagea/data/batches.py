"""Dense mini-batches of CSR rows, built on the device.

The whole user x item matrix never becomes dense: its CSR arrays live on the device once, and
each batch of rows is scattered into a (reusable) dense ``[batch, items]`` buffer there.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


class DeviceCSR:
    """A CSR matrix whose arrays sit on ``device``; :meth:`dense` materialises selected rows."""

    def __init__(self, matrix: sp.spmatrix, device: torch.device | str = "cpu") -> None:
        csr = sp.csr_matrix(matrix, dtype=np.float32)
        csr.sum_duplicates()
        self.shape = csr.shape
        self.device = torch.device(device)
        self.indptr = torch.as_tensor(csr.indptr.astype(np.int64), device=self.device)
        self.indices = torch.as_tensor(csr.indices.astype(np.int64), device=self.device)
        self.values = torch.as_tensor(csr.data, device=self.device)

    @property
    def n_rows(self) -> int:
        return self.shape[0]

    def row_counts(self) -> torch.Tensor:
        return self.indptr[1:] - self.indptr[:-1]

    def dense(self, rows: torch.Tensor | np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``rows`` as a dense float32 ``[len(rows), items]`` tensor (written into ``out[:len]`` if given).

        Vectorised gather: entry ``j`` of the batch's concatenated CSR slices sits at
        ``indptr[row] + (j - offset_of_row_in_batch)``.
        """
        rows = torch.as_tensor(rows, device=self.device, dtype=torch.int64)
        n = rows.shape[0]
        starts = self.indptr[rows]
        counts = self.indptr[rows + 1] - starts
        total = int(counts.sum())
        if out is None:
            out = torch.zeros(n, self.shape[1], dtype=torch.float32, device=self.device)
        else:
            out = out[:n]
            out.zero_()
        if total == 0:
            return out
        offsets = torch.cumsum(counts, 0) - counts
        batch_rows = torch.repeat_interleave(torch.arange(n, device=self.device), counts, output_size=total)
        pos = torch.arange(total, device=self.device) + torch.repeat_interleave(starts - offsets, counts, output_size=total)
        out[batch_rows, self.indices[pos]] = self.values[pos]
        return out
