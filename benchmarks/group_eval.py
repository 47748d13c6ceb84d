"""Benchmark of the batched group evaluation against the per-group reference implementation.

1000 groups of size 3 on a synthetic 14 000-item dataset (ML-32M scale): every strategy of
docs/method.md §5 is timed through ``sagea.evaluation.group.evaluate_groups`` (scoring +
aggregation per strategy, plus the wall time of the whole call with the split and metrics);
the per-group baseline is ``tests/reference_group.py`` timed on ``--ref-groups`` groups per
strategy and scaled to all groups. Results go to stdout as a Markdown table (BENCHMARKS.md).

    .venv/bin/python benchmarks/group_eval.py [--device cpu] [--ref-groups 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import reference_group as ref  # noqa: E402

from sagea.evaluation.group import GroupEvalSettings, evaluate_groups  # noqa: E402
from sagea.data.splits import group_target_masks  # noqa: E402
from sagea.models.elsa import ELSA  # noqa: E402
from sagea.models.sae import SAE  # noqa: E402
from sagea.scoring import item_popularity  # noqa: E402
from sagea.recommenders.sagea import SageaRecommender  # noqa: E402
from sagea.stages.evaluate import build_baselines  # noqa: E402

FUSIONS = ("average", "square_average", "topk", "max", "min", "common_features", "at_least_2_common_features", "wcom")
BASELINES = ("ELSA", "ELSA_INT", "ADD", "MUL", "LMS", "MPL", "GFAR", "EPFuzzDA", "POPULAR")


def synthetic_rows(n_users: int, n_items: int, per_user: int, seed: int) -> sp.csr_matrix:
    """0/1 rows with Zipf-like item popularity, about ``per_user`` items per user."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    p = p[rng.permutation(n_items)] / p.sum()
    items = rng.choice(n_items, size=(n_users, per_user), p=p)
    users = np.repeat(np.arange(n_users), per_user)
    rows = sp.csr_matrix((np.ones(users.size, np.float32), (users, items.reshape(-1))), shape=(n_users, n_items))
    rows.sum_duplicates()
    rows.data[:] = 1.0
    return rows


def shared_total(results, strategies) -> float:
    """Scoring counted once per ``score_key`` plus every strategy's aggregation (seconds)."""
    scoring: dict = {}
    total = 0.0
    for s in strategies:
        pg = results[s.name].per_group
        scoring[getattr(s, "score_key", s.name)] = float(pg["Time_scoring"].sum())
        total += float(pg["Time_aggregation"].sum())
    return total + sum(scoring.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--size", type=int, default=3)
    ap.add_argument("--items", type=int, default=14000)
    ap.add_argument("--users", type=int, default=6000)
    ap.add_argument("--per-user", type=int, default=150)
    ap.add_argument("--factors", type=int, default=256)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--sae-k", type=int, default=64)
    ap.add_argument("--batch-groups", type=int, default=256)
    ap.add_argument("--ref-groups", type=int, default=3, help="groups timed per strategy with the reference")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = synthetic_rows(args.users, args.items, args.per_user, seed=0)
    rng = np.random.default_rng(1)
    groups = np.stack([rng.choice(args.users, args.size, replace=False) for _ in range(args.groups)])
    train = np.arange(args.users // 5, args.users)
    pop = item_popularity(rows, train)
    elsa = ELSA(args.items, args.factors, seed=0).to(args.device).eval()
    sae = SAE(args.factors, args.width, k=args.sae_k, seed=0).to(args.device).eval()
    emb = elsa.item_embeddings().cpu().numpy()
    settings = GroupEvalSettings(k=20, batch_groups=args.batch_groups, device=args.device)

    strategies = [SageaRecommender(elsa, sae, f, args.sae_k) for f in FUSIONS] + build_baselines(BASELINES, elsa, pop)
    evaluate_groups(strategies, rows, groups[: min(8, args.groups)], settings, pop, emb, elsa)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    results = evaluate_groups(strategies, rows, groups, settings, pop, emb, elsa)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0

    # per-group reference, float64, on the first --ref-groups groups
    A = elsa.encoder.detach().cpu().double().numpy()
    sae64 = SAE(args.factors, args.width, k=args.sae_k, seed=0).double().eval()
    dense = rows[groups[: args.ref_groups].reshape(-1)].toarray().astype(np.float64)
    members = np.arange(dense.shape[0]).reshape(args.ref_groups, args.size)
    masks = group_target_masks(groups[: args.ref_groups], args.items, 0.5, 42)
    ref_pop = list(pop)
    table = []
    for strategy in strategies:
        name = strategy.name
        t_ref = time.perf_counter()
        for g in range(args.ref_groups):
            inputs, _ = ref.group_inputs_targets(dense, members[g], masks[g])
            seen = np.any(np.stack(inputs) > 0, axis=0)
            if name in FUSIONS:
                ref.sagea_group(A, sae64, inputs, seen, name, 20, args.sae_k)
            else:
                ref.baseline_group(A, inputs, seen, name, 20, ref_pop)
        per_group_ref = (time.perf_counter() - t_ref) / args.ref_groups
        pg = results[name].per_group
        ours = float((pg["Time_scoring"] + pg["Time_aggregation"]).sum())
        agg = float(pg["Time_aggregation"].sum())
        table.append({
            "strategy": ("SAGEA-" + name) if name in FUSIONS else name,
            "batched_s": ours, "aggregation_s": agg,
            "reference_s": per_group_ref * args.groups, "speedup": per_group_ref * args.groups / ours,
        })  # fmt: skip
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"groups {args.groups} x {args.size}, items {args.items}, d {args.factors}, h {args.width}, "
          f"k_sae {args.sae_k}, device {args.device} ({device}), torch threads {torch.get_num_threads()}")  # fmt: skip
    print(f"evaluate_groups, all {len(strategies)} strategies, split + metrics included: wall {wall:.1f} s, "
          f"process CPU {cpu:.1f} s; sum of the strategies' scoring (once per shared scoring) + aggregation: "
          f"{shared_total(results, strategies):.1f} s\n")  # fmt: skip
    print(f"| strategy | batched (s, {args.groups} groups) | of which aggregation (s) | per-group reference (s, extrapolated) | speed-up |")
    print("|---|---|---|---|---|")
    for r in table:
        print(f"| {r['strategy']} | {r['batched_s']:.2f} | {r['aggregation_s']:.2f} | {r['reference_s']:.0f} | {r['speedup']:.0f}x |")
    if args.json:
        args.json.write_text(json.dumps({"wall_s": wall, "cpu_s": cpu, "rows": table, "args": vars(args) | {"json": str(args.json)}}, indent=2))


if __name__ == "__main__":
    main()
