"""Group sampling speed: vectorised sampler vs a one-candidate-at-a-time loop of the same rules.

1000 groups of each kind from a 20 000-user pool of 256-factor clustered embeddings (the same
thresholds for both). The straightforward version is the research loop (seed notebook 001):
one random candidate per iteration, the mean of its cosine similarities to the members,
restart after ``max_draws`` draws. Results go to BENCHMARKS.md (## Group sampling).

    .venv/bin/python benchmarks/groups_sampling.py [--users 20000] [--dim 256] [--groups 1000]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import scipy.sparse as sp

from sagea.groups.filters import count_common_targets
from sagea.groups.grow import grow_groups, kind_sizes
from sagea.groups.similarity import estimate_thresholds, normalize_rows

KINDS = [
    ("similar", [3]),
    ("divergent", [3]),
    ("random", [3]),
    ("opposing", [2, 1]),
    ("similar", [5]),
    ("opposing", [3, 2]),
]


def clustered_embeddings(n: int, dim: int, clusters: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    labels = rng.integers(0, clusters, n)
    return (centres[labels] * 0.6 + rng.normal(size=(n, dim))).astype(np.float32)


def naive_groups(
    emb: np.ndarray,
    kind: str,
    sizes: tuple[int, int],
    n_groups: int,
    td: float,
    ts: float,
    max_draws: int,
    seed: int,
) -> list[list[int]]:
    """The research loop: one candidate at a time, cosine similarity computed per pair."""
    rng = np.random.default_rng(seed)
    pool = len(emb)

    def sim(u: int, v: int) -> float:
        a, b = emb[u], emb[v]
        return (float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)) + 1) / 2

    out = []
    while len(out) < n_groups:
        subs: tuple[list[int], list[int]] = ([int(rng.integers(pool))], [])
        index = 1
        for _ in range(max_draws):
            g = 0
            if kind == "opposing":
                g = index % 2
                if len(subs[g]) == sizes[g]:
                    index += 1
                    g = index % 2
            u = int(rng.integers(pool))
            index += 1
            if u in subs[0] or u in subs[1]:
                continue
            own, other = subs[g], subs[1 - g]
            if kind == "random":
                ok = True
            elif kind == "divergent":
                ok = np.mean([sim(u, m) for m in own]) <= ts
            else:
                ok = not own or np.mean([sim(u, m) for m in own]) >= td
                if ok and kind == "opposing" and other:
                    ok = np.mean([sim(u, m) for m in other]) <= ts
            if ok:
                subs[g].append(u)
            if len(subs[0]) == sizes[0] and len(subs[1]) == sizes[1]:
                out.append(subs[0] + subs[1])
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    emb = clustered_embeddings(args.users, args.dim)
    t0 = time.perf_counter()
    normed = normalize_rows(emb)
    th = estimate_thresholds(normed, 100_000, 0.75, 0.25, seed=42)
    t_thr = time.perf_counter() - t0
    print(
        f"machine: {platform.processor() or platform.machine()}, {platform.system()}, numpy {np.__version__}"
    )
    print(
        f"pool {args.users} users x {args.dim} factors; Td={th.similar:.4f} Ts={th.divergent:.4f} "
        f"(thresholds from 100000 pairs: {t_thr * 1000:.0f} ms)"
    )
    print(
        "| group set | vectorised (ms, best of %d) | one at a time (ms) | speed-up | draws |" % args.repeats
    )
    print("|---|---|---|---|---|")
    tot_v = tot_n = 0.0
    for kind, size in KINDS:
        sizes = kind_sizes(kind, size)
        best = float("inf")
        for r in range(args.repeats):
            t0 = time.perf_counter()
            _, _, stats = grow_groups(
                normed, kind, sizes, args.groups, th.similar, th.divergent, np.random.default_rng(r)
            )
            best = min(best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        naive_groups(emb, kind, sizes, args.groups, th.similar, th.divergent, 1000, seed=0)
        naive = time.perf_counter() - t0
        tot_v += best
        tot_n += naive
        name = f"{kind}_{'-'.join(map(str, size))}"
        print(f"| {name} | {best * 1000:.1f} | {naive * 1000:.0f} | {naive / best:.0f}x | {stats.draws} |")
    print(f"| **total** | {tot_v * 1000:.1f} | {tot_n * 1000:.0f} | {tot_n / tot_v:.0f}x | |")
    # the common-held-out-items filter (shared with the evaluation) on an ML-32M-sized item set
    rng = np.random.default_rng(0)
    n_items, per_user = 14_069, 150
    x = sp.csr_matrix(
        (
            np.ones(args.users * per_user, dtype=np.float32),
            (np.repeat(np.arange(args.users), per_user), rng.integers(0, n_items, args.users * per_user)),
        ),
        shape=(args.users, n_items),
    )
    groups = rng.integers(0, args.users, size=(1250, 3))
    t0 = time.perf_counter()
    count_common_targets(x, groups, 0.5, 42)
    print(
        f"common held-out items of 1250 groups of 3 over {n_items} items: "
        f"{(time.perf_counter() - t0) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
