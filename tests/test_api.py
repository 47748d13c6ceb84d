"""sagea.api on a tiny evaluated study (tests/api_fixtures.py): listings, original ids, lists equal
to the evaluation's recommendations.parquet, new users, independent re-implementations, errors."""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch

from api_fixtures import BASELINES, ELSA_RUN, EVAL_K, FUSIONS, ODD_SAE_K, ODD_SAE_RUN, SAE_RUN, build_study, saved_lists
from sagea.api import Study, StudyError, parse_strategy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def rep_dir(tmp_path_factory):
    return build_study(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def study(rep_dir):
    return Study.open(rep_dir.parents[1])


def _rows(rep_dir) -> np.ndarray:
    frame = pd.read_parquet(rep_dir / "data" / "interactions.parquet")
    dense = np.zeros((frame["user"].max() + 1, 80), dtype=bool)
    dense[frame["user"], frame["item"]] = True
    return dense


def _topk(scores: np.ndarray, seen: np.ndarray, k: int) -> list[int]:
    """Independent top-k: unseen items by decreasing score, ties to the lower index."""
    candidates = np.flatnonzero(~seen)
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order][:k].tolist()


# ----------------------------------------------------------------------------- listings
def test_open_any_level_and_list(rep_dir, study):
    for path in (rep_dir.parents[1], rep_dir.parent, rep_dir):
        (rep,) = Study.open(path).replicates
        assert (rep.dataset, rep.rep, rep.path) == ("synthetic", "s42", rep_dir.resolve())
    assert study.elsa_runs()[["elsa", "factors", "n_items", "evaluated"]].values.tolist() == [[ELSA_RUN, 8, 80, True]]
    sae = study.sae_runs().set_index("sae")
    # k from the checkpoints: the odd folder's name says k9, its checkpoint k=2
    assert sae["k"].to_dict() == {SAE_RUN: 4, ODD_SAE_RUN: ODD_SAE_K}
    assert sae["width"].tolist() == [16, 16]
    assert study.group_sets().values.tolist() == [["test", "similar_3", 10, 3]]
    evals = study.evaluations()
    assert len(evals) == len(BASELINES) + 2 * len(FUSIONS)
    assert set(evals.loc[evals["sae"].notna(), "option"]) == {"ti1-nu0", "ti0-nu1"}
    summary = study.summary()[0]
    assert summary["evaluations"] == [{"pool": "test", "groupset": "similar_3", "elsa": ELSA_RUN,
                                       "strategies": len(BASELINES) + 2 * len(FUSIONS)}]  # fmt: skip
    assert study.replicate().sae_model(sae=ODD_SAE_RUN).k == ODD_SAE_K


def test_real_data_layout(rep_dir, tmp_path):
    """Real datasets keep their data once per dataset (results/<dataset>/data/), not per replicate."""
    import shutil

    dataset = tmp_path / "results" / "ml"
    shutil.copytree(rep_dir, dataset / "s42")
    shutil.move(dataset / "s42" / "data", dataset / "data")
    rep = Study.open(tmp_path / "results").replicate()
    assert (rep.dataset, rep.data_dir) == ("ml", (dataset / "data").resolve())
    moved = rep.recommend(users=["u1", "u2"], strategy="GFAR")
    pd.testing.assert_frame_equal(moved, Study.open(rep_dir).recommend(users=["u1", "u2"], strategy="GFAR"))


def test_parse_strategy():
    assert parse_strategy("sagea:average") == ("sagea", "average")
    assert parse_strategy("wcom") == ("sagea", "wcom")
    assert parse_strategy("gfar") == ("GFAR", None)
    with pytest.raises(StudyError, match="available: sagea:average.*GFAR"):
        parse_strategy("sagea:median")


