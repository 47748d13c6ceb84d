"""Cross-key constraints checked when the workflow parses, and the selection guard of the tables."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

sys.path.insert(0, str(Path(__file__).parent))
from test_reports import _overall_fixture  # noqa: E402

from sagea import plan  # noqa: E402
from sagea.reports import paper_tables  # noqa: E402
from sagea.reports.options import ReportOptions  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def validated(**changes) -> dict:
    """The embedded default after schema validation, with nested changes applied first."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for path, value in changes.items():
        section = config
        keys = path.split("__")
        for key in keys[:-1]:
            section = section.setdefault(key, {})
        section[keys[-1]] = value
    validate(config, SCHEMA)
    return config


def test_the_shipped_default_has_no_problem():
    assert plan.config_problems(validated()) == []


def test_k_above_width_names_the_keys():
    problems = plan.config_problems(validated(sae__grid={"width": [128], "k": [8, 256]}))
    assert len(problems) == 1
    assert "topk-h128-k256-l2" in problems[0] and "k=256 > width=128" in problems[0]
    assert "sae.grid.k" in problems[0]


def test_loss_coefficients_must_leave_a_reconstruction_weight():
    config = validated(sae__base={**validated()["sae"]["base"], "aux_coef": 0.5, "contrastive_coef": 0.5})
    problems = plan.config_problems(config)
    # four grid variants, each with l1 + aux + con = 1.0003
    assert len(problems) == 4 and all("l1_coef + aux_coef + contrastive_coef = 1.0003" in p for p in problems)


def test_empty_and_too_small_pools():
    config = validated()
    config["datasets"]["synthetic"]["split"]["valid_fraction"] = 0.0
    problems = plan.config_problems(config)
    assert any("datasets.synthetic.split.valid_fraction is 0" in p for p in problems)
    # 3000 synthetic users x 0.1 = 300 test users: groups of 400 cannot be drawn
    config = validated(groups__kinds={"similar": [400]})
    (problem,) = plan.config_problems(config)[:1]
    assert "groups of 400 members" in problem and "about 300 users" in problem
    # once prepared, the card's user count decides: 20 users -> 2 per pool
    small = plan.config_problems(validated(), n_users={"synthetic": 20})
    assert sum("groups of 3 members" in p for p in small) == 2  # valid and test
    assert plan.pool_size_estimate(validated(), "synthetic", "train", 1000) == 800


def test_selection_on_the_reported_pool_is_refused_unless_allowed():
    config = validated(groups__pools=["test"])
    problems = plan.config_problems(config)
    assert any("reports.selection_pool is 'valid'" in p and "add 'valid' to groups.pools" in p for p in problems)
    same = validated(reports__selection_pool="test")
    assert any("reports.allow_selection_on_report_pool" in p for p in plan.config_problems(same))
    allowed = validated(groups__pools=["test"], reports__allow_selection_on_report_pool=True)
    assert plan.config_problems(allowed) == []


def test_comparisons_must_select_evaluated_values():
    config = validated(evaluation__sagea={"topk_inference": [True]})
    problems = plan.config_problems(config)
    assert any("reports.comparisons[0] (topk_inference).compare: topk_inference=False" in p for p in problems)
    config = validated(compare__sae_elsa_runs=["f64-s99"])
    assert any("compare.sae_elsa_runs names 'f64-s99'" in p for p in plan.config_problems(config))


def test_check_config_raises_listing_every_problem():
    config = validated(sae__grid={"width": [4], "k": [8]}, groups__pools=["test"])
    with pytest.raises(plan.ConfigError) as err:
        plan.check_config(config)
    text = str(err.value)
    assert "nothing was run" in text and "k=8 > width=4" in text and "reports.selection_pool" in text


@pytest.mark.workflow
def test_the_workflow_stops_at_parse_time_naming_the_key(tmp_path):
    config = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    config["sae"]["grid"] = {"width": [16], "k": [32]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
           "--configfile", str(path), "--cores", "1"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "k=32 > width=16" in run.stdout + run.stderr
    assert not (tmp_path / "results").exists()  # nothing ran


def test_tables_refuse_selection_on_the_reported_pool():
    pg, *_ = _overall_fixture()
    with pytest.raises(ValueError, match="allow_selection_on_report_pool"):
        paper_tables.overall_table(pg, "d", ReportOptions(selection_pool="test", report_pool="test"))
    test_only = pg[pg["pool"] == "test"]
    with pytest.raises(ValueError, match="no groups of the 'valid' pool"):
        paper_tables.overall_table(test_only, "d", ReportOptions())
    with pytest.raises(ValueError, match="no groups of the 'train' pool"):
        paper_tables.overall_table(pg, "d", ReportOptions(report_pool="train"))


def test_allowed_selection_on_the_reported_pool_says_so():
    pg, sim_b, *_ = _overall_fixture()
    opts = ReportOptions(allow_selection_on_report_pool=True)
    test_only = pg[pg["pool"] == "test"]
    t = paper_tables.overall_table(test_only, "d", opts)
    assert any(n.startswith("WARNING") and "test groups" in n for n in t.notes)
    # chosen on test now: h256 (sim_b) beats h128 (sim_b / 2) on sim, as on the test values
    assert t.data.loc["SAE-Avg", ("sim", "com")] == pytest.approx(sim_b.mean())
    # the valid-selected table carries no warning
    assert not any(n.startswith("WARNING") for n in paper_tables.overall_table(pg, "d", ReportOptions()).notes)
