"""How good are the explanations? Deletion curves (faithfulness) and planted-cluster recovery.

**Deletion** (per group, docs/explanations.md): rank the fused code's active features by their
contribution to the list's summed scores; set the top ``m`` of them to 0 (``m`` clipped to the
number of active features), decode the code again with the same members' μ̄/σ̄ (no new
rescaling, so only the deleted terms change) and take the new top-k under the same exclusion.
The list overlap ``|L ∩ L'| / |L|`` after deleting the top-m explaining features is compared with
the overlap after deleting ``m`` active features drawn at random (``n_random`` draws, seeded). A
faithful explanation gives a far lower overlap for the top-m than for random features.

**Planted clusters** (synthetic data): a feature's top items' majority cluster, its purity (share
of its top items in that cluster), whether its lift label names the same cluster, and per planted
cluster the purest feature.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from sagea.explain.contributions import feature_item_scores, list_contributions
from sagea.scoring import exclude, stable_topk
from sagea.recommenders.sagea import encode_members, fused_code, sagea_scores


def list_overlap(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """``|L ∩ L'| / |L|`` per row of two lists ``[B, k]`` (``-1`` = padding, never counted); NaN for empty L."""
    valid = before >= 0
    same = (before[:, :, None] == after[:, None, :]) & valid[:, :, None] & (after[:, None, :] >= 0)
    hits = same.any(-1).sum(-1).double()
    n = valid.sum(-1).double()
    return torch.where(n > 0, hits / n.clamp_min(1), torch.full_like(n, float("nan")))


def deletion_masks(order: torch.Tensor, n_active: torch.Tensor, m: int) -> torch.Tensor:
    """Bool ``[B, h]``: the first ``min(m, n_active)`` features of each row's ``order [B, h]``."""
    b, h = order.shape
    take = torch.arange(h, device=order.device)[None, :] < torch.clamp(n_active, max=m)[:, None]
    return torch.zeros(b, h, dtype=torch.bool, device=order.device).scatter(1, order, take)


@torch.no_grad()
def deletion_curve(
    elsa,
    sae,
    inputs: torch.Tensor,
    fusion: str,
    k_sae: int,
    ms: Sequence[int],
    k: int = 20,
    n_random: int = 10,
    seed: int = 0,
    topk_inference: bool = True,
    normalize_users_embeddings: bool = False,
    zero_fallback: str = "relax",
    details: bool = False,
) -> dict[str, np.ndarray]:
    """Deletion curve of a chunk of groups ``inputs [B, m, I]``.

    Returns ``top [B, len(ms)]`` (overlap after deleting the top-m features), ``random [B, len(ms)]``
    (mean overlap over ``n_random`` random draws of m active features), ``n_active [B]``. Random
    draws use a ``torch.Generator`` seeded with ``seed``: the same chunk and seed give the same numbers.
    ``details`` adds ``contribution [B, h]`` (each feature's contribution to the list's summed
    scores) and ``held_by_all [B, h]`` (the feature is active in every member's code).
    """
    x = inputs.to(dtype=torch.float32)
    members = encode_members(elsa, sae, x, topk_inference)
    code, _ = fused_code(members, fusion, k_sae, normalize_users_embeddings, zero_fallback)
    seen = x.bool().any(dim=1)
    base = stable_topk(exclude(sagea_scores(elsa, sae, members, code), seen), k)
    contrib = list_contributions(elsa, sae, members, code, base, feature_item_scores(elsa, sae))  # [B, h]
    active = code != 0
    n_active = active.sum(-1)
    # explaining order: active features by contribution (desc), ties -> lower index; inactive last
    h = code.shape[-1]
    key = torch.where(active, -contrib, torch.full_like(contrib, float("inf")))
    idx = torch.arange(h, device=code.device).expand_as(key)
    order = idx.gather(1, torch.sort(key, dim=-1, stable=True).indices)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    random_orders = []
    for _ in range(n_random):  # random ranks of the active features, inactive ones last
        noise = torch.rand(code.shape, generator=gen, dtype=torch.float64).to(code.device)
        random_orders.append(torch.sort(torch.where(active, noise, torch.full_like(noise, 2.0)), dim=-1).indices)

    def overlap_after(delete: torch.Tensor) -> torch.Tensor:
        masked = code.masked_fill(delete, 0.0)
        after = stable_topk(exclude(sagea_scores(elsa, sae, members, masked), seen), k)
        return list_overlap(base, after)

    top = np.zeros((len(code), len(ms)))
    rnd = np.zeros((len(code), len(ms)))
    for j, m in enumerate(ms):
        top[:, j] = overlap_after(deletion_masks(order, n_active, int(m))).cpu().numpy()
        draws = [overlap_after(deletion_masks(o, n_active, int(m))) for o in random_orders]
        rnd[:, j] = torch.stack(draws).mean(0).cpu().numpy() if draws else np.nan
    undefined = torch.isnan(code).any(-1).cpu().numpy()  # zero_fallback 'nan': no ranking to explain
    top[undefined], rnd[undefined] = np.nan, np.nan
    out = {"top": top, "random": rnd, "n_active": n_active.cpu().numpy()}
    if details:
        out["contribution"] = contrib.cpu().numpy()
        out["held_by_all"] = (members.codes > 0).all(dim=1).cpu().numpy()
    return out


