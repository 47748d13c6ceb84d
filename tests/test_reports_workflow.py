"""Report stage in Snakemake: the report rules on fixture files, the HTML report, dry runs of every config."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

sys.path.insert(0, str(Path(__file__).parent))
import report_fixtures  # noqa: E402

from sagea import plan, plan_report  # noqa: E402
from sagea.io import write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
# every shipped config, found by glob so configs added later are covered
CONFIGS = sorted(str(p.relative_to(REPO)) for p in (REPO / "config").rglob("*.yaml"))
REPORT_RULES = ["report_collect", "report_tables", "report_figures"]


def load_config(path: str | Path) -> dict:
    config = yaml.safe_load(Path(REPO / path).read_text())
    validate(config, str(SCHEMA))  # fills in the defaults as the workflow does
    return config


def snakemake(args: list[str], workdir: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def job_stats(output: str) -> dict[str, int]:
    """Per-rule job counts from the "Job stats" table of a dry run."""
    block = output.split("Job stats:", 1)[1]
    counts = {}
    for line in block.splitlines()[3:]:
        m = re.fullmatch(r"\s*(\S+)\s+(\d+)\s*", line)
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


def expected_report_jobs(config: dict) -> dict[str, int]:
    """One job of each report rule per replicate: collect, every table, every figure."""
    return {rule: len(plan.replicate_seeds(config)) for rule in REPORT_RULES}


def expected_upstream_jobs(config: dict) -> dict[str, int]:
    """Job counts fixed by docs/ARCHITECTURE.md (per pool one job for every group set × SAE × option, one for all baselines)."""
    n = len(plan.datasets(config))
    sets = len(plan.group_pools(config))
    saes = len(plan.sae_runs(config))
    # sae.batch_grid: the TopK/basic SAEs of an ELSA run train in one train_sae_grid job (when there are 2+)
    stacked = [s for s, hp in plan.sae_runs(config).items() if hp["variant"] in ("topk", "basic")]
    stacked = stacked if config["sae"].get("batch_grid", True) and len(stacked) >= 2 else []
    out = {
        # real data is prepared once; synthetic data (it has a seed) is generated per replicate
        "prepare": sum(plan.dataset_spec(config, d)["source"] != "synthetic" for d in plan.datasets(config)),
        "generate": sum(plan.dataset_spec(config, d)["source"] == "synthetic" for d in plan.datasets(config)),
        "split": n,
        "train_sae": n * (saes - len(stacked)),
        "train_sae_grid": n if stacked else 0,
        "evaluate_sagea": n * sets if saes and plan.sagea_options(config) else 0,
        "evaluate_baselines": n * sets if plan.baselines(config) else 0,
    }
    return {rule: c for rule, c in out.items() if c}


def chromium_dom(page: Path) -> str:
    """The DOM of ``page`` after its scripts ran, from a real headless Chromium."""
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no Chromium on PATH: run .ci/install-chromium (Debian package chromium) as root")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
           "--dump-dom", page.as_uri()]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


@pytest.mark.workflow
def test_report_rules_on_fixture_files_and_html_report(tmp_path):
    config = load_config("config/config.yaml")
    report_fixtures.write_results(config, tmp_path, n_groups=10)
    study = config["study"]
    datasets = plan.datasets(config)
    for dataset in datasets:
        card = {"counts": {"users": 3000, "items": 1500, "interactions": 150000, "density": 1 / 30},
                "item_popularity_gini": 0.5}  # fmt: skip
        write_json(card, tmp_path / f"{plan.data_dir(config, dataset, 'results')}/card.json")
    targets = [
        f"results/{study}/s42/tables/{n}.{e}"
        for n in plan_report.table_names(datasets, config["reports"]["comparisons"])
        for e in ("csv", "tex", "md", "html")
    ]
    targets += [f"results/{study}/s42/figures/{n}.{e}" for n in plan_report.figure_names(datasets) for e in ("png", "svg")]
    targets.append(f"results/{study}/report/front.rst")
    common = ["--configfile", str(REPO / "config/config.yaml"), "--allowed-rules", *REPORT_RULES, "report_front"]
    run = snakemake([*common, "--cores", "2", "--", *targets], tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]
    for target in targets:
        assert (tmp_path / target).stat().st_size > 0, target
    overall = (tmp_path / f"results/{study}/s42/tables/overall-synthetic.md").read_text()
    assert "| SAE-TopK |" in overall and "| ELSA-INT |" in overall and "**" in overall
    assert (tmp_path / f"logs/benchmarks/{study}/s42/report/collect.tsv").exists()
    report = snakemake([*common, "--cores", "1", "--report", str(tmp_path / "report.html"), "--", *targets], tmp_path)
    assert report.returncode == 0, report.stderr[-4000:]
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "overall-synthetic" in html and "heatmap-synthetic" in html
    # Opened in a real browser, the landing page shows the study: dataset facts, the headline
    # table's cells (with marks and stars) and the embedded heatmap
    dom = chromium_dom(tmp_path / "report.html")
    assert f"SAGEA study" in dom and study in dom
    assert re.search(r"<td[^>]*>3,000</td>", dom)  # users of the dataset card
    assert re.search(r'<td[^>]*class="best"[^>]*>0\.\d{3}', dom)  # a best cell of the overall table
    assert re.search(r"<th>SAE-TopK</th>", dom) and re.search(r"<th>ELSA-INT</th>", dom)
    assert re.search(r'<img[^>]+src="data:image/png;base64,', dom)  # the heatmap figure
    # every table also exists as a standalone HTML page for the report's viewer
    page = (tmp_path / f"results/{study}/s42/tables/overall-synthetic.html").read_text()
    assert "<table class=\"sagea\"" in page and "<script>" in page


@pytest.mark.workflow
@pytest.mark.slow
def test_every_config_validates_and_dry_runs_with_the_expected_jobs(tmp_path):
    def dry(path: str) -> tuple[str, subprocess.CompletedProcess]:
        workdir = tmp_path / path.replace("/", "_")
        workdir.mkdir()
        return path, snakemake(["--configfile", str(REPO / path), "--cores", "1", "-n", "--quiet", "rules"], workdir)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(pool.map(dry, CONFIGS))
    for path, run in results.items():
        assert run.returncode == 0, f"{path}: {run.stdout[-2000:]}{run.stderr[-2000:]}"
        counts = job_stats(run.stdout + run.stderr)
        config = load_config(path)
        for rule, count in {**expected_report_jobs(config), **expected_upstream_jobs(config)}.items():
            assert counts.get(rule) == count, f"{path}: {rule} has {counts.get(rule)} jobs, expected {count}"
        for rule in set(REPORT_RULES) - set(expected_report_jobs(config)):
            assert rule not in counts, f"{path}: unexpected {rule}"
