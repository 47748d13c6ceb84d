"""How the workflow is deployed: it parses with Snakemake alone, and its rules run in the
environment that workflow/envs/sagea.yaml describes (what `--sdm conda` builds)."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENV_FILE = REPO / "workflow" / "envs" / "sagea.yaml"
#: The modules the workflow imports while it parses (common.smk, report.smk, compare.smk, explain.smk).
PARSE_TIME_MODULES = ("sagea.plan", "sagea.plan_report", "sagea.plan_compare", "sagea.plan_explain")


def test_parse_time_modules_import_nothing_heavy():
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'src')!r})\n"
        + "".join(f"import {m}\n" for m in PARSE_TIME_MODULES)
        + "heavy = sorted(m for m in ('numpy', 'pandas', 'torch', 'matplotlib', 'scipy', 'mlflow', 'pyarrow')"
        " if m in sys.modules)\nprint(heavy)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_rule_environment_pins_the_library_dependencies():
    pip = next(d for d in yaml.safe_load(ENV_FILE.read_text())["dependencies"] if isinstance(d, dict))["pip"]
    pinned = {line.split("==")[0].lower() for line in pip}
    assert all("==" in line for line in pip), pip
    assert not any(line.startswith("-e") or "/" in line for line in pip)  # nothing relative to a prefix
    declared = {"torch", "numpy", "pandas", "pyarrow", "scipy", "mlflow", "tqdm", "matplotlib", "jsonschema", "pyyaml"}
    assert declared <= pinned


def _fresh_venv(path: Path, packages: list[str]) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    python = path / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *packages], capture_output=True, text=True, timeout=1500
    )
    if install.returncode != 0:
        pytest.skip(f"could not install {packages} into a fresh venv (package index unreachable?): "
                    f"{install.stderr[-500:]}")  # fmt: skip
    return python


@pytest.mark.workflow
@pytest.mark.slow
def test_snakemake_alone_parses_then_the_env_file_runs_the_rules(tmp_path):
    import snakemake

    python = _fresh_venv(tmp_path / "venv", [f"snakemake=={snakemake.__version__}"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    work = tmp_path / "work"
    work.mkdir()
    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "study": "tiny", "mlflow": {"enabled": False},
                "datasets": {"tiny": {"source": "synthetic", "synthetic": {"n_users": 300, "n_items": 200,
                                      "n_interactions": 6000, "n_clusters": 4}}},
                "elsa": {"factors": 8, "epochs": 2, "batch_size": 64, "lr": 0.01},
            }
        )
    )  # fmt: skip
    base = [str(python), "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--configfile", str(config)]
    # 1. Snakemake and nothing else: the whole study parses and plans (no sagea, numpy, torch installed)
    check = subprocess.run([str(python), "-c", "import sagea"], capture_output=True, text=True, env=env)
    assert check.returncode != 0  # the venv really holds no library
    dry = subprocess.run([*base, "-n", "--cores", "1"], capture_output=True, text=True, env=env, timeout=600)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "train_elsa" in dry.stdout + dry.stderr
    # 2. the rule environment: the env file's pip section, installed as conda would, runs the rules
    pip = next(d for d in yaml.safe_load(ENV_FILE.read_text())["dependencies"] if isinstance(d, dict))["pip"]
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pip], capture_output=True, text=True,
                             timeout=1500)  # fmt: skip
    if install.returncode != 0:
        pytest.skip(f"could not install the env file's pip section: {install.stderr[-500:]}")
    target = "results/tiny/s42/elsa/f8-s42/user_embeddings.parquet"
    run = subprocess.run([*base, "--cores", "2", target], capture_output=True, text=True, env=env, timeout=1500)
    assert run.returncode == 0, run.stderr[-4000:]
    assert (work / target).stat().st_size > 0
