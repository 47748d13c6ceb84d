"""sagea.registry: the one list of fusion and baseline names, their implementations, and a fusion
added from this test module that runs through the evaluation stage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from evaluate_fixtures import write_upstream  # noqa: E402

from sagea import plan, registry  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
PAPER_FUSIONS = ["average", "square_average", "topk", "max", "min", "common_features", "at_least_2_common_features", "wcom"]
PAPER_BASELINES = ["ELSA", "ELSA_INT", "ADD", "MUL", "LMS", "MPL", "GFAR", "EPFuzzDA", "POPULAR"]


def test_the_registry_imports_without_the_heavy_libraries():
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'src')!r})\nimport sagea.registry, sagea.plan\n"
        "print(sorted(m for m in ('numpy', 'pandas', 'torch', 'scipy') if m in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_built_in_names_are_the_papers_and_the_config_defaults():
    assert list(registry.fusion_names())[:8] == PAPER_FUSIONS
    assert list(registry.baseline_names())[:9] == PAPER_BASELINES
    schema = yaml.safe_load(SCHEMA.read_text())["properties"]["evaluation"]["properties"]
    assert schema["baselines"]["default"] == PAPER_BASELINES
    assert schema["sagea"]["properties"]["fusions"]["default"] == PAPER_FUSIONS
    # the schema holds no second list of allowed names: they come from the registry
    assert "enum" not in schema["baselines"]["items"]
    assert "enum" not in schema["sagea"]["properties"]["fusions"]["items"]
    assert registry.shared_feature_fusions()[:3] == ("min", "common_features", "at_least_2_common_features")
    assert plan.WILDCARD_CONSTRAINTS["fusion"].split("|")[:8] == PAPER_FUSIONS


def test_every_built_in_fusion_on_a_hand_computed_case():
    torch = pytest.importorskip("torch")
    # one group, members (1, 0, 2) and (3, 0, 0): mean (2, 0, 1), features active in (2, 0, 1) members
    codes = torch.tensor([[[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]]])
    expected = {
        "average": [2, 0, 1],
        "square_average": [4, 0, 1],
        "topk": [2, 0, 0],  # k = 1
        "max": [3, 0, 2],
        "min": [1, 0, 0],
        "common_features": [2, 0, 0],
        "at_least_2_common_features": [2, 0, 0],
        "wcom": [4, 0, 1],
    }
    for name, want in expected.items():
        got = registry.build_fusion(name)(codes, 1)
        assert got.tolist() == [want], name


def test_every_built_in_baseline_builds_its_recommender():
    pytest.importorskip("torch")
    from sagea.recommenders.aggregation import ElsaMean, ElsaUnion, ScoreAggregation
    from sagea.recommenders.epfuzzda import EPFuzzDA
    from sagea.recommenders.gfar import GFAR
    from sagea.recommenders.popular import Popular

    class Stub:
        encoder = None

        def encode(self, x):
            return x

        def decode(self, e):
            return e

    kinds = {"ELSA": ElsaMean, "ELSA_INT": ElsaUnion, "ADD": ScoreAggregation, "MUL": ScoreAggregation,
             "LMS": ScoreAggregation, "MPL": ScoreAggregation, "GFAR": GFAR, "EPFuzzDA": EPFuzzDA, "POPULAR": Popular}
    for name, cls in kinds.items():
        built = registry.build_baseline(name, Stub(), np.ones(4), elsa_seen_at_zero=True, aggregation_seen_at_zero=True)
        assert type(built) is cls, name
    assert registry.build_baseline("ADD", Stub(), np.ones(4), aggregation_seen_at_zero=True).seen_at_zero is True
    assert registry.build_baseline("ADD", Stub(), np.ones(4)).seen_at_zero is False


def test_unknown_names_and_conflicts_are_refused_clearly():
    with pytest.raises(ValueError, match=r"unknown fusion 'nope' \(config evaluation.sagea.fusions\)"):
        registry.build_fusion("nope")
    with pytest.raises(ValueError, match=r"unknown baseline 'nope' \(config evaluation.baselines\)"):
        registry.build_baseline("nope", None, None)
    with pytest.raises(ValueError, match="already registered by sagea.recommenders.fusion:average"):
        registry.declare("fusion", "average", "somewhere.else:average")
    with pytest.raises(ValueError, match="declared with target sagea.recommenders.fusion:maximum"):
        registry.fusion("max")(lambda codes, k=None: codes.amax(dim=1))
    with pytest.raises(ValueError, match="module:attribute"):
        registry.declare("fusion", "x", "no_colon")
    with pytest.raises(ValueError, match="plain folder name"):
        registry.declare("baseline", "a/b", "m:a")


def test_the_config_check_uses_the_registered_names():
    config = {"evaluation": {"baselines": ["ADD"], "sagea": {"fusions": ["average", "max"]}},
              "reports": {"comparisons": [{"name": "c", "fusion": "topk"}]}}  # fmt: skip
    plan.check_strategies(config)
    with pytest.raises(ValueError, match=r"config evaluation.sagea.fusions: 'median' is not a registered fusion"):
        plan.check_strategies({"evaluation": {"sagea": {"fusions": ["median"]}}})
    with pytest.raises(ValueError, match=r"config evaluation.baselines: 'RANDOM' is not a registered baseline"):
        plan.check_strategies({"evaluation": {"baselines": ["RANDOM"]}})
    with pytest.raises(ValueError, match=r"config reports.comparisons\[0\].fusion: 'median'"):
        plan.check_strategies({"reports": {"comparisons": [{"name": "c", "fusion": "median"}]}})


# ----------------------------------------------------------------------------- a fusion added here
@registry.fusion("elementwise_max_test", summary="max over members, written another way (test only)")
def elementwise_max_test(codes, k=None):
    return codes.max(dim=1).values


def test_a_fusion_registered_here_is_a_valid_config_name():
    assert "elementwise_max_test" in registry.fusion_names()
    assert registry.entry("fusion", "elementwise_max_test").target == f"{__name__}:elementwise_max_test"
    plan.check_strategies({"evaluation": {"sagea": {"fusions": ["elementwise_max_test"]}}})


def test_a_fusion_registered_here_runs_through_the_evaluation_stage(tmp_path):
    pytest.importorskip("torch")
    from sagea.stages.evaluate import EvalInputs, EvalScope, SageaSettings, evaluate_sagea_job, group_eval_settings

    write_upstream(tmp_path)
    res = tmp_path / "results" / "synthetic" / "s42"
    base = res / "eval" / "test" / "similar_3" / "f8-s42" / "topk-h16-k4-l2" / "ti1-nu0"
    dirs = {f: base / f for f in ("average", "max", "elementwise_max_test")}
    inputs = EvalInputs(
        res / "data", res / "split.parquet", res / "groups" / "test" / "similar_3.parquet",
        res / "elsa" / "f8-s42" / "model.pt", res / "elsa" / "f8-s42" / "item_embeddings.parquet",
        res / "sae" / "f8-s42" / "topk-h16-k4-l2" / "model.pt",
    )  # fmt: skip
    summaries = evaluate_sagea_job(
        inputs, dirs, EvalScope("synthetic", "test", "similar_3", "f8-s42"),
        SageaSettings("topk-h16-k4-l2", {"width": 16, "k": 4, "reconstruction_loss": "l2", "variant": "topk"},
                      topk_inference=True, normalize_users_embeddings=False, zero_fallback="relax"),
        group_eval_settings({"k": 20, "batch_groups": 4}, device="cpu"),
    )  # fmt: skip
    assert set(summaries) == set(dirs)
    recs = {f: pd.read_parquet(d / "recommendations.parquet") for f, d in dirs.items()}
    # the same fused code as the built-in max, so the same lists; not the average's lists
    pd.testing.assert_frame_equal(recs["elementwise_max_test"], recs["max"])
    assert not recs["elementwise_max_test"].equals(recs["average"])
    per_group = pd.read_parquet(dirs["elementwise_max_test"] / "per_group.parquet")
    assert len(per_group) == 10 and per_group["NDCG20_com"].notna().all()