# ----------------------------------------------------------------------------- ids
def test_original_ids_round_trip(study, rep_dir):
    rep = study.replicate()
    assert rep.user_index(["u7", "u0"]).tolist() == [7, 0]
    assert rep.item_index(["i3", "i79"]).tolist() == [3, 79]
    out = study.recommend(users=["u3", "u5"], strategy="ADD", k=7)
    assert list(out.columns) == ["rank", "item", "original_id", "title", "genres"]
    assert out["rank"].tolist() == list(range(7))
    assert (out["original_id"] == "i" + out["item"].astype(str)).all()
    assert (out["title"] == "Film " + out["item"].astype(str)).all()
    # feeding the original ids back as a new user gives that user's own items
    assert rep.item_index(out["original_id"]).tolist() == out["item"].tolist()
    # the members' items are never recommended
    assert not _rows(rep_dir)[[3, 5]][:, out["item"]].any()


# ----------------------------------------------------------------------------- same as the evaluation
OPTIONS = {"ti1-nu0": {}, "ti0-nu1": {"topk_inference": False, "normalize_users_embeddings": True}}


@pytest.mark.parametrize("strategy", [f"sagea:{f}" for f in FUSIONS] + BASELINES)
def test_group_set_equals_evaluation(study, rep_dir, strategy):
    """Given the group split's member inputs, the API's lists are the saved ones, group by group."""
    kind, fusion = parse_strategy(strategy)
    options = OPTIONS if fusion else {None: {}}
    for option, kw in options.items():
        folder = f"{SAE_RUN}/{option}/{fusion}" if fusion else f"baselines/{kind}"
        api = study.recommend_group_set("test", "similar_3", strategy=strategy, k=EVAL_K, sae=SAE_RUN, **kw)
        got = api[["group", "rank", "item"]].astype(np.int64).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, saved_lists(rep_dir, folder))
        # one group through recommend(inputs=...) and through the saved lists with original ids
        _, inputs = study.group_inputs("test", "similar_3", [6])
        one = study.recommend(inputs=inputs[0], strategy=strategy, k=EVAL_K, sae=SAE_RUN, **kw)
        assert one["item"].tolist() == got.loc[got["group"] == 6, "item"].tolist()
        saved = study.evaluation_lists("test", "similar_3", 6, strategy, sae=SAE_RUN, option=option)
        assert saved["original_id"].tolist() == one["original_id"].tolist()


def test_group_inputs_are_the_split_inputs(study, rep_dir):
    """Inputs are the members' rows minus one held-out item set per group (never kept by one member
    and held out from another), about half the items, drawn with the recorded split seed."""
    rows = _rows(rep_dir)
    members = pd.read_parquet(rep_dir / "groups" / "test" / "similar_3.parquet").sort_values(["group", "member"])
    ids, inputs = study.group_inputs("test", "similar_3")
    assert ids.tolist() == list(range(10)) and inputs.shape == (10, 3, 80)
    for g in range(10):
        full = rows[members.loc[members["group"] == g, "user"].to_numpy()]
        assert not (inputs[g] & ~full).any()
        held = (full & ~inputs[g]).any(axis=0)
        assert not (inputs[g][:, held]).any()
    _, other_seed = study.group_inputs("test", "similar_3", split_seed=42)
    assert (other_seed != inputs).any()  # the recorded seed (7) matters


# ----------------------------------------------------------------------------- independent checks
def test_full_rows_match_straightforward_baselines(study, rep_dir):
    rows = _rows(rep_dir)
    a = torch.load(rep_dir / "elsa" / ELSA_RUN / "model.pt", weights_only=True)["model_state_dict"]["encoder"]
    a = a.double().numpy()
    x = rows[[2, 9, 4]].astype(np.float64)
    seen = x.any(axis=0)
    # ELSA_INT: the union as one user, x A Aᵀ - x
    union = x.max(axis=0)
    expected = _topk(union @ a @ a.T - union, seen, 8)
    assert study.recommend(users=["u2", "u9", "u4"], strategy="ELSA_INT", k=8)["item"].tolist() == expected
    # ADD: sum of the members' min-max normalised scores
    scores = x @ a @ a.T - x
    rel = (scores - scores.min(1, keepdims=True)) / (scores.max(1, keepdims=True) - scores.min(1, keepdims=True))
    assert study.recommend(users=["u2", "u9", "u4"], strategy="ADD", k=8)["item"].tolist() == _topk(rel.sum(0), seen, 8)
    # POPULAR: training users' counts
    split = pd.read_parquet(rep_dir / "split.parquet")
    pop = rows[split.loc[split["split"] == "train", "user"]].sum(axis=0).astype(np.float64)
    assert study.recommend(users=["u2", "u9", "u4"], strategy="POPULAR", k=8)["item"].tolist() == _topk(pop, seen, 8)


