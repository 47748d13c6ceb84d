"""The SAGEA fusions of member sparse codes ``[B, m, h]`` into one group code ``[B, h]``.

docs/method.md §5; ``c_u`` is member u's code, ``a_f = #{u : c_uf > 0}`` the number of members in
which feature f is active, ``mean_f = 1/m Σ_u c_uf``:

- ``average``: ``mean``                    - ``square_average``: ``mean²``
- ``topk``: ``mean`` keeping its k largest (ties -> lower feature index), others 0
- ``max`` / ``min``: element-wise over members
- ``common_features``: ``mean_f`` where ``a_f = m``, else 0
- ``at_least_2_common_features``: ``mean_f`` where ``a_f >= 2``, else 0
- ``wcom``: ``mean_f · a_f``

:func:`rescale` then gives the fused code the members' mean L2 norm. A fused code can be
all-zero (zero norm) and then cannot be rescaled: ``common_features`` and ``min`` when no feature
is active in every member, ``at_least_2_common_features`` when no feature is active in two
members; every fusion when every member's code is all-zero. The ``zero_fallback`` rule decides:

- ``relax`` (default): :func:`relax` keeps the fusion's meaning with the most-shared features,
  ``a* = max_f a_f``: ``common_features`` / ``at_least_2_common_features`` → ``mean_f`` where
  ``a_f = a*``; ``min`` → the smallest non-zero value of the feature among the members that have
  it, where ``a_f = a*``. It applies only where the fusion is all-zero (``0 < a* < m``; for
  ``at_least_2_common_features`` ``a* = 1``, so every active feature: the ``average`` code).
- ``average``: the ``average`` fusion of the same members (SAE-Avg under the fusion's name).
- ``nan``: the research code's division by zero (defect 5): NaN code, NaN scores for every item;
  the list is then the lowest-index unseen items, in ascending item order.

If every member's code is all-zero, no rule has a feature to use: ``relax`` and ``average`` keep
the zero code (the SAE decodes its bias alone), ``nan`` gives NaN.
"""

from __future__ import annotations

import torch

from sagea import registry
from sagea.scoring import stable_topk

ZERO_FALLBACKS = ("relax", "average", "nan")


# Each fusion is registered by name (sagea.registry: the config's allowed names come from there).
@registry.fusion("average")
def average(codes: torch.Tensor, k: int | None = None) -> torch.Tensor:
    return codes.mean(dim=1)


@registry.fusion("square_average")
def square_average(codes: torch.Tensor, k: int | None = None) -> torch.Tensor:
    return codes.mean(dim=1).square()


@registry.fusion("topk")
def topk(codes: torch.Tensor, k: int | None = None) -> torch.Tensor:
    if k is None:
        raise ValueError("fusion 'topk' needs k (the SAE's k)")
    mean = codes.mean(dim=1)
    keep = stable_topk(mean, min(k, mean.shape[-1]))
    out = torch.zeros_like(mean)
    valid = keep >= 0
    return out.scatter(-1, keep.clamp_min(0), torch.gather(mean, -1, keep.clamp_min(0)) * valid)


@registry.fusion("max")
def maximum(codes: torch.Tensor, k: int | None = None) -> torch.Tensor:
    return codes.amax(dim=1)


@registry.fusion("min", shared_features=True)
def minimum(codes: torch.Tensor, k: int | None = None) -> torch.Tensor:
    return codes.amin(dim=1)


@registry.fusion("common_features", shared_features=True)
def common_features(codes: torch.Tensor, k: int | None = None) -> torch.Tensor:
    mean, active = codes.mean(dim=1), (codes > 0).sum(dim=1)
    return torch.where(active == codes.shape[1], mean, torch.zeros_like(mean))


@registry.fusion("at_least_2_common_features", shared_features=True)
def at_least_2_common_features(codes: torch.Tensor, k: int | None = None) -> torch.Tensor:
    mean, active = codes.mean(dim=1), (codes > 0).sum(dim=1)
    return torch.where(active >= 2, mean, torch.zeros_like(mean))


@registry.fusion("wcom")
def wcom(codes: torch.Tensor, k: int | None = None) -> torch.Tensor:
    return codes.mean(dim=1) * (codes > 0).sum(dim=1)


def fuse(codes: torch.Tensor, fusion: str, k: int | None = None) -> torch.Tensor:
    """Fuse member codes ``[B, m, h]`` with the registered fusion ``fusion`` (see module doc);
    ``k`` for ``topk``. An unknown name raises naming the config key and the registered names."""
    return registry.implementation("fusion", fusion)(codes, k)


def relax(codes: torch.Tensor, fusion: str, k: int | None = None) -> torch.Tensor:
    """The ``relax`` fallback of ``fusion`` for codes ``[B, m, h]`` (see module doc).

    For the shared-feature fusions the feature set relaxes from "active in every member" (``min``,
    ``common_features``) or "in at least two" to "active in the largest number of members" of the
    group; any other fusion is all-zero only when every member's code is, and is returned as is.
    """
    if fusion not in registry.shared_feature_fusions():
        return fuse(codes, fusion, k)
    active = (codes > 0).sum(dim=1)  # [B, h]
    most = active.amax(dim=-1, keepdim=True)
    keep = (active == most) & (most > 0)
    if fusion == "min":  # min over the members that have the feature
        values = codes.masked_fill(codes <= 0, float("inf")).amin(dim=1)
    else:
        values = codes.mean(dim=1)
    return torch.where(keep, values, torch.zeros_like(values))


def normalize_members(codes: torch.Tensor) -> torch.Tensor:
    """Scale each member's code to unit L2 norm (all-zero codes stay zero)."""
    norm = codes.norm(dim=-1, keepdim=True)
    return codes / torch.where(norm > 0, norm, torch.ones_like(norm))


def rescale(
    fused: torch.Tensor, codes: torch.Tensor, fallback: torch.Tensor | None = None, zero_fallback: str = "relax"
) -> torch.Tensor:
    """``fused · mean_u ||c_u|| / ||fused||``; all-zero rows handled by ``zero_fallback``.

    ``codes``: the members' codes whose mean norm is the target; ``fallback``: the code to use
    for all-zero rows under ``relax`` / ``average`` (rescaled the same way; rows still zero stay
    zero); under ``nan`` all-zero rows become NaN (defect 5).
    """
    if zero_fallback not in ZERO_FALLBACKS:
        raise ValueError(f"unknown zero_fallback {zero_fallback!r} (config evaluation.sagea.zero_fallback): {ZERO_FALLBACKS}")
    target = codes.norm(dim=-1).mean(dim=1, keepdim=True)
    norm = fused.norm(dim=-1, keepdim=True)
    if zero_fallback == "nan":
        return fused * target / norm  # 0/0 -> NaN, the research behaviour (defect 5)
    zero = norm == 0
    if fallback is not None and bool(zero.any()):
        fused = torch.where(zero, fallback, fused)
        norm = fused.norm(dim=-1, keepdim=True)
        zero = norm == 0
    return torch.where(zero, fused, fused * target / torch.where(zero, torch.ones_like(norm), norm))
