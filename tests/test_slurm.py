"""The workflow on a real SLURM cluster, and fault tolerance (issue 8).

The SLURM tests start a one-node cluster on localhost (tests/slurm_fixtures.py; installed by
`.ci/install-slurm`), run workflow targets through ``--executor slurm`` with the project's
``profiles/slurm`` (partition/account set for the local cluster, threads capped to its CPUs)
and compare every Parquet output with a local run. They skip, saying why, where SLURM is absent.
The SIGKILL test needs no cluster: it kills a local training mid-way and checks that the rerun
resumes from the periodic checkpoint and ends with exactly the uninterrupted result.

Extend the chain by adding targets to ``CHAINS`` (e.g. SAE, groups, evaluation outputs);
``SAGEA_SLURM_FULL=1`` also cancels a running ``train_elsa`` job in the scancel test.
Run: ``.venv/bin/pytest tests/test_slurm.py`` (as root; ``-m slurm`` for the cluster tests only).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from slurm_fixtures import LocalSlurm, slurm_cluster  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
DATASET = "synthetic"
ELSA_RUN = "f16-s42"  # the tiny config's main ELSA run

#: Targets run through SLURM and compared with a local run, from the data stage onwards.
CHAINS = {
    "data": [f"results/{DATASET}/s42/split.parquet", f"results/{DATASET}/s42/data/interactions.parquet"],
    "elsa": [f"results/{DATASET}/s42/elsa/{ELSA_RUN}/user_embeddings.parquet"],
}
#: (chain, rule whose running SLURM job gets cancelled) for the scancel test. Each SLURM job
#: costs 10-40 s (two Snakemake start-ups and status polling), so only the data stage by
#: default; SAGEA_SLURM_FULL=1 also cancels a running train_elsa (~2 minutes more).
CANCEL_CASES = [("data", "generate")] + ([("elsa", "train_elsa")] if os.environ.get("SAGEA_SLURM_FULL") == "1" else [])


# ----------------------------------------------------------------------------- helpers
def tiny_config(path: Path, *, elsa_epochs: int = 4) -> Path:
    """config/config.yaml shrunk to seconds: small synthetic data, one small ELSA, no MLflow."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["mlflow"] = {"enabled": False}
    synthetic = config["datasets"][DATASET]
    synthetic["synthetic"] = {"n_users": 800, "n_items": 300, "n_interactions": 16000, "n_clusters": 6}
    config["elsa"] = {"factors": 16, "batch_size": 64, "epochs": elsa_epochs, "patience": elsa_epochs}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, configfile: Path, *args: str) -> list[str]:
    return [PYTHON, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
            "--configfile", str(configfile), *args]


