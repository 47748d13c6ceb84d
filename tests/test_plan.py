"""Run ids, grids and group-set names derived from the config (sagea.plan)."""

import copy

import pytest
import yaml
from snakemake.utils import validate

from sagea import plan

SCHEMA = "workflow/schemas/config.schema.yaml"


@pytest.fixture()
def config(repo):
    cfg = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    validate(cfg, str(repo / SCHEMA))
    return cfg


def test_schema_fills_defaults(config):
    assert config["elsa"]["beta2"] == 0.99
    assert config["sae"]["base"]["aux_coef"] == 0.03125
    assert config["groups"]["split"]["target_ratio"] == 0.5
    assert config["evaluation"]["k"] == 20
    assert config["datasets"]["synthetic"]["split"]["seed"] == 42


def test_schema_rejects_unknown_key_and_bad_value(repo, config):
    bad = copy.deepcopy(config)
    bad["elsa"]["factorz"] = 3
    with pytest.raises(Exception, match="factorz"):
        validate(bad, str(repo / SCHEMA))
    bad = copy.deepcopy(config)
    bad["sae"]["base"]["variant"] = "dense"
    with pytest.raises(Exception, match="dense"):
        validate(bad, str(repo / SCHEMA))


def test_elsa_runs_main_first_and_readable(config):
    runs = plan.elsa_runs(config, "synthetic")
    assert list(runs) == ["f64-s42", "f32-s42", "f64-s43"]
    assert runs["f32-s42"]["batch_size"] == runs["f64-s42"]["batch_size"]
    config["elsa"]["extra_runs"] = [{"factors": 64, "lr": 0.001}, {"relu": False}]
    assert list(plan.elsa_runs(config, "synthetic")) == ["f64-s42", "f64-s42-lr0.001", "f64-s42-relu0"]


def test_dataset_override_changes_main_run_not_its_id(config):
    config["datasets"]["synthetic"]["elsa"] = {"batch_size": 64}
    runs = plan.elsa_runs(config, "synthetic")
    assert list(runs)[0] == "f64-s42"
    assert runs["f64-s42"]["batch_size"] == 64


def test_sae_grid_ids(config):
    runs = plan.sae_runs(config)
    assert list(runs) == ["topk-h128-k8-l2", "topk-h128-k16-l2", "topk-h256-k8-l2", "topk-h256-k16-l2"]
    hp = {**config["sae"]["base"], "width": 1024, "k": 32}
    hp.update(contrastive_coef=0.3, normalize=True, reconstruction_loss="cosine")
    assert plan.sae_id(hp) == "topk-h1024-k32-cosine-con0.3-norm"
    hp.update(seed=7, l1_coef=3e-4)
    assert plan.sae_id(hp) == "topk-h1024-k32-cosine-con0.3-s7-norm"


def test_group_sets_and_options(config):
    assert plan.group_sets(config) == ["similar_3", "divergent_3", "random_3", "opposing_2-1"]
    assert plan.parse_group_set("opposing_2-1") == ("opposing", [2, 1])
    assert plan.parse_group_set("similar_5") == ("similar", [5])
    with pytest.raises(ValueError, match="group set"):
        plan.parse_group_set("clique_3")
    assert plan.sagea_options(config) == ["ti1-nu0", "ti0-nu0"]
    assert plan.parse_option("ti0-nu1") == {"topk_inference": False, "normalize_users_embeddings": True}


@pytest.mark.parametrize(
    "name,value,ok",
    [
        ("elsa", "f256-s42", True),
        ("elsa", "f64-s42-lr0.001", True),
        ("elsa", "main", False),
        ("sae", "topk-h2048-k64-l2", True),
        ("sae", "batchtopk-h1024-k32-cosine-con0.3-norm", True),
        ("sae", "topk-h2048-k64", False),
        ("groupset", "opposing_2-1", True),
        ("groupset", "similar_3", True),
        ("groupset", "opposing_3", False),
        ("option", "ti1-nu0", True),
    ],
)
def test_wildcard_constraints(name, value, ok):
    import re

    assert bool(re.fullmatch(plan.WILDCARD_CONSTRAINTS[name], value)) is ok


