"""The SAGEA fusions of member sparse codes ``[B, m, h]`` into one group code ``[B, h]``.

REFERENCE.md §5; ``c_u`` is member u's code, ``a_f = #{u : c_uf > 0}`` the number of members in
which feature f is active, ``mean_f = 1/m Σ_u c_uf``:

- ``average``: ``mean``                    - ``square_average``: ``mean²``
- ``topk``: ``mean`` keeping its k largest (ties -> lower feature index), others 0
- ``max`` / ``min``: element-wise over members
- ``common_features``: ``mean_f`` where ``a_f = m``, else 0
- ``at_least_2_common_features``: ``mean_f`` where ``a_f >= 2``, else 0
- ``wcom``: ``mean_f · a_f``

:func:`rescale` then gives the fused code the members' mean L2 norm; an all-zero fused code
(e.g. ``common_features`` of members without a shared feature) cannot be rescaled — the
``zero_fallback`` rule decides: ``average`` uses the ``average`` fusion instead (default),
``nan`` reproduces the research code's division by zero (defect 5: NaN scores).
"""

from __future__ import annotations

import torch

from sagea.plan import FUSIONS  # the fusion names of REFERENCE.md §5, one list for all
from sagea.recommenders.base import stable_topk

ZERO_FALLBACKS = ("average", "nan")


def fuse(codes: torch.Tensor, fusion: str, k: int | None = None) -> torch.Tensor:
    """Fuse member codes ``[B, m, h]`` with ``fusion`` (see module doc); ``k`` for ``topk``."""
    mean = codes.mean(dim=1)
    if fusion == "average":
        return mean
    if fusion == "square_average":
        return mean.square()
    if fusion == "topk":
        if k is None:
            raise ValueError("fusion 'topk' needs k (the SAE's k)")
        keep = stable_topk(mean, min(k, mean.shape[-1]))
        out = torch.zeros_like(mean)
        valid = keep >= 0
        return out.scatter(-1, keep.clamp_min(0), torch.gather(mean, -1, keep.clamp_min(0)) * valid)
    if fusion == "max":
        return codes.amax(dim=1)
    if fusion == "min":
        return codes.amin(dim=1)
    active = (codes > 0).sum(dim=1)
    if fusion == "common_features":
        return torch.where(active == codes.shape[1], mean, torch.zeros_like(mean))
    if fusion == "at_least_2_common_features":
        return torch.where(active >= 2, mean, torch.zeros_like(mean))
    if fusion == "wcom":
        return mean * active
    raise ValueError(f"unknown fusion {fusion!r}; expected one of {FUSIONS} (config evaluation.sagea.fusions)")


def normalize_members(codes: torch.Tensor) -> torch.Tensor:
    """Scale each member's code to unit L2 norm (all-zero codes stay zero)."""
    norm = codes.norm(dim=-1, keepdim=True)
    return codes / torch.where(norm > 0, norm, torch.ones_like(norm))


def rescale(
    fused: torch.Tensor, codes: torch.Tensor, fallback: torch.Tensor | None = None, zero_fallback: str = "average"
) -> torch.Tensor:
    """``fused · mean_u ||c_u|| / ||fused||``; all-zero rows handled by ``zero_fallback``.

    ``codes``: the members' codes whose mean norm is the target; ``fallback``: the fused code
    to use for all-zero rows under ``zero_fallback='average'`` (rescaled the same way).
    """
    target = codes.norm(dim=-1).mean(dim=1, keepdim=True)
    norm = fused.norm(dim=-1, keepdim=True)
    if zero_fallback == "nan":
        return fused * target / norm  # 0/0 -> NaN, the research behaviour (defect 5)
    if zero_fallback != "average":
        raise ValueError(f"unknown zero_fallback {zero_fallback!r} (config evaluation.sagea.zero_fallback): {ZERO_FALLBACKS}")
    zero = norm == 0
    if fallback is not None and bool(zero.any()):
        fused = torch.where(zero, fallback, fused)
        norm = fused.norm(dim=-1, keepdim=True)
        zero = norm == 0
    return torch.where(zero, fused, fused * target / torch.where(zero, torch.ones_like(norm), norm))
