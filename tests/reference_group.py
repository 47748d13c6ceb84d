"""A straightforward per-group implementation of docs/method.md §5 (plain loops, float64).

Used by the group-evaluation tests (agreement with the batched library) and by
``benchmarks/group_eval.py`` (the per-group baseline time). One group at a time; loops over
members, features, candidate items and ranks, written to be read against the spec, not fast.
Models (ELSA ``A``, the SAE) are used only through their encode/decode of single rows.
"""

from __future__ import annotations

import math

import numpy as np
import torch

FUSIONS = ("average", "square_average", "topk", "max", "min", "common_features", "at_least_2_common_features", "wcom")


def ranked(scores, candidates, k):
    """Candidates by descending score, ties -> lower item index; NaN counts as +inf."""

    def key(i):
        s = float(scores[i])
        return (-(math.inf if math.isnan(s) else s), i)

    return sorted(candidates, key=key)[:k]


def elsa_scores(A, x):
    """x A Aᵀ - x for one member (float64)."""
    return (x @ A) @ A.T - x


def minmax(s):
    lo, hi = min(s), max(s)
    return [(v - lo) / (hi - lo) if hi > lo else 0.0 for v in s]


# ----------------------------------------------------------------------------- SAGEA
def fuse(codes, fusion, k):
    """codes: list of m lists of h floats."""
    m, h = len(codes), len(codes[0])
    mean = [sum(codes[u][f] for u in range(m)) / m for f in range(h)]
    active = [sum(1 for u in range(m) if codes[u][f] > 0) for f in range(h)]
    if fusion == "average":
        return mean
    if fusion == "square_average":
        return [v * v for v in mean]
    if fusion == "topk":
        keep = set(sorted(range(h), key=lambda f: (-mean[f], f))[:k])
        return [mean[f] if f in keep else 0.0 for f in range(h)]
    if fusion == "max":
        return [max(codes[u][f] for u in range(m)) for f in range(h)]
    if fusion == "min":
        return [min(codes[u][f] for u in range(m)) for f in range(h)]
    if fusion == "common_features":
        return [mean[f] if active[f] == m else 0.0 for f in range(h)]
    if fusion == "at_least_2_common_features":
        return [mean[f] if active[f] >= 2 else 0.0 for f in range(h)]
    if fusion == "wcom":
        return [mean[f] * active[f] for f in range(h)]
    raise ValueError(fusion)


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def relax(codes, fusion, k):
    """The 'relax' fallback: the shared-feature fusions over the features active in most members."""
    if fusion not in ("common_features", "at_least_2_common_features", "min"):
        return fuse(codes, fusion, k)
    m, h = len(codes), len(codes[0])
    active = [sum(1 for u in range(m) if codes[u][f] > 0) for f in range(h)]
    most = max(active)
    out = []
    for f in range(h):
        if most == 0 or active[f] != most:
            out.append(0.0)
        elif fusion == "min":
            out.append(min(codes[u][f] for u in range(m) if codes[u][f] > 0))
        else:
            out.append(sum(codes[u][f] for u in range(m)) / m)
    return out


@torch.no_grad()
def sagea_group(A, sae, member_inputs, seen, fusion, k, sae_k, topk_inference=True, normalize=False, zero_fallback="relax"):
    """One group's SAGEA list, its number of common features and whether the fused code was all-zero."""
    codes, means, stds = [], [], []
    for x in member_inputs:
        e = torch.as_tensor((x @ A)[None], dtype=torch.float64)
        c, mu, sd = sae.encode(e, topk_inference=topk_inference)
        codes.append([float(v) for v in c[0]])
        means.append(float(mu[0, 0]))
        stds.append(float(sd[0, 0]))
    m, h = len(codes), len(codes[0])
    common = sum(1 for f in range(h) if all(codes[u][f] > 0 for u in range(m)))
    fused_from = [[v / norm(c) for v in c] if norm(c) > 0 else c for c in codes] if normalize else codes
    fused = fuse(fused_from, fusion, sae_k)
    target = sum(norm(c) for c in codes) / m
    zero = norm(fused) == 0
    if zero:
        if zero_fallback == "nan":
            fused = [math.nan] * h
        elif zero_fallback == "relax":
            fused = relax(fused_from, fusion, sae_k)
        else:
            fused = fuse(fused_from, "average", sae_k)
    if norm(fused) > 0 and not any(math.isnan(v) for v in fused):
        fused = [v * target / norm(fused) for v in fused]
    code = torch.as_tensor([fused], dtype=torch.float64)
    emb = sae.decode(code, torch.tensor([[sum(means) / m]], dtype=torch.float64), torch.tensor([[sum(stds) / m]], dtype=torch.float64))
    scores = emb[0].numpy() @ A.T
    candidates = [i for i in range(len(seen)) if not seen[i]]
    return ranked(scores, candidates, k), common, zero


# ----------------------------------------------------------------------------- baselines
def baseline_group(A, member_inputs, seen, strategy, k, popularity=None):
    m, n = len(member_inputs), len(seen)
    candidates = [i for i in range(n) if not seen[i]]
    if strategy == "ELSA":
        mean_e = sum(x @ A for x in member_inputs) / m
        return ranked(mean_e @ A.T, candidates, k)
    if strategy == "ELSA_INT":
        union = np.array([1.0 if seen[i] else 0.0 for i in range(n)])
        return ranked(elsa_scores(A, union), candidates, k)
    if strategy == "POPULAR":
        return ranked(popularity, candidates, k)
    raw = [list(elsa_scores(A, x)) for x in member_inputs]
    rel = [minmax(s) for s in raw]
    if strategy in ("ADD", "MUL", "LMS", "MPL"):
        agg = []
        for i in range(n):
            vals = [rel[u][i] for u in range(m)]
            if strategy == "ADD":
                agg.append(sum(vals))
            elif strategy == "MUL":
                agg.append(math.prod(vals))
            elif strategy == "LMS":
                agg.append(min(vals))
            else:
                agg.append(max(vals))
        return ranked(agg, candidates, k)
    if strategy == "GFAR":
        return gfar_group(raw, candidates, k, k)
    if strategy == "EPFuzzDA":
        return epfuzzda_group(rel, candidates, k)
    raise ValueError(strategy)


