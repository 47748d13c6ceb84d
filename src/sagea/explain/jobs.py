"""The explanation rules' jobs: read the upstream files, call :mod:`sagea.explain`, write atomically.

- :func:`label_features_job`: ``feature_labels.parquet`` of one SAE (rule ``label_features``);
- :func:`explain_job`: deletion curves, shared features, planted-cluster recovery and example
  cards of one SAE on a pool's group sets (rule ``explain``);
- :func:`explain_report_job`: the report's tables and card page for one dataset (rule
  ``explain_report``).

Member inputs come from the evaluation's group split (same masks, same seed), so the lists
explained are the evaluation's lists.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sagea.explain.cards import cards_page, clusters_table, deletion_table, item_names, shared_table
from sagea.explain.labels import feature_labels_table, find_tags_file
from sagea.plan_explain import EXPLAIN_TABLES
from sagea.io import read_json, read_parquet, write_json, write_parquet, write_text
from sagea.reports.writers import write_table

log = logging.getLogger(__name__)

#: Held items shown per member on a card.
MEMBER_TOP_ITEMS = 5


def label_features_job(
    features_path: str | os.PathLike,
    items_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    raw: str | os.PathLike | None = None,
    column: str | None = None,
    n_labels: int = 3,
    min_count: int = 2,
    metadata_file: str | os.PathLike | None = None,
    id_col: str = "item",
) -> None:
    """Label every feature of ``features.parquet`` (tags from ``tags.csv`` under ``raw`` where present;
    ``metadata_file``: an item metadata file whose ``column`` labels instead, keyed by ``id_col``)."""
    features = read_parquet(features_path)
    items = read_parquet(items_path)
    tags = None if metadata_file else find_tags_file(raw)
    table = feature_labels_table(features, items, column, tags, n_labels, min_count, metadata_file, id_col)
    write_parquet(table, out_path)
    log.info("labelled %d features from %s (%d alive)", len(table), table["label_source"].iloc[0] if len(table) else "-",
             int(table["alive"].sum()))  # fmt: skip


def _member_tops(inputs: np.ndarray, personal: np.ndarray, titles: np.ndarray, ids: np.ndarray, users: np.ndarray) -> list[dict]:
    """Each member's held items ranked by their own ELSA score (most typical of their taste first)."""
    out = []
    for u in range(inputs.shape[0]):
        held = np.flatnonzero(inputs[u])
        top = held[np.argsort(-personal[u, held], kind="stable")[:MEMBER_TOP_ITEMS]]
        out.append({"user": int(users[u]), "original_id": str(ids[u]), "top_items": [str(titles[i]) for i in top]})
    return out


