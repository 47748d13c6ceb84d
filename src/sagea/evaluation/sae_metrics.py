"""Reconstruction metrics of a sparse autoencoder over ELSA embeddings (docs/method.md §3).

On a set of users (validation or test):

- ``CosineSim``: mean cosine of each user's ELSA embedding (full row) and its SAE reconstruction;
- ``L0``: mean number of active latents per user; ``DeadNeurons``: share of latents active for
  no user;
- ``NDCG20`` / ``R20``: ELSA with the SAE inserted — inputs → ELSA encode → SAE encode/decode →
  ELSA decode → inputs excluded → top 20 vs the held-out targets of
  :func:`sagea.data.splits.user_input_target_split`;
- ``NDCG20_base`` / ``R20_base``: plain ELSA on the same split; ``NDCG20_Degradation`` and
  ``R20_Degradation``: SAE − ELSA (as the research code, a difference, not a ratio).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import scipy.sparse as sp
import torch

from sagea.data.batches import DeviceCSR
from sagea.data.splits import user_input_target_split
from sagea.evaluation.single_user import evaluate_scorer
from sagea.scoring import elsa_scores, sae_scores


class ELSALike(Protocol):
    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, e: torch.Tensor) -> torch.Tensor: ...


@torch.no_grad()
def encode_rows(elsa: ELSALike, rows: sp.csr_matrix, batch_size: int = 1024, device="cpu") -> np.ndarray:
    """ELSA embeddings ``[n, d]`` of CSR rows, in batches (dense only per batch, on ``device``)."""
    data = DeviceCSR(rows, device)
    parts = [elsa.encode(data.dense(torch.arange(s, min(s + batch_size, data.n_rows)))).cpu().numpy()
             for s in range(0, data.n_rows, batch_size)]  # fmt: skip
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


@torch.no_grad()
def code_statistics(
    sae, embeddings: np.ndarray, batch_size: int = 4096, topk_inference: bool = True, device="cpu"
) -> dict[str, float]:
    """``CosineSim``, ``L0`` and ``DeadNeurons`` of ``sae`` on embeddings ``[n, d]``."""
    sae.eval()
    cos_sum, l0_sum = 0.0, 0.0
    active = torch.zeros(sae.hparams["width"], dtype=torch.bool, device=device)
    n = len(embeddings)
    for start in range(0, n, batch_size):
        x = torch.tensor(embeddings[start : start + batch_size], dtype=torch.float32, device=device)
        code, mean, std = sae.encode(x, topk_inference)
        out = sae.decode(code, mean, std)
        cos_sum += float(torch.nn.functional.cosine_similarity(x, out, dim=-1).sum())
        l0_sum += float((code != 0).sum())
        active |= (code != 0).any(dim=0)
    return {
        "CosineSim": cos_sum / max(n, 1),
        "L0": l0_sum / max(n, 1),
        "DeadNeurons": float((~active).float().mean()),
    }


@torch.no_grad()
def reconstruction_metrics(
    sae,
    elsa: ELSALike,
    rows: sp.csr_matrix,
    embeddings: np.ndarray | None = None,
    *,
    target_fraction: float = 0.2,
    seed: int = 42,
    target_method: str = "ours",
    k: int = 20,
    batch_size: int = 1024,
    topk_inference: bool = True,
    device="cpu",
) -> dict[str, float]:
    """Every reconstruction metric of docs/method.md §3 on the users of ``rows`` (research names).

    ``rows``: the users' full interaction rows (CSR, in the split's row order, as
    :func:`sagea.evaluation.single_user.single_user_split` expects; ``target_method`` as there);
    ``embeddings``: their ELSA
    embeddings of the full rows (computed when None). Ranking via
    :func:`sagea.evaluation.single_user.evaluate_scorer` (min-max scores, inputs excluded).
    """
    sae.eval()
    if embeddings is None:
        embeddings = encode_rows(elsa, rows, batch_size, device)
    out = code_statistics(sae, embeddings, batch_size, topk_inference, device)
    inputs, targets = user_input_target_split(rows, target_fraction, seed, target_method)

    def plain(x: torch.Tensor) -> torch.Tensor:
        return elsa_scores(elsa, x)

    def with_sae(x: torch.Tensor) -> torch.Tensor:
        return sae_scores(elsa, sae, x, topk_inference)

    base = evaluate_scorer(plain, inputs, targets, k, batch_size, device, desc="ELSA")
    fused = evaluate_scorer(with_sae, inputs, targets, k, batch_size, device, desc="ELSA+SAE")
    for name in (f"NDCG{k}", f"R{k}"):
        out[name] = fused[name]
        out[f"{name}_base"] = base[name]
        out[f"{name}_Degradation"] = fused[name] - base[name]
    return out
