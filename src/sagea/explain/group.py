"""Why a group got its SAGEA list: the fused code's features and their share of each item's score.

:func:`explain_group` recomputes the list through the evaluation's own code path
(:func:`~sagea.recommenders.sagea.encode_members`, :func:`~sagea.recommenders.sagea.fused_code`,
:func:`~sagea.recommenders.sagea.sagea_scores`, then ``exclude`` and ``stable_topk``), so the list
is the evaluation's list for the same member inputs, and splits every recommended item's score
into per-feature contributions plus a remainder (:mod:`sagea.explain.contributions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from sagea.explain.contributions import feature_item_scores, item_contributions
from sagea.scoring import exclude, stable_topk
from sagea.recommenders.sagea import encode_members, fused_code, sagea_scores

#: Features listed per recommended item (its largest contributions).
ITEM_TOP_FEATURES = 3
#: Columns of items.parquet that are bookkeeping, not metadata worth showing.
ITEM_SKIP_COLUMNS = ("item", "n_interactions")


@dataclass
class GroupExplanation:
    """A group's SAGEA list with the features behind it.

    ``items``: one row per recommended item (``rank`` (0-based, as recommendations.parquet), ``item, original_id``, metadata columns,
    ``score, remainder, features, contributions, feature_labels``); ``features``: the fused code's
    active features by their contribution to the list's summed scores (``feature, fused_value,
    contribution, share, label, top_items, top_titles, members, member_activations``);
    ``fused_code [h]``; ``zero_fused_code``: the fusion alone gave an all-zero code (then the
    ``zero_fallback`` rule built it).
    """

    fusion: str
    items: pd.DataFrame
    features: pd.DataFrame
    fused_code: np.ndarray
    zero_fused_code: bool
    member_codes: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain Python types; the fused code as ``{feature: value}`` of its non-zeros."""
        nz = np.flatnonzero(self.fused_code)
        return _plain(
            {
                "fusion": self.fusion,
                "zero_fused_code": bool(self.zero_fused_code),
                "fused_code": {int(f): float(self.fused_code[f]) for f in nz},
                "items": self.items.to_dict(orient="records"),
                "features": self.features.to_dict(orient="records"),
            }
        )


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_plain(v) for v in list(obj)]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _label_lookup(feature_labels: pd.DataFrame | None, features: np.ndarray) -> pd.DataFrame:
    """``label, top_items, top_titles`` of ``features`` from a features / feature_labels table."""
    out = pd.DataFrame({"feature": features.astype(np.int64)})
    if feature_labels is None or len(feature_labels) == 0:
        out["label"], out["top_items"], out["top_titles"] = "", [[] for _ in features], [[] for _ in features]
        return out
    table = feature_labels.set_index(feature_labels["feature"].astype(np.int64))
    for col, default in (("label", ""), ("top_items", []), ("top_titles", [])):
        if col in table:
            out[col] = [list(v) if isinstance(v, (list, np.ndarray)) else v for v in table[col].reindex(features).tolist()]
            out[col] = [default if (isinstance(v, float) and np.isnan(v)) else v for v in out[col]]
        else:
            out[col] = [default for _ in features]
    has_labels = "label" in table and bool((table["label"].fillna("") != "").any())
    if not has_labels:  # features.parquet without labels: name features by their top titles
        out["label"] = [", ".join(map(str, t[:3])) for t in out["top_titles"]]
    return out


@torch.no_grad()
def explain_group(
    elsa,
    sae,
    inputs: torch.Tensor,
    fusion: str,
    k_sae: int,
    topk_inference: bool = True,
    normalize_users_embeddings: bool = False,
    zero_fallback: str = "relax",
    n: int = 20,
    n_features: int = 10,
    items: pd.DataFrame | None = None,
    feature_labels: pd.DataFrame | None = None,
) -> GroupExplanation:
    """SAGEA's top-``n`` list for one group and its explanation.

    ``inputs [m, n_items]``: the members' input rows (0/1 floats; their union is excluded);
    ``fusion``, ``k_sae`` (the SAE's k, for ``topk``), ``topk_inference``,
    ``normalize_users_embeddings``, ``zero_fallback``: as in the evaluation; ``n_features``: rows of
    ``features`` (the largest contributions); ``items``: items.parquet (ids and metadata, by
    ``item``); ``feature_labels``: feature_labels.parquet or features.parquet.
    """
    if inputs.dim() != 2:
        raise ValueError(f"inputs must be [members, items], got shape {tuple(inputs.shape)}")
    x = inputs.to(dtype=torch.float32)[None]  # [1, m, I]: a chunk of one group
    members = encode_members(elsa, sae, x, topk_inference)
    code, zero = fused_code(members, fusion, k_sae, normalize_users_embeddings, zero_fallback)
    scores = sagea_scores(elsa, sae, members, code)
    seen = x.bool().any(dim=1)
    recs = stable_topk(exclude(scores, seen), n)  # [1, n]
    contrib, remainder = item_contributions(elsa, sae, members, code, recs, feature_item_scores(elsa, sae))
    contrib, remainder = contrib[0].cpu().numpy(), remainder[0].cpu().numpy()  # [n, h], [n]
    rec = recs[0].cpu().numpy()
    valid = rec >= 0
    rec, contrib, remainder = rec[valid], contrib[valid], remainder[valid]
    code_np = code[0].cpu().numpy().astype(np.float64)
    member_np = members.codes[0].cpu().numpy()

    # features: the active ones by their contribution to the list's summed scores
    total = contrib.sum(axis=0)  # [h]
    active = np.flatnonzero((code_np != 0) & np.isfinite(code_np))  # NaN code (zero_fallback 'nan'): none
    order = active[np.lexsort((active, -total[active]))]
    feature_part = total[active].sum()
    shown = order[:n_features]
    labels = _label_lookup(feature_labels, shown)
    held = member_np[:, shown] > 0  # [m, f]
    features = pd.DataFrame(
        {
            "feature": shown.astype(np.int64),
            "fused_value": code_np[shown],
            "contribution": total[shown],
            "share": total[shown] / feature_part if feature_part != 0 else np.full(len(shown), np.nan),
            "label": labels["label"].tolist(),
            "top_items": labels["top_items"].tolist(),
            "top_titles": labels["top_titles"].tolist(),
            "members": [np.flatnonzero(held[:, j]).tolist() for j in range(len(shown))],
            "member_activations": [member_np[:, f].astype(np.float64).tolist() for f in shown],
        }
    )

    # items: rank, ids and metadata, score, remainder, top features
    top = np.argsort(-contrib, axis=1, kind="stable")[:, :ITEM_TOP_FEATURES]
    named = _label_lookup(feature_labels, np.unique(top))
    label_of = dict(zip(named["feature"].tolist(), named["label"].tolist()))
    frame = pd.DataFrame({"rank": np.arange(len(rec)), "item": rec.astype(np.int64)})  # 0-based, as recommendations.parquet
    if items is not None:
        meta = items.set_index(items["item"].astype(np.int64)).drop(columns=[c for c in ITEM_SKIP_COLUMNS if c in items])
        frame = pd.concat([frame, meta.reindex(rec).reset_index(drop=True)], axis=1)
    frame["score"] = scores[0].cpu().numpy()[rec].astype(np.float64)
    frame["remainder"] = remainder
    frame["features"] = [row.tolist() for row in top]
    frame["contributions"] = [contrib[j, top[j]].tolist() for j in range(len(rec))]
    frame["feature_labels"] = [[label_of.get(int(f), "") for f in row] for row in top]
    return GroupExplanation(fusion, frame, features, code_np, bool(zero[0]), member_np)
