"""Group sampling at ML-32M size: wall time and peak memory of 1000 groups per kind.

Synthetic inputs of the size of MovieLens 32M: ``--users`` users (90 000) with 256-factor
clustered embeddings and a sparse user x item matrix of ``--interactions`` (16 M) over ``--items``
(14 000) items, where each user takes half of its items from a global Zipf popularity and half
from its taste cluster's items (so similar users share items, as on real data). The pool is
``--pool`` users (the sampler's default cap, 20 000), the filters the paper's (more than 5
common held-out items, target ratio 0.5). Each group set is timed separately; memory is the
process's peak resident size (``resource.getrusage``, inputs included) and the peak of the
allocations made while sampling (``tracemalloc``, numpy arrays included), above the inputs.
Results go to BENCHMARKS.md (## Scale run, ### Scale run — group sampling).

    SAGEA_PROGRESS=0 PYTHONPATH=src .venv/bin/python benchmarks/groups_scale.py [--max-overlap 0.34] [--cache DIR]
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from sagea.groups.sampling import sample_group_set, sample_pool
from sagea.groups.similarity import estimate_thresholds, normalize_rows

SETS = ["similar_3", "divergent_3", "random_3", "opposing_2-1"]


def synthetic_inputs(
    n_users: int, n_items: int, n_interactions: int, dim: int, clusters: int = 20, seed: int = 0
) -> tuple[np.ndarray, sp.csr_matrix]:
    """Clustered embeddings ``[users, dim]`` float32 and a 0/1 CSR ``[users, items]`` with about
    ``n_interactions`` entries (log-normal activity; half popular, half cluster items)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, clusters, n_users)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    emb = centres[labels] * 0.6
    emb += rng.standard_normal(size=(n_users, dim), dtype=np.float32)
    activity = rng.lognormal(0.0, 0.8, n_users)
    block = n_items // clusters
    cluster_items = rng.permutation(n_items)[: clusters * block].reshape(clusters, block)
    popular_items = rng.permutation(n_items)
    inflate = 1.1  # draws repeating an item of the same user are dropped: draw more, then adjust
    for _ in range(4):
        counts = np.maximum(5, np.round(activity / activity.sum() * n_interactions * inflate)).astype(np.int64)
        user = np.repeat(np.arange(n_users, dtype=np.int64), counts)
        popular = popular_items[np.searchsorted(_zipf_cdf(n_items, 1.0), rng.random(len(user)))]
        own = cluster_items[labels[user], np.searchsorted(_zipf_cdf(block, 0.8), rng.random(len(user)))]
        keys = np.unique(user * n_items + np.where(rng.random(len(user)) < 0.5, popular, own))
        del user, popular, own
        if abs(len(keys) / n_interactions - 1) < 0.05:
            break
        inflate *= n_interactions / len(keys)
    rows = sp.csr_matrix(
        (
            np.ones(len(keys), dtype=np.float32),
            (keys % n_items).astype(np.int32),
            np.r_[0, np.cumsum(np.bincount(keys // n_items, minlength=n_users))],
        ),
        shape=(n_users, n_items),
    )
    return emb, rows


def _zipf_cdf(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    return cdf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=90_000)
    parser.add_argument("--items", type=int, default=14_000)
    parser.add_argument("--interactions", type=int, default=16_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--pool", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--common", type=int, default=5, help="groups.common_interactions")
    parser.add_argument("--max-overlap", type=float, default=None)
    parser.add_argument("--sets", nargs="+", default=SETS)
    parser.add_argument("--cache", help="folder to keep the generated inputs in (reused when present)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    cache = Path(args.cache) if args.cache else None
    tag = f"{args.users}-{args.items}-{args.interactions}-{args.dim}"
    if cache is not None and (cache / f"rows-{tag}.npz").exists():
        emb, rows = np.load(cache / f"emb-{tag}.npy"), sp.load_npz(cache / f"rows-{tag}.npz").tocsr()
    else:
        emb, rows = synthetic_inputs(args.users, args.items, args.interactions, args.dim)
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            np.save(cache / f"emb-{tag}.npy", emb)
            sp.save_npz(cache / f"rows-{tag}.npz", rows, compressed=False)
    t_data = time.perf_counter() - t0
    rss_inputs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    machine = f"{platform.processor() or platform.machine()}, {platform.system()}, numpy {np.__version__}"
    print(f"machine: {machine}", flush=True)
    print(
        f"inputs: {emb.shape[0]} users x {emb.shape[1]} factors, {rows.shape[1]} items, {rows.nnz} interactions "
        f"({(emb.nbytes + rows.data.nbytes + rows.indices.nbytes + rows.indptr.nbytes) / 2**20:.0f} MiB) "
        f"built or loaded in {t_data:.1f} s; peak RSS so far {rss_inputs:.2f} GiB"
    )
    tracemalloc.start()
    t0 = time.perf_counter()
    pool = sample_pool(np.arange(args.users), args.pool, seed=42)
    normed = normalize_rows(emb[pool])
    th = estimate_thresholds(normed, 100_000, 0.75, 0.25, seed=42)
    t_thr = time.perf_counter() - t0
    print(f"pool {len(pool)} users; Td={th.similar:.4f} Ts={th.divergent:.4f}; pool + thresholds {t_thr:.2f} s")
    settings = dict(
        final_group_count=args.groups,
        common_interactions=args.common,
        max_overlap=args.max_overlap,
        seed=42,
        max_seconds=None,
    )
    print(f"settings: {settings}")
    print("| group set | wall (s) | rounds | generated | distinct | passed filter | kept | tracemalloc peak (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    total = t_thr
    for name in args.sets:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        gs = sample_group_set(name, normed, pool, rows, th, **settings)
        wall = time.perf_counter() - t0
        total += wall
        peak = (tracemalloc.get_traced_memory()[1] - base) / 2**20
        s = gs.summary
        print(
            f"| {name} | {wall:.2f} | {s['rounds']} | {s['generated']} | {s['distinct']} | "
            f"{s['passed_common_targets']} | {s['kept']} | {peak:.0f} |"
        )
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"total sampling wall {total:.1f} s; process peak RSS {rss:.2f} GiB (inputs alone: {rss_inputs:.2f} GiB)")


if __name__ == "__main__":
    main()
