"""Exact additive decomposition of SAGEA's item scores into per-feature terms (docs/explanations.md).

The decode path of a group code ``c [h]`` is affine in ``c``. With the members' mean
standardisation ``μ̄ = mean_u μ_u`` and ``σ̄ = mean_u σ_u`` (scalars per group), the SAE decoder
``W [h, d]``, its bias ``b [d]`` and the ELSA item rows ``A [I, d]``::

    score_i = ((c W + b) σ̄ + μ̄ 1) · a_i
            = Σ_f c_f σ̄ (W_f · a_i)   +   σ̄ (b · a_i) + μ̄ (1 · a_i)
              └─ contribution of f ─┘     └──────── remainder ───────┘

so the terms sum to the score exactly (up to floating-point rounding). ``W_f · a_i`` is the
score of item i under feature f's unit direction, ``elsa.decode(W)[f, i]``: only the interfaces
SAGEA itself uses (``elsa.decode``, the SAE's ``decoder_w`` / ``decoder_b``) are needed.
"""

from __future__ import annotations

import torch

from sagea.recommenders.sagea import MemberCodes


def feature_item_scores(elsa, sae) -> torch.Tensor:
    """``elsa.decode(W) [h, I]``: each feature's unit decoder direction scored against every item."""
    return elsa.decode(sae.decoder_w)


def group_scale(members: MemberCodes) -> tuple[torch.Tensor, torch.Tensor]:
    """The members' mean standardisation ``(μ̄ [B, 1], σ̄ [B, 1])`` that SAGEA decodes with."""
    return members.mean.mean(dim=1), members.std.mean(dim=1)


def remainder_scores(elsa, sae, members: MemberCodes) -> torch.Tensor:
    """The code-independent part ``σ̄ (b · a_i) + μ̄ (1 · a_i)`` of every item's score, ``[B, I]``."""
    mu, sigma = group_scale(members)
    bias = sae.decoder_b.unsqueeze(0) * sigma + mu  # [B, d]
    return elsa.decode(bias)


def item_contributions(
    elsa, sae, members: MemberCodes, code: torch.Tensor, items: torch.Tensor, directions: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature contributions ``[B, n, h]`` and remainders ``[B, n]`` of the scores of ``items [B, n]``.

    ``contribution[b, j, f] = c[b, f] · σ̄_b · (W_f · a_{items[b, j]})``; ``-1`` (padding) items get
    zeros. Computed in float64, so the sum over features plus the remainder reproduces the
    float32 score to rounding. ``directions``: a precomputed :func:`feature_item_scores`.
    """
    directions = feature_item_scores(elsa, sae) if directions is None else directions
    _, sigma = group_scale(members)
    valid = items >= 0
    safe = items.clamp_min(0)
    per_item = directions.t()[safe].double()  # [B, n, h]
    weight = code.double() * sigma.double()  # [B, h]
    contrib = per_item * weight[:, None, :]
    remainder = remainder_scores(elsa, sae, members).double().gather(1, safe)
    contrib = torch.where(valid[..., None], contrib, torch.zeros_like(contrib))
    remainder = torch.where(valid, remainder, torch.zeros_like(remainder))
    return contrib, remainder


def list_contributions(
    elsa, sae, members: MemberCodes, code: torch.Tensor, items: torch.Tensor, directions: torch.Tensor | None = None
) -> torch.Tensor:
    """Each feature's contribution to the summed scores of a list ``items [B, n]``: ``[B, h]`` (float64)."""
    return item_contributions(elsa, sae, members, code, items, directions)[0].sum(dim=1)
