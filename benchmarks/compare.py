"""Speed and memory of the compare stage's measures at paper-like sizes (synthetic inputs).

    .venv/bin/python benchmarks/compare.py [--items 14069] [--factors 256] [--width 4096] [--users 20000]

Dense: two ELSA-like item spaces ``[items, factors]`` (ML-32M has 14 069 items, d = 256).
Dictionaries: two SAE decoders ``[width, factors]`` with TopK codes of ``users`` users.
Prints one line per measure (seconds, peak RSS); results go to BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import numpy as np
import pandas as pd

from sagea.analysis import compare as C


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(name: str, fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"{name:<42s} {time.perf_counter() - start:8.2f} s   peak RSS {rss_mb():8.0f} MB", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=14069)
    ap.add_argument("--factors", type=int, default=256)
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--k", type=int, default=64, help="SAE TopK")
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--knn-k", type=int, default=10)
    ap.add_argument("--chunk-size", type=int, default=2048)
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, numpy {np.__version__}; {vars(args)}")

    rng = np.random.default_rng(0)
    a = rng.standard_normal((args.items, args.factors)).astype(np.float32)
    b = (a + 0.5 * rng.standard_normal(a.shape)).astype(np.float32)
    na = timed(f"kNN@{args.knn_k} one space ({args.items} x {args.factors})", C.knn_indices, a, args.knn_k, None, args.chunk_size)
    nb = C.knn_indices(b, args.knn_k, None, args.chunk_size)
    timed("Jaccard of two neighbour lists", C.neighbour_jaccard, na, nb)
    timed("linear CKA", C.linear_cka, a, b)
    timed("Procrustes residual", C.procrustes_residual, a, b)
    timed("held-out CCA", C.cca_heldout, a, b, 0)

    da = C.random_dictionary(args.width, args.factors, 1)
    db = C.unit_rows(da + 0.3 * rng.standard_normal(da.shape))
    def codes(seed: int) -> pd.DataFrame:
        r = np.random.default_rng(seed)
        feats = np.stack([r.choice(args.width, args.k, replace=False) for _ in range(args.users)])
        return pd.DataFrame({"user": np.repeat(np.arange(args.users), args.k), "feature": feats.ravel(),
                             "value": r.random(args.users * args.k).astype(np.float32)})
    users = np.arange(args.users)
    ca = C.codes_matrix(codes(2), users, args.width)
    cb = C.codes_matrix(codes(3), users, args.width)
    cos = timed(f"decoder cosine matrix ({args.width}^2)", C.cosine_matrix, da, db)
    timed("Hungarian matching (decoder)", C.hungarian_match, cos, 0.7)
    corr = timed(f"activation correlation ({args.users} users)", C.activation_correlation, ca, cb)
    timed("Hungarian matching (activations)", C.hungarian_match, corr, 0.7)
    timed("compare_dictionaries (all measures)", C.compare_dictionaries, da, db, ca, cb, 0.7)


if __name__ == "__main__":
    main()
