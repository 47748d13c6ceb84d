"""What SLURM submission costs: the same targets with the local executor and through SLURM.

Starts the one-node test cluster of tests/slurm_fixtures.py (root, `.ci/install-slurm`), runs the
targets of a chain (default: data + ELSA of the tests' tiny config) once locally and once with
``--profile profiles/slurm`` (as tests/test_slurm.py adapts it), and prints wall-clock seconds,
the number of SLURM jobs and the overhead per job. Results go to BENCHMARKS.md (## slurm).

    .venv/bin/python benchmarks/slurm_overhead.py [--chain elsa] [--init-seconds 1]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import test_slurm as ts  # noqa: E402
from slurm_fixtures import LocalSlurm, slurm_unavailable_reason  # noqa: E402

log = logging.getLogger("slurm_overhead")


def timed(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr[-4000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chain", choices=list(ts.CHAINS), default="elsa")
    parser.add_argument("--init-seconds", type=int, default=1, help="slurm-init-seconds-before-status-checks")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reason = slurm_unavailable_reason()
    if reason:
        raise SystemExit(reason)

    tmp = Path(tempfile.mkdtemp(prefix="sagea-slurm-bench-"))
    tmp.chmod(0o755)
    cluster = LocalSlurm(root=tmp / "cluster", conf=tmp / "cluster" / "slurm.conf")
    cluster.root.mkdir()
    try:
        cluster.start()
        config = ts.tiny_config(tmp / "config.yaml")
        local_dir, slurm_dir = tmp / "local", tmp / "slurm"
        local_dir.mkdir()
        slurm_dir.mkdir()
        targets = ts.CHAINS[args.chain]
        local_s = timed(ts.snakemake(local_dir, config, "--cores", "2", *targets))
        profile = ts.slurm_profile(tmp, cluster)
        init = ["--slurm-init-seconds-before-status-checks", str(args.init_seconds)]
        slurm_s = timed(ts.snakemake(slurm_dir, config, "--profile", str(profile), *init, *targets), env=cluster.env)
        jobs = sum(len(ids) for ids in ts.slurm_job_logs(slurm_dir).values())
        ts.assert_same_parquet(local_dir, slurm_dir)
        print(f"chain={args.chain} targets={targets}")
        print(f"local executor: {local_s:.1f} s")
        print(f"SLURM executor: {slurm_s:.1f} s for {jobs} SLURM jobs "
              f"(+{slurm_s - local_s:.1f} s, {(slurm_s - local_s) / max(jobs, 1):.1f} s per job); outputs identical")
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
