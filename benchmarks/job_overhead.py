"""Where a small job's time goes: interpreter start-up, library imports, MLflow logging, and the
jobs of a finished run as Snakemake measured them.

Measures, on this machine:
1. `python -c pass` and `python -c "import <module>"` for the modules each rule script imports
   (fresh interpreter each time, median of --repeats);
2. `sagea.tracking.log_run` of one evaluation-sized run (40 params, 60 metrics, 3 small artifacts)
   into a fresh sqlite store (first run: creates the schema) and into the same store again;
3. with --benchmarks DIR (e.g. logs/benchmarks after `make run`): wall seconds per rule from
   Snakemake's benchmark files, so the total can be split into overhead and compute.

    SAGEA_PROGRESS=0 .venv/bin/python benchmarks/job_overhead.py --benchmarks logs/benchmarks
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

#: What the rule scripts import before they do anything (see workflow/scripts/).
MODULES = {
    "runtime (every script)": "sagea.runtime",
    "evaluate_sagea / evaluate_baselines": "sagea.stages.evaluate",
    "train_elsa": "sagea.stages.elsa",
    "train_sae / extract_sae": "sagea.stages.sae",
    "sample_groups": "sagea.stages.groups",
    "report tables/figures": "sagea.stages.report",
    "mlflow (logging)": "mlflow",
}


def timed(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def mlflow_logging(repeats: int) -> tuple[float, float]:
    from sagea.tracking import log_run

    params = {f"p{i}": i for i in range(40)}
    metrics = {f"m{i}/mean": float(i) for i in range(60)}
    first, again = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            files = []
            for name in ("per_group.parquet", "recommendations.parquet", "summary.json"):
                path = Path(tmp) / name
                path.write_bytes(b"x" * 20_000)
                files.append(path)
            uri = f"sqlite:///{tmp}/mlflow.db"
            for i, bucket in enumerate((first, again, again)):
                tic = time.perf_counter()
                log_run(uri, "GR_bench", f"run{i}", params, metrics, artifacts=files, key=f"bench/{i}")
                bucket.append(time.perf_counter() - tic)
    return statistics.median(first), statistics.median(again)


def rule_seconds(folder: Path) -> dict[str, list[float]]:
    """Rule -> wall seconds of its jobs, from Snakemake's benchmark files under ``folder``."""
    out: dict[str, list[float]] = defaultdict(list)
    for tsv in folder.rglob("*.tsv"):
        lines = tsv.read_text().splitlines()
        if len(lines) < 2:
            continue
        seconds = float(lines[1].split("\t")[0])
        parts = tsv.relative_to(folder).parts
        rule = _rule_of(parts)
        out[rule].append(seconds)
    return out


def _rule_of(parts: tuple[str, ...]) -> str:
    """Benchmark paths (logs/benchmarks/...) back to rule names."""
    stem = Path(parts[-1]).stem
    if "eval" in parts:
        return "evaluate_baselines" if stem == "baselines" else "evaluate_sagea"
    if "elsa" in parts:
        return {"train": "train_elsa", "embeddings": "extract_elsa_embeddings"}.get(stem, stem)
    if "sae" in parts:
        return {"train": "train_sae", "extract": "extract_sae"}.get(stem, stem)
    if "groups" in parts:
        return "sample_groups"
    if "report" in parts:
        return "report_" + stem.split("-")[0]
    if "baselines" in parts:
        return "single_user_baselines"
    if "compare" in parts:
        return "compare_" + stem
    return stem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--benchmarks", type=Path, help="logs/benchmarks of a finished run")
    args = parser.parse_args()

    base = timed([sys.executable, "-c", "pass"], args.repeats)
    print("| what | seconds |\n|---|---|")
    print(f"| python start-up (`-c pass`) | {base:.2f} |")
    for label, module in MODULES.items():
        t = timed([sys.executable, "-c", f"import {module}"], args.repeats)
        print(f"| import {module} ({label}) | {t:.2f} |")
    first, again = mlflow_logging(args.repeats)
    print(f"| log_run, fresh sqlite store (schema created) | {first:.2f} |")
    print(f"| log_run, existing store | {again:.2f} |")
    if args.benchmarks:
        jobs = rule_seconds(args.benchmarks)
        total = sum(sum(v) for v in jobs.values())
        print(f"\n{sum(len(v) for v in jobs.values())} jobs, {total:.0f} job-seconds in all\n")
        print("| rule | jobs | median s | total s |\n|---|---|---|---|")
        for rule, secs in sorted(jobs.items(), key=lambda kv: -sum(kv[1])):
            print(f"| {rule} | {len(secs)} | {statistics.median(secs):.1f} | {sum(secs):.0f} |")


if __name__ == "__main__":
    main()