def run(cmd: list[str], env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def require_rules(workdir: Path, configfile: Path, targets: list[str]) -> None:
    """Skip when a target's rule is not written yet (other stages are developed in parallel)."""
    result = run(snakemake(workdir, configfile, "-n", *targets, "--quiet", "rules"))
    if result.returncode != 0:
        text = result.stdout + result.stderr
        if "MissingRuleException" in text or "No rule to produce" in text:
            pytest.skip(f"no rule produces {targets} yet: {text.strip().splitlines()[-1]}")
        pytest.fail(f"dry run of {targets} failed:\n{text[-4000:]}")


def slurm_profile(tmp: Path, cluster: LocalSlurm) -> Path:
    """profiles/slurm with the local cluster's partition, no account, threads capped to the node.

    Everything else (executor, squeue status, log dir, retries, set-resources) is the project's.
    The first status check comes after 1 s instead of 40 s to keep the tests short.
    """
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"]["slurm_partition"] = cluster.partition
    profile["default-resources"]["slurm_account"] = ""  # accounting is off on the test cluster
    profile["max-threads"] = os.cpu_count() or 1
    profile["slurm-init-seconds-before-status-checks"] = 1
    profile["latency-wait"] = 10
    folder = tmp / "profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def parquet_tables(workdir: Path) -> dict[str, pd.DataFrame]:
    return {str(p.relative_to(workdir)): pd.read_parquet(p) for p in sorted((workdir / "results").rglob("*.parquet"))}


def assert_same_parquet(a: Path, b: Path) -> None:
    tables_a, tables_b = parquet_tables(a), parquet_tables(b)
    assert tables_a.keys() == tables_b.keys()
    assert tables_a, "no Parquet output to compare"
    for name, frame in tables_a.items():
        other = tables_b[name]
        drop = [c for c in ("seconds",) if c in frame.columns]  # wall-clock columns differ by nature
        pd.testing.assert_frame_equal(frame.drop(columns=drop), other.drop(columns=drop), check_exact=True, obj=name)


def slurm_job_logs(workdir: Path) -> dict[str, list[str]]:
    """rule -> SLURM job ids, from the executor's per-job logs (logs/slurm/rule_<rule>/.../<jobid>.log)."""
    found: dict[str, list[str]] = {}
    for log in (workdir / "logs" / "slurm").rglob("*.log"):
        rule = next(part for part in log.relative_to(workdir / "logs" / "slurm").parts if part.startswith("rule_"))
        found.setdefault(rule.removeprefix("rule_"), []).append(log.stem)
    return found


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory) -> dict[str, Path]:
    """Reference runs with the local executor, one working directory per chain (built lazily)."""
    return {}


def local_reference(local_runs: dict, tmp_path_factory, chain: str) -> Path:
    if chain not in local_runs:
        workdir = tmp_path_factory.mktemp(f"local-{chain}")
        config = tiny_config(workdir / "config.yaml")
        result = run(snakemake(workdir, config, "--cores", "2", *CHAINS[chain]))
        assert result.returncode == 0, result.stderr[-4000:]
        local_runs[chain] = workdir
    return local_runs[chain]


# ----------------------------------------------------------------------------- rules and profiles
_RULES_SCRIPT = """
import json, sys, tempfile
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
repo = Path(sys.argv[1])
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(resource_settings=ResourceSettings(),
                      config_settings=ConfigSettings(configfiles=[repo / "config" / "config.yaml"],
                                                     config={"sae": {"batch_grid": True}}),
                      snakefile=repo / "Snakefile", workdir=Path(tempfile.mkdtemp()))._workflow
    print(json.dumps({r.name: {"local": r.name in wf._localrules or r.norun,
                               "resources": sorted(k for k in r.resources if not k.startswith("_"))}
                      for r in wf.rules}))
"""


def workflow_rules() -> dict[str, dict]:
    """rule -> {"local": runs on the submitting host, "resources": names} of the real workflow
    (the embedded default with ``sae.batch_grid`` on, so the conditional rule train_sae_grid exists)."""
    result = run([PYTHON, "-c", _RULES_SCRIPT, str(REPO)])
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.workflow
def test_rules_are_local_or_carry_cluster_resources():
    """Rules submitted to SLURM have heavy_resources() (gpu, mem_mb, runtime); others are localrules.

    Also checks that profiles/slurm's set-resources name existing submitted rules.
    """
    rules = workflow_rules()
    assert rules["split"]["local"] and not rules["prepare"]["local"] and not rules["generate"]["local"]
    offenders = [name for name, rule in rules.items()
                 if not rule["local"] and not {"gpu", "mem_mb", "runtime"} <= set(rule["resources"])]
    assert not offenders, (f"rules submitted to the cluster without heavy_resources(): {offenders}; give them "
                           "`threads:` and `resources: **heavy_resources()` or list them in `localrules:`")

    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    named = set(profile["set-resources"])
    assert named == {"train_elsa", "train_sae", "train_sae_grid", "evaluate_sagea", "evaluate_baselines", "sample_groups"}
    missing = sorted(n for n in named if n not in rules)
    assert not missing, f"profiles/slurm set-resources name rules that do not exist: {missing}"
    assert not any(rules[n]["local"] for n in named), "set-resources only matter for submitted rules"
    arrays = {r.strip() for r in str(profile.get("slurm-array-jobs", "")).split(",") if r.strip()}
    assert arrays <= rules.keys()


