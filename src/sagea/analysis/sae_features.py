"""Sparse user codes and per-feature statistics of a trained SAE (interpretability hooks).

- :func:`sparse_codes`: the SAE code of every user in long form (``user``, ``feature``, ``value``),
  never dense — only the non-zero entries are kept, chunk by chunk.
- :func:`feature_table`: per latent feature its activation ``frequency`` (share of users for
  which it is active), ``mean_activation`` (mean value over the users where it is active, 0 if
  never), and the ``top_items`` of its decoded direction: ``decoder_w[f]`` (the feature's unit
  direction in ELSA space) → ELSA decoder ``· Aᵀ`` → the highest-scoring items, with titles when
  the dataset has them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from sagea.runtime import progress


@torch.no_grad()
def sparse_codes(
    sae, embeddings: np.ndarray, topk_inference: bool = True, batch_size: int = 4096, device="cpu"
) -> pd.DataFrame:
    """Long-form codes of all rows of ``embeddings`` (row index = user): int32/int32/float32."""
    sae.eval()
    users, features, values = [], [], []
    for start in progress(range(0, len(embeddings), batch_size), desc="SAE codes", unit="batch"):
        x = torch.tensor(embeddings[start : start + batch_size], dtype=torch.float32, device=device)
        code = sae.encode(x, topk_inference)[0]
        row, col = torch.nonzero(code, as_tuple=True)
        users.append((row + start).cpu().numpy().astype(np.int32))
        features.append(col.cpu().numpy().astype(np.int32))
        values.append(code[row, col].cpu().numpy().astype(np.float32))
    cat = lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype)  # noqa: E731
    return pd.DataFrame(
        {"user": cat(users, np.int32), "feature": cat(features, np.int32), "value": cat(values, np.float32)}
    )


@torch.no_grad()
def feature_table(
    sae,
    elsa,
    codes: pd.DataFrame,
    n_users: int,
    top_n: int = 10,
    titles: Sequence[str] | None = None,
    batch_size: int = 1024,
    device="cpu",
) -> pd.DataFrame:
    """One row per feature: ``feature, frequency, mean_activation, top_items, top_titles``.

    ``codes``: output of :func:`sparse_codes` over ``n_users`` users; ``elsa.decode(e)`` maps an
    ELSA-space vector to item scores; ``titles[item]`` names items (None: empty lists).
    """
    width = sae.hparams["width"]
    feature = codes["feature"].to_numpy()
    counts = np.bincount(feature, minlength=width)
    sums = np.bincount(feature, weights=codes["value"].to_numpy(np.float64), minlength=width)
    frequency = counts / max(n_users, 1)
    mean_activation = np.divide(sums, counts, out=np.zeros(width), where=counts > 0)
    top_items = []
    for start in range(0, width, batch_size):
        scores = elsa.decode(sae.decoder_w[start : start + batch_size].to(device))
        top_items.append(torch.topk(scores, min(top_n, scores.shape[1]), dim=-1).indices.cpu().numpy())
    top = np.concatenate(top_items).astype(np.int32)
    title_array = np.asarray(titles, dtype=object) if titles is not None else None
    return pd.DataFrame(
        {
            "feature": np.arange(width, dtype=np.int32),
            "frequency": frequency.astype(np.float32),
            "mean_activation": mean_activation.astype(np.float32),
            "top_items": list(top),
            "top_titles": [list(title_array[row]) if title_array is not None else [] for row in top],
        }
    )