def explain_job(
    data_dir: str | os.PathLike,
    groups_paths: Mapping[str, str | os.PathLike],
    elsa_path: str | os.PathLike,
    sae_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    out: Mapping[str, str | os.PathLike],
    *,
    fusion: str = "average",
    topk_inference: bool = True,
    normalize_users_embeddings: bool = False,
    zero_fallback: str = "relax",
    k: int = 20,
    target_ratio: float = 0.5,
    split_seed: int = 42,
    shared_mask: bool = False,
    batch_groups: int = 256,
    ms: Sequence[int] = (1, 2, 4, 8),
    n_random: int = 10,
    seed: int = 42,
    n_examples: int = 2,
    n_features: int = 5,
    pure: float = 0.8,
    device: str = "auto",
    threads: int | None = None,
) -> None:
    """Deletion curves, shared features, cluster recovery and example cards on every group set.

    ``groups_paths``: group set name -> groups parquet; ``out``: paths ``deletion``, ``shared``,
    ``clusters``, ``recovery``, ``examples``.
    """
    import torch  # here, so that label_features and explain_report start without torch

    from sagea.data.matrix import load_interactions
    from sagea.data.splits import group_split, group_target_masks
    from sagea.explain.group import explain_group
    from sagea.explain.quality import cluster_recovery, deletion_curve, recovery_summary
    from sagea.groups.io import load_groups
    from sagea.models.elsa import ELSA
    from sagea.models.sae import SAE
    from sagea.plan import parse_group_set
    from sagea.scoring import member_elsa_scores
    from sagea.runtime import select_device, set_threads

    set_threads(threads)
    dev = select_device(device)
    rows = load_interactions(data_dir)
    items = read_parquet(f"{data_dir}/items.parquet").sort_values("item").reset_index(drop=True)
    users = read_parquet(f"{data_dir}/users.parquet").sort_values("user").reset_index(drop=True)
    labels = read_parquet(labels_path)
    elsa, sae = ELSA.load(elsa_path, dev), SAE.load(sae_path, dev)
    k_sae = int(sae.k)
    width = int(sae.hparams["width"])
    titles = item_names(items)
    user_ids = users["original_id"].astype(str).to_numpy()
    label_of = labels.set_index("feature")["label"]
    deletion_rows, shared_rows, examples = [], [], []
    for gi, (group_set, path) in enumerate(groups_paths.items()):
        kind = parse_group_set(group_set)[0]
        groups = load_groups(path)
        held = np.zeros(width)
        share_sum = np.zeros(width)
        top_parts, rnd_parts, active_parts = [], [], []
        for start in range(0, len(groups), batch_groups):
            chunk = groups[start : start + batch_groups]
            masks = group_target_masks(chunk, rows.shape[1], target_ratio, split_seed, shared_mask)
            inputs_np, _ = group_split(rows, chunk, masks)
            inputs = torch.from_numpy(inputs_np).to(device=dev, dtype=torch.float32)
            with torch.no_grad():
                curve = deletion_curve(
                    elsa, sae, inputs, fusion, k_sae, ms, k, n_random, seed + 1000 * gi + start,
                    topk_inference, normalize_users_embeddings, zero_fallback, details=True,
                )  # fmt: skip
            top_parts.append(curve["top"])
            rnd_parts.append(curve["random"])
            active_parts.append(curve["n_active"])
            by_all = curve["held_by_all"]  # [B, h]
            contrib = curve["contribution"]
            total = contrib.sum(1, keepdims=True)
            share = np.divide(contrib, total, out=np.zeros_like(contrib), where=total != 0)
            held += by_all.sum(0)
            share_sum += np.where(by_all, share, 0.0).sum(0)
        top, rnd = np.concatenate(top_parts), np.concatenate(rnd_parts)
        for j, m in enumerate(ms):
            deletion_rows.append({
                "group_set": group_set, "kind": kind, "m": int(m), "top_overlap": float(np.nanmean(top[:, j])),
                "random_overlap": float(np.nanmean(rnd[:, j])), "n_groups": int(np.isfinite(top[:, j]).sum()),
                "mean_active": float(np.concatenate(active_parts).mean()),
            })  # fmt: skip
        feature = np.arange(width)
        shared_rows.append(pd.DataFrame({
            "group_set": group_set, "kind": kind, "feature": feature,
            "label": label_of.reindex(feature).fillna("").to_numpy(),
            "groups_sharing": held / max(len(groups), 1),
            "mean_share": np.divide(share_sum, held, out=np.full(width, np.nan), where=held > 0),
        }))  # fmt: skip
        # example cards: the first groups of the set (sets are a seeded permutation of the kept groups)
        chunk = groups[:n_examples]
        if len(chunk):
            masks = group_target_masks(chunk, rows.shape[1], target_ratio, split_seed, shared_mask)
            inputs_np, _ = group_split(rows, chunk, masks)
            with torch.no_grad():
                personal = member_elsa_scores(elsa, torch.from_numpy(inputs_np).to(dev, torch.float32)).cpu().numpy()
            for g in range(len(chunk)):
                ex = explain_group(
                    elsa, sae, torch.from_numpy(inputs_np[g]).to(dev), fusion, k_sae, topk_inference,
                    normalize_users_embeddings, zero_fallback, k, n_features, items, labels,
                )  # fmt: skip
                examples.append({
                    "group_set": group_set, "kind": kind, "group": g,
                    "members": _member_tops(inputs_np[g], personal[g], titles, user_ids[chunk[g]], chunk[g]),
                    "explanation": ex.to_dict(),
                })  # fmt: skip
    write_parquet(pd.DataFrame(deletion_rows), out["deletion"])
    write_parquet(pd.concat(shared_rows, ignore_index=True), out["shared"])
    if "cluster" in items:
        per_feature, per_cluster = cluster_recovery(
            labels["top_items"].tolist(), items["cluster"].to_numpy(), labels["alive"].to_numpy(), pure
        )
        summary = {**recovery_summary(per_feature, per_cluster, pure), "pure": pure}
    else:
        per_cluster = pd.DataFrame({c: pd.Series(dtype=t) for c, t in (("cluster", "int64"), ("n_items", "int64"),
                                    ("best_feature", "int64"), ("best_purity", "float64"), ("n_pure", "int64"),
                                    ("recovered", "bool"))})  # fmt: skip
        summary = {}
    write_parquet(per_cluster, out["clusters"])
    write_json(summary, out["recovery"])
    write_json({"fusion": fusion, "topk_inference": topk_inference, "cards": examples}, out["examples"])
    log.info("deletion curves: %s", pd.DataFrame(deletion_rows).to_string(index=False))


def explain_report_job(
    inputs: Mapping[str, str | os.PathLike],
    outputs: Mapping[str, Any],
    *,
    dataset: str,
    sae_run: str,
    top_shared: int = 10,
) -> None:
    """The dataset's report items: deletion, clusters and shared-feature tables, and the card page.

    ``inputs``: ``deletion, shared, clusters, recovery, examples, labels``; ``outputs``: per table
    stem (``deletion``, ``clusters``, ``shared``) a dict ``csv, tex, md, html``, and ``cards``.
    """
    labels = read_parquet(inputs["labels"])
    tables = {
        "deletion": deletion_table(read_parquet(inputs["deletion"]), dataset),
        "clusters": clusters_table(read_parquet(inputs["clusters"]), read_json(inputs["recovery"]), labels, dataset),
        "shared": shared_table(read_parquet(inputs["shared"]), dataset, top_shared),
    }
    for key, table in tables.items():
        write_table(table, **outputs[key])
    examples = read_json(inputs["examples"])
    write_text(cards_page(examples["cards"], dataset, examples["fusion"], sae_run), outputs["cards"])
