"""A dry run (`snakemake -n`) of every config shipped under config/ (found by glob, so configs
added later are covered). The dry runs run two at a time up front; each test checks its own result."""

from __future__ import annotations

import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "config").rglob("*.yaml"))


@pytest.fixture(scope="module")
def dry_runs(python):
    """Run the dry runs two at a time (each in its own empty working directory); collect results."""
    with tempfile.TemporaryDirectory(prefix="sagea-dryrun-") as tmp:

        def dry_run(item: tuple[int, str]) -> tuple[int, str]:
            i, config = item
            workdir = Path(tmp) / str(i)
            workdir.mkdir()
            cmd = [
                python,
                "-m",
                "snakemake",
                "-s",
                str(REPO / "Snakefile"),
                "-d",
                str(workdir),
                "--configfile",
                str(REPO / config),
                "--cores",
                "1",
                "-n",
                "-q",
                "rules",
            ]
            done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
            return done.returncode, done.stdout + done.stderr

        with ThreadPoolExecutor(max_workers=2) as pool:
            return dict(zip(CONFIGS, pool.map(dry_run, enumerate(CONFIGS))))


@pytest.mark.workflow
@pytest.mark.parametrize("config", CONFIGS)
def test_dry_run(config, dry_runs):
    code, output = dry_runs[config]
    assert code == 0, f"dry run of {config} failed:\n{output[-4000:]}"
    assert "prepare" in output and "split" in output, output[-2000:]
