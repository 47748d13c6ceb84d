"""SAGEA: fuse the members' sparse SAE codes and decode the group code into item scores.

Members' inputs ``x_u`` → ELSA ``e_u = x_u A`` → SAE ``(c_u, μ_u, σ_u) = encode(e_u)`` →
(optionally ``c_u / ||c_u||``) → ``fuse`` → rescale to ``mean_u ||c_u||`` (original codes) →
SAE ``decode(c, mean_u μ_u, mean_u σ_u)`` → ELSA ``decode`` → exclude the union of the
members' inputs → top k (docs/method.md §5). One encoding serves all fusions of a job. An
all-zero fused code is replaced by the ``zero_fallback`` rule and flagged per group as
``ZeroFusedCode`` (:mod:`sagea.recommenders.fusion`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sagea.io import check_finite
from sagea.recommenders.base import Recommendation, SaeLike
from sagea.scoring import ElsaLike, exclude, stable_topk
from sagea.recommenders.fusion import fuse, normalize_members, relax, rescale


@dataclass
class MemberCodes:
    """SAE codes of a chunk's members: ``codes [B, m, h]``, ``mean``/``std`` ``[B, m, 1]``."""

    codes: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    @property
    def common_features(self) -> torch.Tensor:
        """Number of features active (> 0) in every member, ``[B]``."""
        return (self.codes > 0).all(dim=1).sum(dim=-1)


def encode_members(elsa: ElsaLike, sae: SaeLike, inputs: torch.Tensor, topk_inference: bool = True) -> MemberCodes:
    """ELSA then SAE encoding of each member's inputs ``[B, m, I]``."""
    b, m, n = inputs.shape
    emb = elsa.encode(inputs.reshape(b * m, n))
    code, mean, std = sae.encode(emb, topk_inference=topk_inference)
    return MemberCodes(code.reshape(b, m, -1), mean.reshape(b, m, -1), std.reshape(b, m, -1))


def fused_code(
    members: MemberCodes,
    fusion: str,
    k: int,
    normalize_users_embeddings: bool = False,
    zero_fallback: str = "relax",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rescaled group code ``[B, h]`` of one fusion and its zero flag ``[B]`` (bool).

    The flag says whether the fusion itself gave an all-zero code, before ``zero_fallback``
    (``relax`` / ``average`` / ``nan``, see :mod:`sagea.recommenders.fusion`) replaced it.
    ``k``: the SAE's k, for ``topk``; an unknown ``zero_fallback`` raises in :func:`rescale`.
    """
    codes = normalize_members(members.codes) if normalize_users_embeddings else members.codes
    fused = fuse(codes, fusion, k)
    zero = fused.norm(dim=-1) == 0
    fallback = None
    if zero_fallback != "nan" and bool(zero.any()):
        fallback = relax(codes, fusion, k) if zero_fallback == "relax" else fuse(codes, "average")
    return rescale(fused, members.codes, fallback, zero_fallback), zero


def sagea_scores(elsa: ElsaLike, sae: SaeLike, members: MemberCodes, group_code: torch.Tensor) -> torch.Tensor:
    """Item scores ``[B, I]`` of group codes: SAE decode with the members' mean μ/σ, ELSA decode."""
    emb = sae.decode(group_code, members.mean.mean(dim=1), members.std.mean(dim=1))
    return elsa.decode(emb)


class SageaRecommender:
    """One SAGEA fusion as a :class:`~sagea.recommenders.base.GroupRecommender`.

    All fusions of a job share ``score_key``, so the evaluator encodes each chunk once.
    """

    def __init__(
        self,
        elsa: ElsaLike,
        sae: SaeLike,
        fusion: str,
        k: int,
        topk_inference: bool = True,
        normalize_users_embeddings: bool = False,
        zero_fallback: str = "relax",
    ) -> None:
        self.name = fusion
        self.elsa, self.sae, self.fusion, self.k = elsa, sae, fusion, k
        self.topk_inference = topk_inference
        self.normalize_users_embeddings = normalize_users_embeddings
        self.zero_fallback = zero_fallback
        self.score_key = ("sagea", id(elsa), id(sae), topk_inference)

    def score(self, inputs: torch.Tensor) -> MemberCodes:
        return encode_members(self.elsa, self.sae, inputs, self.topk_inference)

    def aggregate(self, state: MemberCodes, seen: torch.Tensor, k: int) -> Recommendation:
        code, zero = fused_code(state, self.fusion, self.k, self.normalize_users_embeddings, self.zero_fallback)
        scores = sagea_scores(self.elsa, self.sae, state, code)
        # NaN scores are by design only where zero_fallback='nan' divides an all-zero fused code by 0
        undefined = torch.isnan(code).any(-1).cpu().numpy() if self.zero_fallback == "nan" else None
        check_finite(scores, None, f"SAGEA {self.fusion} scores (rows = groups of this chunk)", allow=undefined)
        extras = {"CommonFeatures": state.common_features, "ZeroFusedCode": zero}
        return Recommendation(stable_topk(exclude(scores, seen), k), extras)