def gfar_group(raw, candidates, k, n_rel):
    m = len(raw)
    p = []
    for u in range(m):
        top = ranked(raw[u], candidates, n_rel)
        points = {i: n_rel - r for r, i in enumerate(top)}
        total = sum(points.values())
        p.append({i: v / total for i, v in points.items()})
    chosen, not_rel = [], [1.0] * m
    for _ in range(k):
        best, best_gain = None, -math.inf
        for i in candidates:
            if i in chosen:
                continue
            gain = sum(p[u].get(i, 0.0) * not_rel[u] for u in range(m))
            if gain > best_gain:
                best, best_gain = i, gain
        if best is None:
            break
        chosen.append(best)
        for u in range(m):
            not_rel[u] *= 1 - p[u].get(best, 0.0)
    return chosen


def epfuzzda_group(rel, candidates, k):
    m = len(rel)
    w = [1.0 / m] * m
    awarded = [0.0] * m
    chosen = []
    for _ in range(k):
        total = sum(awarded)
        best, best_gain = None, -math.inf
        for i in candidates:
            if i in chosen:
                continue
            s = sum(rel[v][i] for v in range(m))
            gain = sum(min(rel[u][i], max(0.0, w[u] * (total + s) - awarded[u])) for u in range(m))
            if gain > best_gain:
                best, best_gain = i, gain
        if best is None:
            break
        chosen.append(best)
        for u in range(m):
            awarded[u] += rel[u][best]
    return chosen


def popularity(rows_dense, users):
    """Number of the given users holding each item."""
    n = rows_dense.shape[1]
    return [sum(1 for u in users if rows_dense[u, i] > 0) for i in range(n)]


# ----------------------------------------------------------------------------- metrics
def ndcg(lst, relevant, k):
    dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(lst) if i in relevant)
    idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(relevant))))
    return dcg / idcg if idcg > 0 else 0.0


def metrics_group(lst, member_targets, k, seen, pop, item_rows, personal_top, m_prop=1, min_hits=1):
    """Every per-group metric of one list (names as the library's columns, K = k)."""
    m = len(member_targets)
    common = set.intersection(*member_targets)
    nd = [ndcg(lst, t, k) for t in member_targets]
    hits = [sum(1 for i in lst if i in t) for t in member_targets]
    hc = sum(1 for i in lst if i in common)

    def rec(h, t):
        return h / min(k, len(t)) if t else 0.0

    def ratio(a, b, undefined):
        return a / b if b > 0 else undefined

    out = {
        f"NDCG{k}_com": ndcg(lst, common, k),
        f"NDCG{k}_mean": sum(nd) / m,
        f"NDCG{k}_min": min(nd),
        f"NDCG{k}_max": max(nd),
        # every member at 0: min/mean and min/max count 0, Jain its minimum 1/m (docs/metrics.md)
        f"NDCG{k}_min_mean": ratio(min(nd), sum(nd) / m, 0.0),
        f"NDCG{k}_min_max": ratio(min(nd), max(nd), 0.0),
        f"NDCG{k}_jain": ratio(sum(nd) ** 2, m * sum(v * v for v in nd), 1 / m),
        f"P{k}_com": hc / k,
        f"P{k}_mean": sum(h / k for h in hits) / m,
        f"P{k}_min": min(h / k for h in hits),
        f"R{k}_com": rec(hc, common),
        f"R{k}_mean": sum(rec(h, t) for h, t in zip(hits, member_targets)) / m,
        f"R{k}_min": min(rec(h, t) for h, t in zip(hits, member_targets)),
        f"Hit{k}_com": float(hc >= min_hits),
        f"Hit{k}_mean": sum(float(h >= min_hits) for h in hits) / m,
        f"Hit{k}_min": min(float(h >= min_hits) for h in hits),
        "ZeroRecall": sum(1 for h in hits if h == 0) / m,
        "MProportionality": sum(1 for top in personal_top if len(set(top) & set(lst)) >= m_prop) / m,
        "Popularity": sum(pop[i] / max(pop) for i in lst) / len(lst) if lst else math.nan,
        "GT_group": float(len(common)),
        "GT_user": float(sum(len(t) for t in member_targets)),
        "GT_user_mean": sum(len(t) for t in member_targets) / m,
        "Candidates": float(sum(1 for s in seen if not s)),
    }
    sims = []
    for a in range(len(lst)):
        for b in range(a + 1, len(lst)):
            va, vb = item_rows[lst[a]], item_rows[lst[b]]
            sims.append(float(va @ vb) / (norm(va) * norm(vb)))
    out["RecommendationsSimilarity"] = sum(sims) / len(sims) if sims else math.nan
    return out


def group_inputs_targets(rows_dense, members, mask):
    """Member inputs (row minus mask) and targets (row within mask) as numpy / sets."""
    inputs = [np.where(mask, 0.0, rows_dense[u]) for u in members]
    targets = [set(np.flatnonzero((rows_dense[u] > 0) & mask).tolist()) for u in members]
    return inputs, targets


def shared_mask(n_items, ratio, seed):
    """The research code's one mask for every group (defect 3): its global-RNG calls, as written there."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        return np.random.random(n_items) < ratio
    finally:
        np.random.set_state(state)
