"""Benchmark `prepare` on a 32-million-row MovieLens-style ratings.csv (ML-32M scale).

Generates ``ratings.csv`` once into a scratch folder (not the repository): ~200k users with
log-normal activity, ~87k movies with Zipf popularity, ratings 0.5-5.0 in half steps, timestamps.
Then runs :func:`sagea.data.prepare.prepare_dataset` in a child process (MovieLens defaults:
threshold 4.0, 50 / 20 minimum interactions) and reports wall time and peak RSS of that child.

    .venv/bin/python benchmarks/prepare_ml32m.py --scratch /tmp/sagea-bench-ml32m --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def generate(
    path: Path, n_rows: int, n_users: int, n_movies: int, seed: int = 0, chunk: int = 4_000_000
) -> None:
    """Write a ratings.csv of ``n_rows`` rows (chunked, pyarrow's CSV writer)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.2, n_users)
    activity /= activity.sum()
    popularity = 1.0 / np.arange(1, n_movies + 1) ** 0.9
    popularity /= popularity.sum()
    movie_ids = rng.permutation(n_movies) + 1
    ratings = np.arange(1, 11) / 2.0
    rating_p = np.array([1, 3, 2, 7, 5, 20, 15, 25, 8, 14], dtype=float)
    rating_p /= rating_p.sum()
    tmp = path.with_suffix(".csv.tmp")
    with pacsv.CSVWriter(
        tmp,
        pa.schema(
            [
                ("userId", pa.int32()),
                ("movieId", pa.int32()),
                ("rating", pa.float32()),
                ("timestamp", pa.int64()),
            ]
        ),
        write_options=pacsv.WriteOptions(quoting_style="none"),
    ) as writer:
        for start in range(0, n_rows, chunk):
            n = min(chunk, n_rows - start)
            users = np.sort(rng.choice(n_users, n, p=activity)).astype(np.int32) + 1
            table = pa.table(
                {
                    "userId": users,
                    "movieId": movie_ids[rng.choice(n_movies, n, p=popularity)].astype(np.int32),
                    "rating": rng.choice(ratings, n, p=rating_p).astype(np.float32),
                    "timestamp": rng.integers(789_652_009, 1_697_164_147, n),
                }
            )
            writer.write_table(table)
            print(f"generated {start + n:,} / {n_rows:,} rows", file=sys.stderr, flush=True)
    tmp.replace(path)


CHILD = """
import json, sys, time
from sagea.data.prepare import prepare_dataset
t = time.perf_counter()
card = prepare_dataset("ml-32m-bench", {"source": "movielens", "release": "ml-32m", "threshold": None,
                       "filter": {}}, sys.argv[1], sys.argv[2])
print(json.dumps({"seconds_in_process": time.perf_counter() - t, "counts": card["counts"],
                  "raw": card["raw"], "dropped": card["dropped"]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/sagea-bench-ml32m"))
    parser.add_argument("--rows", type=int, default=32_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--movies", type=int, default=87_000)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()

    raw = args.scratch / "ml-32m"
    ratings = raw / "ratings.csv"
    raw.mkdir(parents=True, exist_ok=True)
    if not ratings.exists():
        t = time.perf_counter()
        generate(ratings, args.rows, args.users, args.movies)
        print(f"generation: {time.perf_counter() - t:.1f}s", file=sys.stderr)
    out = args.scratch / "data"
    t = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", CHILD, str(raw), str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if child.returncode:
        sys.exit(child.stderr)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    result = {
        "machine": f"{platform.node()} {platform.machine()}, {__import__('os').cpu_count()} CPUs",
        "rows": args.rows,
        "file_bytes": ratings.stat().st_size,
        "wall_seconds": round(wall, 1),
        "peak_rss_gb": round(peak_kb / 1024**2, 2),
        **json.loads(child.stdout.strip().splitlines()[-1]),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
