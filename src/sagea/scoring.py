"""Scoring primitives shared by the models, the recommenders and the evaluation (a leaf module:
it imports only torch and NumPy).

- :func:`minmax`: per-row min-max normalisation; :func:`unit_rows`: rows scaled to unit L2 norm.
- :func:`exclude`, :func:`stable_topk`: seen items at ``-inf``, top-k with ties to the lower index;
  :func:`top_k_items`: the single-user protocol (min-max, exclude the inputs, ``torch.topk``).
- :func:`elsa_scores` (``x A Aᵀ − x``), :func:`member_elsa_scores`, :func:`member_relevance` and
  :func:`sae_scores` (``decode_ELSA(SAE(x A)) − x``): the ELSA and SAE scoring protocols
  (docs/method.md §2–3).
- :func:`item_popularity`: users holding each item.

Every function keeps the exact floating-point operation order its callers rely on (the
recommendations are compared byte for byte across versions).
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np
import torch


class ElsaLike(Protocol):
    """What scoring needs from ELSA: ``encode(x [B, I]) -> [B, d]``, ``decode(e) -> [B, I]``."""

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, e: torch.Tensor) -> torch.Tensor: ...


#: A single-user scorer: dense input rows ``x [B, I]`` -> scores ``[B, I]``.
ScoreFn = Callable[[torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------- normalisation
def minmax(scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Per-row min-max normalisation to [0, 1]: ``(s - min) / (max - min)`` (constant rows -> 0)."""
    lo = scores.amin(dim=dim, keepdim=True)
    hi = scores.amax(dim=dim, keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (scores - lo) / torch.where(span > 0, span, torch.ones_like(span)), 0.0)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero); the dtype of ``matrix`` is kept."""
    norm = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norm > 0, norm, 1.0)


# ----------------------------------------------------------------------------- top-k
def exclude(scores: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Scores with seen items (``seen`` True) at ``-inf``: seen items are never candidates."""
    return scores.masked_fill(seen, float("-inf"))


def stable_topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest scores along the last axis, ties -> lower index first.

    NaN counts as larger than every number (like ``torch.sort``); ``-inf`` entries are returned
    as ``-1`` (no candidate). Cost: one ``topk`` and one comparison pass; only rows with more
    items equal to the k-th value than places left take the slower exact path.
    """
    n = scores.shape[-1]
    k_eff = min(k, n)
    s = torch.nan_to_num(scores, nan=float("inf"), posinf=float("inf"), neginf=float("-inf"))
    flat = s.reshape(-1, n)
    idx = torch.topk(flat, k_eff, dim=-1).indices
    thr = flat.gather(-1, idx[:, -1:])
    ambiguous = ((flat >= thr).sum(-1) > k_eff).nonzero()[:, 0]
    if len(ambiguous):  # ties across the cut: keep the lowest indices among the tied items
        sub, t = flat[ambiguous], thr[ambiguous]
        equal = sub == t
        need = k_eff - (sub > t).sum(-1, keepdim=True)
        chosen = (sub > t) | (equal & (equal.cumsum(-1) <= need))
        idx = idx.index_put((ambiguous,), chosen.nonzero()[:, 1].reshape(-1, k_eff))
    idx = idx.sort(dim=-1).values  # ascending index, then a stable sort by score
    vals = flat.gather(-1, idx)
    order = torch.sort(vals, dim=-1, descending=True, stable=True).indices
    idx = idx.gather(-1, order)
    vals = vals.gather(-1, order)
    idx = idx.masked_fill(vals == float("-inf"), -1).reshape(*s.shape[:-1], k_eff)
    if k_eff < k:
        pad = idx.new_full((*idx.shape[:-1], k - k_eff), -1)
        idx = torch.cat([idx, pad], dim=-1)
    return idx


def top_k_items(scores: torch.Tensor, inputs: torch.Tensor, k: int, normalize: bool = True) -> torch.Tensor:
    """Single-user protocol: indices ``[B, k]`` of the k best items per row of ``scores [B, I]``
    (min-max normalised first with ``normalize``), items where ``inputs > 0`` never chosen.

    Ties keep ``torch.topk``'s order (the single-user metrics have always been computed so);
    group recommendations use :func:`stable_topk`.
    """
    if normalize:
        scores = minmax(scores, dim=1)
    return torch.topk(exclude(scores, inputs > 0), k, dim=1, sorted=True).indices


# ----------------------------------------------------------------------------- protocols
def elsa_scores(elsa: ElsaLike, x: torch.Tensor) -> torch.Tensor:
    """ELSA ranking scores ``x A Aᵀ − x`` of input rows ``x [B, I]``."""
    return elsa.decode(elsa.encode(x)) - x


def member_elsa_scores(elsa: ElsaLike, inputs: torch.Tensor) -> torch.Tensor:
    """Each member's ELSA scores ``x A Aᵀ - x`` (docs/method.md §2), ``[B, m, I]`` (float inputs)."""
    b, m, n = inputs.shape
    return elsa_scores(elsa, inputs.reshape(b * m, n)).reshape(b, m, n)


def member_relevance(elsa: ElsaLike, inputs: torch.Tensor) -> torch.Tensor:
    """Each member's ELSA scores min-max normalised over all items to [0, 1], ``[B, m, I]``."""
    return minmax(member_elsa_scores(elsa, inputs), dim=-1)


def sae_scores(elsa: ElsaLike, sae, x: torch.Tensor, topk_inference: bool = True) -> torch.Tensor:
    """ELSA with the SAE inserted between encode and decode: ``decode(SAE(x A)) − x``."""
    return elsa.decode(sae(elsa.encode(x), topk_inference)) - x


# ----------------------------------------------------------------------------- popularity
def item_popularity(rows, users: np.ndarray | None = None, with_targets: bool = False) -> np.ndarray:
    """Per-item user counts ``[I]`` (float64) of a user x item matrix (any value > 0 counts).

    Counted over the rows ``users`` (the training users: no evaluated member's held-out targets
    leak in), or over every row when ``users`` is None or ``with_targets`` (defect 4 of the
    research code, config ``evaluation.research.popularity_with_targets``).
    """
    source = rows if users is None or with_targets else rows[np.asarray(users)]
    return np.asarray((source > 0).sum(axis=0), dtype=np.float64).reshape(-1)