def test_new_users_equal_existing_users_with_the_same_items(study, rep_dir):
    rows = _rows(rep_dir)
    items_of = lambda u: [f"i{i}" for i in np.flatnonzero(rows[u])]  # noqa: E731
    for strategy in ("sagea:average", "GFAR", "ELSA"):
        existing = study.recommend(users=["u1", "u2"], strategy=strategy, sae=SAE_RUN)
        new = study.recommend(new_users=[items_of(1), items_of(2)], strategy=strategy, sae=SAE_RUN)
        mixed = study.recommend(users=["u1"], new_users=[items_of(2)], strategy=strategy, sae=SAE_RUN)
        pd.testing.assert_frame_equal(new, existing)
        pd.testing.assert_frame_equal(mixed, existing)
        assert len(existing) == 20


# ----------------------------------------------------------------------------- errors
def test_errors_name_what_is_unknown_and_what_exists(study):
    with pytest.raises(StudyError, match=r"unknown user id\(s\) \['nobody'\].*users.parquet.*u0, u1"):
        study.recommend(users=["u1", "nobody"], strategy="ADD")
    with pytest.raises(StudyError, match=r"unknown item id\(s\) \['i999'\]"):
        study.recommend(new_users=[["i1", "i999"]], strategy="ADD")
    with pytest.raises(StudyError, match="unknown strategy 'BEST'.*sagea:wcom.*EPFuzzDA"):
        study.recommend(users=["u1"], strategy="BEST")
    with pytest.raises(StudyError, match=f"choose an SAE variant.*{SAE_RUN}, {ODD_SAE_RUN}"):
        study.recommend(users=["u1"], strategy="sagea:average")
    with pytest.raises(StudyError, match=f"unknown SAE variant 'nope'.*{SAE_RUN}"):
        study.recommend(users=["u1"], strategy="sagea:average", sae="nope")
    with pytest.raises(StudyError, match="unknown ELSA run 'f9-s1'.*f8-s42"):
        study.recommend(users=["u1"], strategy="ADD", elsa="f9-s1")
    with pytest.raises(StudyError, match="no group set test/divergent_3.*test/similar_3"):
        study.group_members("test", "divergent_3")
    with pytest.raises(StudyError, match=r"no group \[10\].*0..9"):
        study.recommend_group_set("test", "similar_3", group=10, strategy="ADD")
    with pytest.raises(StudyError, match=r"no replicate \*/s7.*available: synthetic/s42"):
        study.recommend(users=["u1"], strategy="ADD", replicate="s7")
    with pytest.raises(StudyError, match="needs members"):
        study.recommend(strategy="ADD")


# ----------------------------------------------------------------------------- explain wiring
def test_explain_passes_the_members_inputs(study, rep_dir, monkeypatch):
    """sagea.explain.explain_group is called with the models, the member rows and the options."""
    calls = []
    fake = types.ModuleType("sagea.explain")
    fake.explain_group = lambda *args, **kw: calls.append((args, kw)) or "explained"
    monkeypatch.setitem(sys.modules, "sagea.explain", fake)
    assert study.explain(users=["u4", "u8"], strategy="sagea:wcom", sae=ODD_SAE_RUN, n=7, n_features=3) == "explained"
    (args, kw), = calls
    elsa, sae, inputs, fusion, k_sae = args
    assert (fusion, k_sae) == ("wcom", ODD_SAE_K) and sae.k == ODD_SAE_K
    assert torch.equal(inputs, torch.from_numpy(_rows(rep_dir)[[4, 8]].astype(np.float32)))
    assert kw["n"] == 7 and kw["n_features"] == 3 and kw["zero_fallback"] == "relax" and kw["topk_inference"]
    assert kw["items"]["title"].iloc[5] == "Film 5" and kw["feature_labels"] is None
    with pytest.raises(StudyError, match="explanations need a SAGEA strategy"):
        study.explain(users=["u4"], strategy="ADD")