def cluster_purity(top_items: Sequence[Sequence[int]], item_cluster: np.ndarray) -> pd.DataFrame:
    """Per feature: ``majority_cluster`` of its top items, ``purity`` (share in it), ``lift_cluster``
    (the cluster most over-represented vs the catalogue: the label of :mod:`sagea.explain.labels`)."""
    item_cluster = np.asarray(item_cluster, dtype=np.int64)
    n_clusters = int(item_cluster.max()) + 1 if item_cluster.size else 0
    lengths = np.array([len(t) for t in top_items])
    rows = np.repeat(np.arange(len(top_items)), lengths)
    cols = item_cluster[np.concatenate([np.asarray(t, np.int64) for t in top_items])] if lengths.sum() else np.zeros(0, np.int64)
    counts = np.zeros((len(top_items), max(n_clusters, 1)))
    np.add.at(counts, (rows, cols), 1.0)
    catalogue = np.bincount(item_cluster, minlength=n_clusters) / max(len(item_cluster), 1)
    lift = counts / np.maximum(lengths, 1)[:, None] / np.where(catalogue > 0, catalogue, 1.0)
    # ties -> lowest cluster (argmax); the lift label prefers well-supported clusters as labels.py does
    majority = counts.argmax(1)
    supported = np.where(counts >= 2, lift, -1.0)
    lift_cluster = np.where(supported.max(1) >= 0, supported.argmax(1), lift.argmax(1))
    purity = counts.max(1) / np.maximum(lengths, 1)
    return pd.DataFrame(
        {
            "feature": np.arange(len(top_items), dtype=np.int64),
            "majority_cluster": majority.astype(np.int64),
            "purity": np.where(lengths > 0, purity, np.nan),
            "lift_cluster": lift_cluster.astype(np.int64),
            "label_matches": (lift_cluster == majority) & (lengths > 0),
        }
    )


def cluster_recovery(
    top_items: Sequence[Sequence[int]], item_cluster: np.ndarray, alive: np.ndarray, pure: float = 0.8
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(per feature, per planted cluster)`` over the ``alive`` features.

    Per cluster: ``best_feature`` (highest share of its top items in the cluster; ties -> lower
    feature), ``best_purity``, ``n_pure`` (alive features with purity ≥ ``pure`` whose majority
    is the cluster), ``recovered`` (best_purity ≥ ``pure``).
    """
    per_feature = cluster_purity(top_items, item_cluster)
    per_feature["alive"] = np.asarray(alive, dtype=bool)
    item_cluster = np.asarray(item_cluster, dtype=np.int64)
    n_clusters = int(item_cluster.max()) + 1
    lengths = np.array([len(t) for t in top_items])
    share = np.zeros((len(top_items), n_clusters))
    rows = np.repeat(np.arange(len(top_items)), lengths)
    cols = item_cluster[np.concatenate([np.asarray(t, np.int64) for t in top_items])] if lengths.sum() else np.zeros(0, np.int64)
    np.add.at(share, (rows, cols), 1.0)
    share /= np.maximum(lengths, 1)[:, None]
    share[~per_feature["alive"].to_numpy()] = -1.0
    best = share.argmax(0)
    best_purity = share.max(0)
    pure_major = per_feature["alive"] & (per_feature["purity"] >= pure)
    n_pure = np.bincount(per_feature.loc[pure_major, "majority_cluster"], minlength=n_clusters)
    per_cluster = pd.DataFrame(
        {
            "cluster": np.arange(n_clusters, dtype=np.int64),
            "n_items": np.bincount(item_cluster, minlength=n_clusters),
            "best_feature": best.astype(np.int64),
            "best_purity": np.where(best_purity >= 0, best_purity, np.nan),
            "n_pure": n_pure.astype(np.int64),
            "recovered": best_purity >= pure,
        }
    )
    return per_feature, per_cluster


def recovery_summary(per_feature: pd.DataFrame, per_cluster: pd.DataFrame, pure: float = 0.8) -> dict[str, float]:
    """Headline numbers: alive features, mean purity, share pure, share labelled with their majority cluster,
    planted clusters and the share recovered by some feature."""
    alive = per_feature[per_feature["alive"]]
    return {
        "features_alive": float(len(alive)),
        "mean_purity": float(alive["purity"].mean()) if len(alive) else float("nan"),
        "share_pure": float((alive["purity"] >= pure).mean()) if len(alive) else float("nan"),
        "share_label_matches": float(alive["label_matches"].mean()) if len(alive) else float("nan"),
        "clusters": float(len(per_cluster)),
        "share_clusters_recovered": float(per_cluster["recovered"].mean()) if len(per_cluster) else float("nan"),
    }
