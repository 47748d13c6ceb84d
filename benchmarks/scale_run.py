"""The whole chain at ML-32M size through the workflow, with every job's wall time and peak memory.

Runs Snakemake the way users do (`python -m snakemake --cores N --configfile config/scale.yaml`,
from the repository root, outputs in results/ and logs/), then reads the job's benchmark files
that the rules write (`logs/benchmarks/...`: Snakemake's wall seconds `s`, `max_rss` in MB and
`cpu_time` per job) and prints one Markdown table row per job plus a summary per rule, with the
machine, the command and the load average seen while the workflow ran (sampled every
--load-every seconds: the machine may be shared). Exit status 1 when a job's peak RSS exceeds
--max-rss-gb (8) or the workflow failed.

    nice -n 10 .venv/bin/python benchmarks/scale_run.py > scale.md 2> scale.log
    .venv/bin/python benchmarks/scale_run.py --collect-only   # tables of a finished run

The config (config/scale.yaml): synthetic data of 90 000 users x 14 000 items x 16 M
interactions, ELSA d = 256, one TopK SAE of width 2048 / k 64, bounded epochs, 1000 groups per
kind in two pools, every fusion and baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path("logs/benchmarks")


def rule_of(parts: tuple[str, ...]) -> str:
    """A benchmark file's path (relative to logs/benchmarks, as the rules name them) -> its rule."""
    stem = Path(parts[-1]).stem
    if "eval" in parts:
        return "evaluate_baselines" if stem == "baselines" else "evaluate_sagea"
    if "elsa" in parts:
        return {"train": "train_elsa", "embeddings": "extract_elsa_embeddings"}.get(stem, stem)
    if "sae" in parts:
        return {"train": "train_sae", "extract": "extract_sae"}.get(stem, stem)
    if "groups" in parts:
        return "sample_groups"
    if "report" in parts:  # table_overall-<dataset>, figure_bars-<dataset>, collect, front
        return "report_" + stem.split("-")[0]
    if "baselines" in parts:
        return "single_user_baselines"
    if "compare" in parts:
        return "compare_" + stem
    return stem


def read_benchmarks(roots: list[Path], since: float | None) -> list[dict]:
    """One record per benchmark file under ``roots`` (modified after ``since``), oldest first."""
    jobs = []
    for root in roots:
        for tsv in root.rglob("*.tsv"):
            if since is not None and tsv.stat().st_mtime < since:
                continue
            lines = tsv.read_text().splitlines()
            if len(lines) < 2:
                continue
            row = dict(zip(lines[0].split("\t"), lines[-1].split("\t")))
            parts = tsv.relative_to(BENCH).parts
            jobs.append(
                {
                    "rule": rule_of(parts),
                    "job": str(Path(*parts).with_suffix("")),
                    "wall_s": float(row["s"]),
                    "max_rss_mb": _number(row.get("max_rss")),
                    "cpu_s": _number(row.get("cpu_time")),
                    "finished": tsv.stat().st_mtime,
                }
            )
    return sorted(jobs, key=lambda j: j["finished"])


def _number(text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):  # "NA" when the job was too short to sample
        return float("nan")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        mem = f"{mem_kb / 2**20:.0f} GB RAM"
    except (OSError, StopIteration):
        mem = "RAM unknown"
    return f"{platform.machine()} {cpu}, {os.cpu_count()} cores, {mem}, {platform.system()} {platform.release()}"


class LoadSampler(threading.Thread):
    """Samples the 1-minute load average every ``every`` seconds until stopped."""

    def __init__(self, every: float):
        super().__init__(daemon=True)
        self.every, self.samples, self._done = every, [], threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.samples.append(os.getloadavg()[0])
            self._done.wait(self.every)

    def stop(self) -> list[float]:
        self._done.set()
        self.join()
        return self.samples


def table(jobs: list[dict], max_rss_gb: float) -> str:
    out = ["| stage (rule) | job | wall (s) | peak RSS (GB) | CPU (s, sampled) |", "|---|---|---:|---:|---:|"]
    for j in jobs:
        flag = " **over**" if j["max_rss_mb"] > max_rss_gb * 1000 else ""
        out.append(
            f"| {j['rule']} | `{j['job']}` | {j['wall_s']:.1f} | {j['max_rss_mb'] / 1000:.2f}{flag} | {j['cpu_s']:.0f} |"
        )
    return "\n".join(out)


def summary(jobs: list[dict]) -> str:
    by_rule: dict[str, list[dict]] = {}
    for j in jobs:
        by_rule.setdefault(j["rule"], []).append(j)
    out = [
        "| stage (rule) | jobs | wall, sum (s) | wall, longest job (s) | peak RSS, largest job (GB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for rule, js in by_rule.items():  # in order of the first job's end
        walls = [j["wall_s"] for j in js]
        rss = max(j["max_rss_mb"] for j in js)
        out.append(f"| {rule} | {len(js)} | {sum(walls):.1f} | {max(walls):.1f} | {rss / 1000:.2f} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default="config/scale.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--max-rss-gb", type=float, default=8.0, help="peak RSS limit per job (exit 1 above it)")
    parser.add_argument("--load-every", type=float, default=15.0, help="seconds between load-average samples")
    parser.add_argument("--collect-only", action="store_true", help="only read the benchmark files of a finished run")
    parser.add_argument("--json", type=Path, help="also write the records here")
    parser.add_argument("snakemake_args", nargs="*", help="extra Snakemake arguments (after --)")
    args = parser.parse_args()
    os.chdir(ROOT)

    config = yaml.safe_load(Path(args.configfile).read_text())
    names = [*config.get("datasets", {}), config.get("study", "default")]
    roots = [BENCH / name for name in dict.fromkeys(names)]  # a study may share its dataset's name
    cmd = [
        sys.executable, "-m", "snakemake", "--cores", str(args.cores), "--configfile", args.configfile,
        *args.snakemake_args,
    ]  # fmt: skip
    rc, wall, loads, since = 0, None, [], None
    if not args.collect_only:
        since = time.time()
        sampler = LoadSampler(args.load_every)
        sampler.start()
        tic = time.perf_counter()
        rc = subprocess.run(cmd).returncode
        wall = time.perf_counter() - tic
        loads = sampler.stop()

    jobs = read_benchmarks([r for r in roots if r.exists()], since)
    print(f"- Machine: {machine()}")
    print(f"- Command: `{' '.join(['python', *cmd[1:]])}` (exit status {rc})")
    if wall is not None:
        print(f"- Workflow wall time: {wall:.0f} s for {len(jobs)} jobs with a benchmark file")
    if loads:
        print(
            f"- 1-minute load average during the run: median {statistics.median(loads):.1f}, "
            f"min {min(loads):.1f}, max {max(loads):.1f} ({len(loads)} samples)"
        )
    print()
    print(summary(jobs))
    print()
    print(table(jobs, args.max_rss_gb))
    if args.json:
        args.json.write_text(
            json.dumps({"command": cmd, "rc": rc, "wall_s": wall, "load": loads, "jobs": jobs}, indent=1)
        )
    over = [j["job"] for j in jobs if j["max_rss_mb"] > args.max_rss_gb * 1000]
    if over:
        print(f"\nover {args.max_rss_gb:g} GB peak RSS: {', '.join(over)}", file=sys.stderr)
    return 1 if rc or over else 0


if __name__ == "__main__":
    sys.exit(main())
