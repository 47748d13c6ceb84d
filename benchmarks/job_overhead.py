"""Where a small job's time goes: interpreter start-up, Snakemake's script wrapper, library
imports, MLflow logging, I/O and compute, and the jobs of a finished run as Snakemake measured them.

Measures, on this machine (wall seconds and this process's or the child's CPU seconds):
1. `python -c pass`, the imports of Snakemake's script preamble (what unpickling the `snakemake`
   object needs), and `python -c "import <module>"` for the modules each rule script imports
   (fresh interpreter each time, median of --repeats); with --importtime, the heaviest
   top-level packages behind each (`python -X importtime`, cumulative);
2. MLflow: `import mlflow`, and `sagea.tracking.log_run` of evaluation-sized runs (40 params,
   60 metrics, 3 small artifacts) into a fresh sqlite store, into an existing one, and 64 runs
   one at a time against 64 runs inside `sagea.tracking.deferred_logging` (one batch);
3. with --results DIR (a finished run's `results/`): one `evaluate_sagea_job` (8 fusions) on its
   first group set, split into reading inputs, evaluating and writing outputs (cProfile);
4. with --benchmarks DIR (e.g. logs/benchmarks after a run): wall and CPU seconds per rule from
   Snakemake's benchmark files, so the total can be split into overhead and compute.

    SAGEA_PROGRESS=0 .venv/bin/python benchmarks/job_overhead.py --importtime \
        --results results --benchmarks logs/benchmarks
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

#: What the rule scripts import before they do anything (see workflow/scripts/).
MODULES = {
    "Snakemake's script preamble": "snakemake.logging, snakemake.iocontainers",
    "runtime (every script)": "sagea.runtime",
    "evaluate_sagea / evaluate_baselines": "sagea.stages.evaluate",
    "train_elsa": "sagea.stages.elsa",
    "train_sae / extract_sae": "sagea.stages.sae",
    "sample_groups": "sagea.stages.groups",
    "report tables/figures": "sagea.stages.report",
    "mlflow (logging)": "mlflow",
}


#: Calls that cost start-up time beyond the imports (each after ``import torch``).
CALLS = {
    "import torch": "import torch",
    "import torch + torch.use_deterministic_algorithms(True, warn_only=True) (imports the compiler)":
        "import torch; torch.use_deterministic_algorithms(True, warn_only=True)",
    "import torch + torch.set_deterministic_debug_mode('warn') (sagea.runtime.seed_everything)":
        "import torch; torch.set_deterministic_debug_mode('warn')",
}  # fmt: skip


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of a fresh process running ``cmd``."""
    walls, cpus = [], []
    for _ in range(repeats):
        cpu, tic = _child_cpu(), time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        walls.append(time.perf_counter() - tic)
        cpus.append(_child_cpu() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def heaviest_imports(module: str, top: int = 6) -> list[tuple[str, float]]:
    """Top-level packages behind ``import module`` by cumulative import time (``-X importtime``)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                          check=True, capture_output=True, text=True)  # fmt: skip
    cumulative: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cum, name = (part.strip() for part in line.split("|"))  # "import time: self | cumulative | name"
        if "." not in name:  # a top-level package; its cumulative time covers its submodules
            cumulative[name] = max(cumulative.get(name, 0.0), int(cum) / 1e6)
    ranked = sorted(cumulative.items(), key=lambda kv: -kv[1])
    return [(name, sec) for name, sec in ranked if name not in module.split(".")[:1]][:top]


def mlflow_logging(repeats: int) -> tuple[float, float]:
    """Median seconds of one ``log_run`` into a fresh sqlite store and into an existing one."""
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


def mlflow_batch(n_runs: int = 64) -> dict[str, tuple[float, float]]:
    """Wall and CPU seconds of ``n_runs`` evaluation-sized runs logged one at a time (each its own
    lock, client and look-up of earlier runs) and as one batch (``deferred_logging``), into an
    existing store, as a rerun (each replaces an earlier run of its key)."""
    from sagea.tracking import Provenance, deferred_logging, log_run

    params = {f"p{i}": i for i in range(40)}
    metrics = {f"m{i}/mean": float(i) for i in range(60)}
    provenance = Provenance(study="bench", git_commit="0" * 40, config_digest="0" * 64, config={"a": 1})
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for name in ("per_group.parquet", "recommendations.parquet", "summary.json"):
            path = Path(tmp) / name
            path.write_bytes(b"x" * 20_000)
            files.append(path)
        uri = f"sqlite:///{tmp}/mlflow.db"

        def log_all():
            for i in range(n_runs):
                log_run(uri, "GR_bench", f"run{i}", params, metrics, artifacts=files,
                        key=f"bench/eval/test/similar_3/f64-s42/sae/ti1-nu0/fusion{i}", provenance=provenance)  # fmt: skip

        log_all()  # schema, experiment, parent run and the runs a rerun replaces
        for label in ("one at a time", "one batch (deferred_logging)"):
            cpu, tic = time.process_time(), time.perf_counter()
            if label.startswith("one batch"):
                with deferred_logging():
                    log_all()
            else:
                log_all()
            out[label] = (time.perf_counter() - tic, time.process_time() - cpu)
    return out


def evaluation_parts(results: Path) -> dict[str, float]:
    """Seconds of one evaluate_sagea_job (8 fusions) of a finished run, by part (cProfile)."""
    import cProfile
    import pstats

    from sagea.stages.evaluate import evaluate_sagea_job

    summary = next(results.rglob("eval/*/*/*/topk-*/ti1-nu0/*/summary.json"))
    params = json.loads(summary.read_text())["params"]
    option_dir = summary.parent.parent
    sae_dir, elsa_dir, groupset_dir = option_dir.parent, option_dir.parent.parent, option_dir.parent.parent.parent
    rep = groupset_dir.parent.parent.parent
    data = rep / "data" if (rep / "data").exists() else rep.parent / "data"
    fusions = sorted(p.name for p in option_dir.iterdir() if (p / "summary.json").exists())
    with tempfile.TemporaryDirectory() as tmp:
        profile = cProfile.Profile()
        tic = time.perf_counter()
        profile.enable()
        evaluate_sagea_job(
            data, rep / "split.parquet", rep / "groups" / groupset_dir.parent.name / f"{groupset_dir.name}.parquet",
            rep / "elsa" / elsa_dir.name / "model.pt", rep / "elsa" / elsa_dir.name / "item_embeddings.parquet",
            rep / "sae" / elsa_dir.name / sae_dir.name / "model.pt", {f: Path(tmp) / f for f in fusions},
            dataset=params["dataset"], pool=params["user_set"], groupset=params["group_set"],
            elsa_run=elsa_dir.name, sae_run=sae_dir.name,
            sae_hp={"width": int(params["embedding_dim"]), "k": int(params["top_k"])},
            topk_inference=True, normalize_users_embeddings=False, zero_fallback=params["zero_fallback"],
            settings={"k": int(params["eval_k"]), "batch_groups": 256, "target_ratio": 0.2, "split_seed": 42,
                      "shared_mask": params["shared_mask"] == "True" or params["shared_mask"] is True,
                      "hit_rate_needs_two": False, "m": 2, "top_n": 20},
            device="cpu", threads=1,
        )  # fmt: skip
        profile.disable()
        total = time.perf_counter() - tic
    stats = pstats.Stats(profile).stats
    cum = defaultdict(float)
    for (filename, _, name), (_, _, _, ct, _) in stats.items():
        cum[(Path(filename).stem, name)] = max(cum[(Path(filename).stem, name)], ct)
    parts = {
        "read inputs (interactions, split, groups, popularity)": cum[("evaluate", "_load_common")],
        "load ELSA and SAE checkpoints": cum[("elsa", "load")] + cum[("sae", "load")],
        "read item embeddings": cum[("io", "read_embeddings")],
        "evaluate (score, rank, metrics)": cum[("group", "evaluate_groups")],
        "write 8 folders": cum[("group", "write_strategy_outputs")],
    }
    parts["rest"] = total - sum(parts.values())
    parts["total"] = total
    return parts


def rule_seconds(folder: Path) -> dict[str, list[tuple[float, float]]]:
    """Rule -> (wall, CPU) seconds of its jobs, from Snakemake's benchmark files under ``folder``."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for tsv in folder.rglob("*.tsv"):
        lines = tsv.read_text().splitlines()
        if len(lines) < 2:
            continue
        row = dict(zip(lines[0].split("\t"), lines[1].split("\t")))
        parts = tsv.relative_to(folder).parts
        out[_rule_of(parts)].append((float(row["s"]), float(row.get("cpu_time", "nan"))))
    return out


def _rule_of(parts: tuple[str, ...]) -> str:
    """Benchmark paths (logs/benchmarks/...) back to rule names."""
    stem = Path(parts[-1]).stem
    if "eval" in parts:  # <pool>/<elsa>/{baselines,sagea}.tsv (per pool); earlier per group set or <sae>/<option>.tsv
        return "evaluate_baselines" if stem == "baselines" else "evaluate_sagea"
    if "elsa" in parts:
        return {"train": "train_elsa", "embeddings": "extract_elsa_embeddings"}.get(stem, stem)
    if "sae" in parts:
        return {"train": "train_sae", "extract": "extract_sae"}.get(stem, stem)
    if "groups" in parts:
        return "sample_groups"
    if stem == "mlflow_log":
        return "mlflow_log"
    if stem == "labels":
        return "label_features"
    if "explain" in parts:
        return "explain_report" if stem.startswith("report") else "explain_groups"
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
    parser.add_argument("--importtime", action="store_true", help="heaviest packages behind each import")
    parser.add_argument("--results", type=Path, help="results/ of a finished run (evaluation parts)")
    parser.add_argument("--benchmarks", type=Path, help="logs/benchmarks of a finished run")
    args = parser.parse_args()

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    print("| what | wall s | CPU s |\n|---|---|---|")
    wall, cpu = timed([sys.executable, "-c", "pass"], args.repeats)
    print(f"| python start-up (`-c pass`) | {wall:.2f} | {cpu:.2f} |")
    for label, module in MODULES.items():
        wall, cpu = timed([sys.executable, "-c", f"import {module}"], args.repeats)
        print(f"| import {module} ({label}) | {wall:.2f} | {cpu:.2f} |")
    for label, code in CALLS.items():
        wall, cpu = timed([sys.executable, "-c", code], args.repeats)
        print(f"| {label} | {wall:.2f} | {cpu:.2f} |")
    first, again = mlflow_logging(args.repeats)
    print(f"| log_run, fresh sqlite store (schema created) | {first:.2f} | |")
    print(f"| log_run, existing store | {again:.2f} | |")
    for label, (wall, cpu) in mlflow_batch().items():
        print(f"| 64 runs, {label} | {wall:.2f} | {cpu:.2f} |")
    if args.importtime:
        print("\n| module | heaviest packages (cumulative import s) |\n|---|---|")
        for module in MODULES.values():
            if "," not in module:
                print(f"| {module} | " + ", ".join(f"{n} {s:.2f}" for n, s in heaviest_imports(module)) + " |")
    if args.results:
        print("\n| one evaluate_sagea_job (8 fusions) | s |\n|---|---|")
        for part, sec in evaluation_parts(args.results).items():
            print(f"| {part} | {sec:.3f} |")
    if args.benchmarks:
        jobs = rule_seconds(args.benchmarks)
        wall = sum(w for v in jobs.values() for w, _ in v)
        cpu = sum(c for v in jobs.values() for _, c in v)
        print(f"\n{sum(len(v) for v in jobs.values())} jobs, {wall:.0f} job-seconds, {cpu:.0f} CPU-seconds in all\n")
        print("| rule | jobs | median s | total s | total CPU s |\n|---|---|---|---|---|")
        for rule, secs in sorted(jobs.items(), key=lambda kv: -sum(w for w, _ in kv[1])):
            walls = [w for w, _ in secs]
            print(f"| {rule} | {len(secs)} | {statistics.median(walls):.1f} | {sum(walls):.0f} | "
                  f"{sum(c for _, c in secs):.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