@pytest.mark.workflow
@pytest.mark.parametrize("profile", ["local", "slurm"])
def test_profile_dry_run_of_default_config(profile, tmp_path):
    """Both profiles parse and every job of the embedded default gets its resources evaluated."""
    result = run(snakemake(tmp_path, REPO / "config" / "config.yaml", "--profile", str(REPO / "profiles" / profile),
                           "-n", "--quiet", "rules"))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


# ----------------------------------------------------------------------------- SLURM tests
@pytest.mark.slurm
@pytest.mark.workflow
@pytest.mark.parametrize("chain", list(CHAINS))
def test_targets_through_slurm_equal_local_run(chain, slurm_cluster, tmp_path, local_runs, tmp_path_factory):
    workdir = tmp_path / "wf"
    workdir.mkdir()
    config = tiny_config(tmp_path / "config.yaml")
    require_rules(workdir, config, CHAINS[chain])
    profile = slurm_profile(tmp_path, slurm_cluster)

    result = run(snakemake(workdir, config, "--profile", str(profile), *CHAINS[chain]), env=slurm_cluster.env)
    assert result.returncode == 0, f"{result.stderr[-6000:]}\n{slurm_cluster.log_tail()}"

    # Jobs went through SLURM: one executor log per submitted job, named by its SLURM job id,
    # and slurmctld knows these ids as COMPLETED jobs.
    jobs = slurm_job_logs(workdir)
    assert jobs, f"no SLURM job logs under {workdir / 'logs' / 'slurm'}"
    assert "generate" in jobs  # the synthetic data of the replicate
    assert "split" not in jobs  # a localrule runs on the submitting host
    states = {job_id: state for job_id, state, _ in slurm_cluster.jobs()}
    for rule, ids in jobs.items():
        for job_id in ids:
            assert states.get(job_id) == "COMPLETED", (rule, job_id, states)
    assert "has been submitted with SLURM jobid" in result.stderr

    assert_same_parquet(workdir, local_reference(local_runs, tmp_path_factory, chain))


