"""sagea.plan_compare: what the compare section of a config asks for."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from compare_fixtures import validated_config  # noqa: E402

from sagea import plan_compare  # noqa: E402


@pytest.fixture(scope="module")
def default_config(repo):
    return validated_config(repo / "config" / "config.yaml")


def test_default_config_compares_three_elsa_runs_and_the_sae_grid(default_config):
    runs = plan_compare.elsa_runs(default_config, "synthetic")
    assert list(runs) == ["f64-s42", "f32-s42", "f64-s43"]  # reference first; f64-s43 = noise floor
    members = plan_compare.sae_members(default_config, "synthetic")
    grid = ["topk-h128-k8-l2", "topk-h128-k16-l2", "topk-h256-k8-l2", "topk-h256-k16-l2"]
    assert list(members) == [f"f64-s42/{s}" for s in grid]  # the grid on the main run
    elsa, sae, hp = members["f64-s42/topk-h256-k16-l2"]
    assert (elsa, sae, hp["width"], hp["k"], hp["elsa_factors"]) == ("f64-s42", "topk-h256-k16-l2", 256, 16, 64)
    targets = plan_compare.targets(default_config)
    assert "results/synthetic/s42/compare/elsa.parquet" in targets
    assert "results/synthetic/s42/compare/sae_pairs.png" in targets and len(targets) == 9


def test_sae_elsa_runs_extend_and_validate(default_config):
    config = {**default_config, "compare": {**default_config["compare"], "sae_elsa_runs": ["f64-s43", "f64-s42"]}}
    members = plan_compare.sae_members(config, "synthetic")
    assert len(members) == 8  # the main run is not added twice
    assert list(members)[4] == "f64-s43/topk-h128-k8-l2" and members["f64-s43/topk-h128-k8-l2"][2]["elsa_seed"] == 43
    config["compare"]["sae_elsa_runs"] = ["f16-s1"]
    with pytest.raises(ValueError, match="compare.sae_elsa_runs"):
        plan_compare.sae_members(config, "synthetic")


def test_nothing_to_compare_gives_no_targets(default_config):
    config = {**default_config, "compare": {**default_config["compare"], "elsa": False, "sae": False}}
    assert plan_compare.targets(config) == []
