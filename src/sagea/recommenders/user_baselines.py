"""Single-user baselines for the accuracy table: POP and EASE (Steck, WWW 2019).

Both return a *scorer* (``x [B, items] -> scores [B, items]``) for
:func:`sagea.evaluation.single_user.evaluate_scorer`, fitted on the training users only
(every row of the matrix passed in).
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch

from sagea.scoring import ScoreFn, item_popularity

log = logging.getLogger(__name__)


def pop_scorer(train: sp.csr_matrix, device: torch.device | str = "cpu") -> ScoreFn:
    """POP: every user gets the training-user popularity of each item."""
    pop = torch.as_tensor(item_popularity(train), dtype=torch.float32, device=device)
    return lambda x: pop.expand(x.shape[0], -1)


def ease_weights(train: sp.csr_matrix, lam: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """EASE closed form: ``P = (XᵀX + λI)⁻¹``, ``B = I − P diag(1/diag P)`` (so ``diag B = 0``).

    Dense ``[items, items]``; solved in float64 (Cholesky) on ``device`` (on the CPU for Apple
    MPS, which lacks float64), returned as float32 on ``device``.
    """
    if lam <= 0:
        raise ValueError(f"EASE needs lambda > 0 (config key elsa.ease_lambda), got {lam}")
    binary = sp.csr_matrix(train, dtype=np.float64, copy=True)
    binary.data[:] = 1.0
    device = torch.device(device)
    solve_on = torch.device("cpu") if device.type == "mps" else device
    gram = torch.as_tensor((binary.T @ binary).toarray(), device=solve_on)
    gram.diagonal().add_(lam)
    p = torch.cholesky_inverse(torch.linalg.cholesky(gram))
    del gram
    b = p.div_(p.diagonal().clone()[None, :]).neg_()  # in place: ~3 dense float64 copies at peak
    b.diagonal().zero_()
    return b.float().to(device)


def ease_scorer(train: sp.csr_matrix, lam: float, device: torch.device | str = "cpu") -> ScoreFn:
    """EASE: scores ``x B``."""
    b = ease_weights(train, lam, device)
    return lambda x: x @ b
