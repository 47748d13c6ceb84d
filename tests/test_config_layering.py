"""Shipped configs, run from the repo root exactly as the README says.

A ``--configfile`` replaces the embedded default (it used to be merged on top of it, so a paper
config planned the synthetic dataset, the default's extra ELSA runs and its values too). Each
shipped config must plan exactly the job count that config/README.md documents.
"""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "config" / "README.md"
CONFIGS = sorted(str(p.relative_to(REPO)) for p in (REPO / "config").rglob("*.yaml"))

pytestmark = pytest.mark.workflow


def documented_job_counts() -> dict[str, int]:
    """config path -> total jobs, from the "Shipped configs" table of config/README.md."""
    counts = {}
    for line in README.read_text().splitlines():
        m = re.match(r"\|\s*`(config/[^`]+\.yaml)`\s*\|[^|]*\|[^|]*\|\s*(\d+)\s*\(", line)
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


def dry_run(*args: str) -> subprocess.CompletedProcess:
    """``snakemake -n`` in the repo root (as a user types it); --forceall so existing results
    in a developer's checkout do not change the count."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--quiet", "rules", "--cores", "1", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def total_jobs(run: subprocess.CompletedProcess) -> int:
    m = re.search(r"^total\s+(\d+)\s*$", run.stdout + run.stderr, re.M)
    assert m, (run.stdout + run.stderr)[-3000:]
    return int(m.group(1))


def test_every_shipped_config_is_documented():
    assert sorted(documented_job_counts()) == CONFIGS


@pytest.mark.slow
def test_every_shipped_config_plans_its_documented_jobs_from_the_repo_root():
    documented = documented_job_counts()

    def plan(path: str) -> tuple[str, subprocess.CompletedProcess]:
        # the embedded default is what a plain `snakemake` runs; every other config via --configfile
        return path, dry_run() if path == "config/config.yaml" else dry_run("--configfile", path)

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(pool.map(plan, CONFIGS))
    for path, run in runs.items():
        assert run.returncode == 0, f"{path}: {(run.stdout + run.stderr)[-3000:]}"
        assert total_jobs(run) == documented[path], path


def test_a_configfile_replaces_the_embedded_default():
    run = dry_run("--configfile", "config/paper/movielens.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    # the default's synthetic dataset and its f32 extra ELSA run are not planned
    assert "synthetic" not in run.stdout + run.stderr
    full = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "1", "--configfile",
         "config/paper/movielens.yaml"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    text = full.stdout + full.stderr
    assert "results/ml-32m/s42/elsa/f256-s42/model.pt" in text
    assert "f32-s42" not in text and "results/synthetic" not in text and "results/default" not in text


def test_config_overrides_still_apply_on_top_of_a_configfile():
    base = total_jobs(dry_run("--configfile", "config/paper/movielens.yaml"))
    fewer = total_jobs(
        dry_run("--configfile", "config/paper/movielens.yaml", "--config", "evaluation={'baselines': []}")
    )
    # no baseline evaluations: the one job per pool disappears (2 pools)
    assert base - fewer == 2