def _wait_for_running_job(cluster: LocalSlurm, rule: str, proc: subprocess.Popen, timeout: float = 180) -> str:
    """The id of the first RUNNING SLURM job of ``rule`` (squeue's comment is rule_<rule>...)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = cluster.run("squeue", "-h", "-t", "RUNNING", "-o", "%i|%k").stdout
        for line in out.splitlines():
            job_id, comment = line.split("|", 1)
            if comment == f"rule_{rule}" or comment.startswith(f"rule_{rule}_wildcards"):
                return job_id
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    out, err = proc.communicate()
    pytest.fail(f"no running SLURM job of rule {rule} appeared (snakemake rc={proc.returncode}):\n{err[-4000:]}")


@pytest.mark.slurm
@pytest.mark.workflow
@pytest.mark.parametrize("chain,rule", CANCEL_CASES)
def test_cancelled_slurm_job_then_rerun_completes(chain, rule, slurm_cluster, tmp_path, local_runs, tmp_path_factory):
    workdir = tmp_path / "wf"
    workdir.mkdir()
    config = tiny_config(tmp_path / "config.yaml")
    require_rules(workdir, config, CHAINS[chain])
    profile = slurm_profile(tmp_path, slurm_cluster)
    command = snakemake(workdir, config, "--profile", str(profile), *CHAINS[chain])

    # First attempt without retries: cancel the rule's job while it runs.
    proc = subprocess.Popen(command + ["--retries", "0"], cwd=REPO, env=slurm_cluster.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    job_id = _wait_for_running_job(slurm_cluster, rule, proc)
    slurm_cluster.run("scancel", job_id)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0, "snakemake succeeded although its job was cancelled"
    assert "CANCELLED" in err, err[-4000:]
    states = {j: s for j, s, _ in slurm_cluster.jobs()}
    assert states.get(job_id) == "CANCELLED"
    # Nothing that looks complete is left behind: no final target exists after the failure.
    assert not any((workdir / t).exists() for t in CHAINS[chain])

    # Rerunning the same command finishes the remaining work and gives the local run's result.
    result = run(command, env=slurm_cluster.env)
    assert result.returncode == 0, f"{result.stderr[-6000:]}\n{slurm_cluster.log_tail()}"
    assert all((workdir / t).exists() for t in CHAINS[chain])
    assert_same_parquet(workdir, local_reference(local_runs, tmp_path_factory, chain))


# ----------------------------------------------------------------------------- SIGKILL + resume
def _pids_under(workdir: Path) -> list[int]:
    """Processes whose command line names ``workdir`` (snakemake and its job scripts)."""
    needle = str(workdir).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.workflow
def test_killed_training_resumes_to_identical_result(tmp_path):
    """SIGKILL train_elsa after a checkpoint; the rerun resumes and equals an uninterrupted run."""
    import torch

    epochs = 20
    folder = f"results/{DATASET}/s42/elsa/{ELSA_RUN}"
    targets = [f"{folder}/model.pt"]
    uninterrupted, interrupted = tmp_path / "uninterrupted", tmp_path / "interrupted"
    for workdir in (uninterrupted, interrupted):
        workdir.mkdir()
    config = tiny_config(tmp_path / "config.yaml", elsa_epochs=epochs)
    require_rules(uninterrupted, config, targets)

    data = [f"results/{DATASET}/s42/split.parquet"]
    assert run(snakemake(uninterrupted, config, "--cores", "1", *data)).returncode == 0
    shutil.copytree(uninterrupted / "results", interrupted / "results")  # same data, mtimes kept
    proc = subprocess.Popen(snakemake(interrupted, config, "--cores", "1", *targets), cwd=REPO, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = interrupted / folder / "train_state.pt"
    deadline = time.monotonic() + 180
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None or not state.exists():
        proc.kill()
        pytest.fail("train_elsa ended (or timed out) before writing a periodic checkpoint (train_state.pt)")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for pid in _pids_under(interrupted):  # job scripts in their own process group, if any
        os.kill(pid, signal.SIGKILL)
    saved_epoch = torch.load(state, map_location="cpu", weights_only=True).get("epoch")
    assert not (interrupted / folder / "model.pt").exists(), "the job finished before it was killed"
    assert saved_epoch is not None and saved_epoch < epochs

    # A killed Snakemake leaves its lock: unlock, then rerun the same command.
    assert run(snakemake(interrupted, config, "--unlock")).returncode == 0
    rerun = run(snakemake(interrupted, config, "--cores", "1", "--rerun-incomplete", *targets))
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    log = (interrupted / f"logs/{DATASET}/s42/elsa/{ELSA_RUN}/train.log").read_text()
    assert "resuming from training checkpoint" in log
    assert not state.exists(), "the checkpoint must be removed once the outputs are written"

    reference = run(snakemake(uninterrupted, config, "--cores", "1", *targets))
    assert reference.returncode == 0, reference.stderr[-4000:]
    a = torch.load(interrupted / folder / "model.pt", map_location="cpu", weights_only=True)
    b = torch.load(uninterrupted / folder / "model.pt", map_location="cpu", weights_only=True)
    assert torch.equal(a["model_state_dict"]["encoder"], b["model_state_dict"]["encoder"])
    hist_a = pd.read_parquet(interrupted / folder / "history.parquet").drop(columns=["seconds"], errors="ignore")
    hist_b = pd.read_parquet(uninterrupted / folder / "history.parquet").drop(columns=["seconds"], errors="ignore")
    pd.testing.assert_frame_equal(hist_a, hist_b, check_exact=True)