def test_saved_lists_carry_original_item_ids(rep_dir):
    """The evaluation writes each list's original item ids next to the indices (items are i<index>)."""
    files = sorted((rep_dir / "eval").rglob("recommendations.parquet"))
    assert len(files) == len(BASELINES) + 2 * len(FUSIONS)
    for path in files:
        recs = pd.read_parquet(path)
        assert list(recs.columns) == ["group", "rank", "item", "original_id"], path
        assert recs["original_id"].tolist() == [f"i{i}" for i in recs["item"]], path


# ----------------------------------------------------------------------------- the real explanations
def test_explain_lists_the_recommended_items_with_exact_contributions(study, rep_dir):
    """Study.explain with sagea.explain itself: the explained list is the API's (and so the
    evaluation's) list, and each item's feature contributions plus remainder give its score."""
    rep = study.replicate()
    ids, inputs = rep.group_inputs("test", "similar_3", groups=[2])
    assert ids.tolist() == [2]
    inputs = inputs[0]
    for fusion in ("average", "common_features"):
        got = study.explain(inputs=inputs, strategy=f"sagea:{fusion}", sae=SAE_RUN, n=EVAL_K, n_features=4)
        saved = saved_lists(rep_dir, f"{SAE_RUN}/ti1-nu0/{fusion}")
        assert got.items["item"].tolist() == saved[saved["group"] == 2]["item"].tolist()
        code = got.fused_code
        active = np.flatnonzero(code > 0)
        assert len(got.features) == min(4, len(active)) and set(got.features["feature"]) <= set(active)
        payload = got.to_dict()
        assert [row["item"] for row in payload["items"]] == got.items["item"].tolist()


# ----------------------------------------------------------------------------- a fusion registered here
def test_a_fusion_registered_in_a_test_module_runs_through_the_api(study):
    """Extension point: a fusion registered from this module is a SAGEA strategy of the API. It fuses
    like the built-in 'max' (written another way), so it must give max's lists and not average's."""
    from sagea import registry

    name = "api_test_elementwise_max"
    if name not in registry.fusion_names():

        @registry.fusion(name, summary="max over members, written another way (test only)")
        def api_test_elementwise_max(codes, k=None):
            return codes.max(dim=1).values

    users = ["u1", "u4", "u9"]
    mine = study.recommend(users=users, strategy=f"sagea:{name}", k=EVAL_K, sae=SAE_RUN)
    built_in = study.recommend(users=users, strategy="sagea:max", k=EVAL_K, sae=SAE_RUN)
    average = study.recommend(users=users, strategy="sagea:average", k=EVAL_K, sae=SAE_RUN)
    pd.testing.assert_frame_equal(mine, built_in)
    assert mine["item"].tolist() != average["item"].tolist()


def test_explain_names_the_members_holding_each_feature(study, rep_dir):
    """Members holding a feature are named by their original ids (new users as new:<i>), and a
    member holds a feature exactly when its own SAE code has it active."""
    rep = study.replicate()
    got = study.explain(users=["u2", "u6"], new_users=[["i1", "i4", "i9"]], strategy="sagea:average", sae=SAE_RUN,
                        n=EVAL_K, n_features=6)  # fmt: skip
    rows = torch.from_numpy(rep.member_rows(["u2", "u6"], [["i1", "i4", "i9"]]).astype(np.float32))
    sae, elsa = rep.sae_model(sae=SAE_RUN), rep.elsa_model()
    with torch.no_grad():
        codes = sae.encode(elsa.encode(rows))[0].numpy()
    names = ["u2", "u6", "new:0"]
    for feature, ids in zip(got.features["feature"], got.features["member_ids"]):
        assert ids == [names[m] for m in range(3) if codes[m, feature] > 0]