def test_global_seed_fills_unset_stage_seeds_only(repo):
    cfg = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    cfg["seed"] = 7
    cfg["groups"]["seed"] = 3  # set explicitly: kept
    plan.apply_global_seed(cfg)
    validate(cfg, str(repo / SCHEMA))
    assert cfg["elsa"]["seed"] == 7 and cfg["sae"]["base"]["seed"] == 7
    assert cfg["groups"]["seed"] == 3 and cfg["groups"]["split"]["seed"] == 7
    assert cfg["datasets"]["synthetic"]["split"]["seed"] == 7
    assert cfg["datasets"]["synthetic"]["synthetic"]["seed"] == 7
    assert list(plan.elsa_runs(cfg, "synthetic"))[0] == "f64-s7"
    assert all(sae.endswith("-s7") for sae in plan.sae_runs(cfg))
    untouched = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    untouched.pop("seed")
    plan.apply_global_seed(untouched)
    validate(untouched, str(repo / SCHEMA))
    assert untouched["elsa"]["seed"] == 42


def test_research_mode_fills_unset_switches_and_keeps_explicit_ones():
    cfg = {"research_mode": True, "evaluation": {"research": {"hit_rate_needs_two": False}},
           "datasets": {"a": {"source": "synthetic"}}}  # fmt: skip
    plan.apply_research_mode(cfg)
    assert {key: cfg["evaluation"]["research"][key] for key in ("hit_rate_needs_two", "popularity_with_targets")} == {
        "hit_rate_needs_two": False, "popularity_with_targets": True}  # fmt: skip
    assert cfg["evaluation"]["sagea"]["zero_fallback"] == "nan"
    assert cfg["groups"]["split"]["shared_mask"] is True
    assert cfg["sae"]["base"]["early_stop_unit"] == "epochs"
    off = {"research_mode": False}
    assert plan.apply_research_mode(off) == {"research_mode": False}


def test_research_mode_training_and_baseline_switches(repo):
    """research_mode sets the training/baseline switches; the schema's defaults are our protocol."""
    cfg = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    cfg["research_mode"] = True
    cfg.setdefault("sae", {}).setdefault("base", {})["dead_rule"] = "at_least"  # explicit: kept
    plan.apply_research_mode(cfg)
    validate(cfg, str(repo / SCHEMA))
    assert cfg["elsa"]["research_validation"] is True and cfg["elsa"]["research_step_order"] is True
    base = cfg["sae"]["base"]
    assert (base["research_validation"], base["research_step_order"], base["dead_rule"]) == (True, True, "at_least")
    research = cfg["evaluation"]["research"]
    assert research["elsa_seen_at_zero"] is True and research["aggregation_seen_at_zero"] is True
    hp = plan.elsa_hp(cfg, "synthetic", plan.main_elsa(cfg, "synthetic"))
    assert hp["research_validation"] is True and hp["research_step_order"] is True
    assert "research" not in plan.main_elsa(cfg, "synthetic")  # the switches do not rename runs
    default = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    validate(default, str(repo / SCHEMA))
    assert (default["elsa"]["research_validation"], default["elsa"]["research_step_order"]) == (False, False)
    base = default["sae"]["base"]
    assert (base["research_validation"], base["research_step_order"], base["dead_rule"]) == (False, False, "at_least")
    research = default["evaluation"]["research"]
    assert (research["elsa_seen_at_zero"], research["aggregation_seen_at_zero"]) == (False, False)


def test_seed_and_research_mode_reach_the_default_dataset():
    cfg = {"seed": 7, "research_mode": True}
    plan.apply_global_seed(cfg)
    plan.apply_research_mode(cfg)
    spec = cfg["datasets"]["synthetic"]
    assert spec["split"]["seed"] == 7 and spec["synthetic"]["seed"] == 7
    assert spec["index_order"] == "appearance" and spec["split"]["method"] == "research"
