"""Single-user evaluation (docs/method.md §1–2), generic over a scorer.

A *scorer* maps a dense batch of user input rows ``x [B, items]`` (a torch tensor on the
evaluation device) to scores ``[B, items]``: ELSA ``x A Aᵀ − x``, EASE ``x B``, POP the
popularity vector, or ELSA with an SAE inserted between encode and decode. The protocol:

1. each evaluated user's interactions are split into inputs and ``ceil(0.2·n)`` seeded targets
   (:func:`single_user_split`, a thin wrapper of ``sagea.data.splits``);
2. scores are min-max normalised per user to [0, 1], the user's inputs excluded, top-k
   (:func:`sagea.scoring.top_k_items`);
3. NDCG@k, Recall@k (denominator ``min(k, |targets|)``), Precision@k, HitRate@k, MRR@k per
   user from ``sagea.evaluation.metrics``, averaged over users with at least one target;
   Coverage@k = share of the catalogue appearing in at least one list.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch

from sagea.data.batches import DeviceCSR
from sagea.data.splits import user_input_target_split
from sagea.evaluation import metrics as M
from sagea.runtime import progress
from sagea.scoring import ScoreFn, top_k_items

log = logging.getLogger(__name__)


def single_user_split(
    matrix: sp.csr_matrix,
    users: np.ndarray,
    target_fraction: float = 0.2,
    seed: int = 42,
    method: str = "ours",
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(inputs, targets) CSR of the rows ``users`` of ``matrix`` — the one split every model uses.

    Always call it this way (rows of one split in the order ``sagea.data.matrix.load_split``
    gives, the same ``method``) so that ELSA, the SAE stage and the baselines see identical
    targets; ``method="research"`` draws per row in that order (``user_input_target_split``).
    """
    rows = sp.csr_matrix(matrix)[np.asarray(users)]
    return user_input_target_split(rows, target_fraction=target_fraction, seed=seed, method=method)


def metric_names(k: int) -> list[str]:
    return [f"NDCG{k}", f"R{k}", f"P{k}", f"Hit{k}", f"MRR{k}"]


def evaluate_scorer(
    score_fn: ScoreFn,
    inputs: sp.csr_matrix,
    targets: sp.csr_matrix,
    k: int = 20,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
    per_user: bool = False,
    desc: str = "evaluate",
) -> dict:
    """Mean ranking metrics of ``score_fn`` on (inputs, targets) rows, batched on ``device``.

    Returns ``{"NDCG{k}", "R{k}", "P{k}", "Hit{k}", "MRR{k}", "Coverage{k}", "users"}``; users
    without targets are skipped. With ``per_user`` also ``"per_user"``: a dict of arrays (plus
    ``user``: row index into ``inputs``).
    """
    n_users, n_items = inputs.shape
    if targets.shape != inputs.shape:
        raise ValueError(f"inputs {inputs.shape} and targets {targets.shape} differ in shape")
    if k > n_items:
        raise ValueError(f"cut-off k={k} (config key evaluation.k) exceeds the number of items {n_items}")
    device = torch.device(device)
    n_targets = np.diff(sp.csr_matrix(targets).indptr)
    users = np.flatnonzero(n_targets > 0)
    names = metric_names(k)
    sums = dict.fromkeys(names, 0.0)
    rows_out: dict[str, list[np.ndarray]] = {name: [] for name in names}
    if len(users) == 0:
        log.warning("%s: no user has a target item; metrics are NaN", desc)
        return {**{n: float("nan") for n in names}, f"Coverage{k}": float("nan"), "users": 0}
    x_dev, t_dev = DeviceCSR(inputs, device), DeviceCSR(targets, device)
    covered = torch.zeros(n_items, dtype=torch.bool, device=device)
    buf_x = torch.empty(min(batch_size, len(users)), n_items, device=device)
    buf_t = torch.empty_like(buf_x)
    users_t = torch.as_tensor(users, device=device)
    with torch.inference_mode():
        for start in progress(range(0, len(users), batch_size), desc=desc, leave=False):
            rows = users_t[start : start + batch_size]
            x = x_dev.dense(rows, out=buf_x)
            t = t_dev.dense(rows, out=buf_t)
            top = top_k_items(score_fn(x), x, k)
            covered[top.reshape(-1)] = True
            hits = (t.gather(1, top) > 0).cpu().numpy()
            n_rel = t.sum(dim=1).round().long().cpu().numpy()
            values = {
                names[0]: M.ndcg(hits, n_rel),
                names[1]: M.recall(hits, n_rel),
                names[2]: M.precision(hits),
                names[3]: M.hit_rate(hits),
                names[4]: M.mrr(hits),
            }
            for name, value in values.items():
                sums[name] += float(value.sum())
                if per_user:
                    rows_out[name].append(value)
    result: dict = {name: sums[name] / len(users) for name in names}
    result[f"Coverage{k}"] = float(covered.sum().item() / n_items)
    result["users"] = int(len(users))
    if per_user:
        result["per_user"] = {"user": users, **{n: np.concatenate(v) for n, v in rows_out.items()}}
    return result
