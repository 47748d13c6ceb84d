"""Batched group evaluation vs the per-group reference (tests/reference_group.py).

Tiny random cases in float64: groups of size 3 and 5, a group of two identical users plus an
empty user (ties, empty targets), duplicated item rows in ELSA (exact score ties), an SAE
with few active features (all-zero fused codes for ``common_features``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import reference_group as ref
from sagea.evaluation.group import GroupEvalSettings, evaluate_groups
from sagea.data.splits import group_target_masks
from sagea.models.elsa import ELSA
from sagea.models.sae import SAE
from sagea.scoring import item_popularity
from sagea.recommenders.sagea import SageaRecommender
from sagea.stages.evaluate import build_baselines

BASELINES = ("ELSA", "ELSA_INT", "ADD", "MUL", "LMS", "MPL", "GFAR", "EPFuzzDA", "POPULAR")
K = 6


def make_case(seed: int, n_users: int = 30, n_items: int = 40, size: int = 3, n_groups: int = 7):
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.35).astype(np.float64)
    dense[1] = dense[0]  # identical members -> tied member scores
    dense[2] = 0.0  # empty user: no inputs, no targets
    groups = np.stack([rng.choice(np.arange(3, n_users), size, replace=False) for _ in range(n_groups)])
    groups[0, :2] = [0, 1]
    groups[1, 0] = 2
    elsa = ELSA(n_items, 5, seed=seed).double()
    with torch.no_grad():
        elsa.encoder[7] = elsa.encoder[8]  # exact score ties between items 7 and 8
        elsa.encoder[20] = elsa.encoder[21]
    return dense, groups, elsa.eval()


def make_sae(d: int, h: int = 24, k: int = 3, seed: int = 0) -> SAE:
    sae = SAE(d, h, k=k, seed=seed).double()
    with torch.no_grad():
        sae.encoder_b.normal_(0, 0.3, generator=torch.Generator().manual_seed(seed))
        sae.decoder_b.normal_(0, 0.3, generator=torch.Generator().manual_seed(seed + 1))
    return sae.eval()


def settings(**kw) -> GroupEvalSettings:
    base = dict(k=K, batch_groups=3, target_ratio=0.5, split_seed=5, top_n=4, m=1, dtype=torch.float64)
    base.update(kw)
    return GroupEvalSettings(**base)


def reference_metrics(dense, groups, masks, lists, elsa, pop, s: GroupEvalSettings):
    A = elsa.encoder.detach().numpy()
    out = []
    for g, members in enumerate(groups):
        inputs, targets = ref.group_inputs_targets(dense, members, masks[g])
        seen = [any(x[i] > 0 for x in inputs) for i in range(dense.shape[1])]
        candidates = [i for i in range(len(seen)) if not seen[i]]
        personal = [ref.ranked(ref.elsa_scores(A, x), candidates, s.top_n) for x in inputs]
        out.append(
            ref.metrics_group(lists[g], targets, s.k, seen, pop, A, personal, s.m, 2 if s.hit_rate_needs_two else 1)
        )
    return out


def assert_metrics(per_group, expected):
    for col in expected[0]:
        ours = per_group[col].to_numpy()
        theirs = np.array([e[col] for e in expected])
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=col)


def run_reference_lists(dense, groups, masks, fn):
    lists = []
    for g, members in enumerate(groups):
        inputs, _ = ref.group_inputs_targets(dense, members, masks[g])
        seen = [any(x[i] > 0 for x in inputs) for i in range(dense.shape[1])]
        lists.append(fn(inputs, seen))
    return lists


@pytest.mark.parametrize("seed,size", [(0, 3), (1, 5), (2, 3)])
def test_baselines_match_reference(seed, size):
    dense, groups, elsa = make_case(seed, size=size)
    rows = sp.csr_matrix(dense)
    train = np.arange(10, 30)
    pop = item_popularity(rows, train)
    s = settings()
    results = evaluate_groups(build_baselines(BASELINES, elsa, pop), rows, groups, s, pop, elsa.encoder.detach().numpy(), elsa)
    masks = group_target_masks(groups, dense.shape[1], s.target_ratio, s.split_seed)
    A = elsa.encoder.detach().numpy()
    ref_pop = ref.popularity(dense, train)
    assert list(pop) == ref_pop
    for name in BASELINES:
        lists = run_reference_lists(dense, groups, masks, lambda x, seen: ref.baseline_group(A, x, seen, name, K, ref_pop))
        recs = results[name].recommendations
        ours = [recs.loc[recs.group == g, "item"].tolist() for g in range(len(groups))]
        assert ours == lists, name
        # seen items never recommended
        for g, members in enumerate(groups):
            inputs, _ = ref.group_inputs_targets(dense, members, masks[g])
            assert not any(any(x[i] > 0 for x in inputs) for i in ours[g]), name
        assert_metrics(results[name].per_group, reference_metrics(dense, groups, masks, lists, elsa, pop, s))


@pytest.mark.parametrize("topk_inference,normalize,zero_fallback", [
    (True, False, "relax"), (False, False, "relax"), (True, True, "relax"), (True, False, "average"),
    (True, False, "nan"),
])
@pytest.mark.parametrize("seed,size", [(3, 3), (4, 5)])
def test_sagea_fusions_match_reference(seed, size, topk_inference, normalize, zero_fallback):
    dense, groups, elsa = make_case(seed, size=size)
    sae = make_sae(5, seed=seed)
    rows = sp.csr_matrix(dense)
    pop = item_popularity(rows, np.arange(10, 30))
    s = settings()
    strategies = [SageaRecommender(elsa, sae, f, sae.k, topk_inference, normalize, zero_fallback) for f in ref.FUSIONS]
    results = evaluate_groups(strategies, rows, groups, s, pop, elsa.encoder.detach().numpy(), elsa)
    masks = group_target_masks(groups, dense.shape[1], s.target_ratio, s.split_seed)
    A = elsa.encoder.detach().numpy()
    zero_common = 0
    for fusion in ref.FUSIONS:
        out = run_reference_lists(
            dense, groups, masks,
            lambda x, seen: ref.sagea_group(A, sae, x, seen, fusion, K, sae.k, topk_inference, normalize, zero_fallback),
        )  # fmt: skip
        lists = [o[0] for o in out]
        recs = results[fusion].recommendations
        ours = [recs.loc[recs.group == g, "item"].tolist() for g in range(len(groups))]
        assert ours == lists, fusion
        per_group = results[fusion].per_group
        np.testing.assert_array_equal(per_group["CommonFeatures"].to_numpy(), [o[1] for o in out])
        np.testing.assert_array_equal(per_group["ZeroFusedCode"].to_numpy(), [float(o[2]) for o in out])
        zero_common += int((per_group["CommonFeatures"] == 0).sum())
        assert_metrics(per_group, reference_metrics(dense, groups, masks, lists, elsa, pop, s))
    if topk_inference:  # with TopK at inference (k=3 of 24) some groups share no feature
        assert zero_common > 0, "the case must include all-zero common_features codes"


def test_zero_fallback_rules():
    """All-zero common_features code: 'average' = the average fusion's list; 'nan' = defect 5.

    With k = 1 of 64 features a group's members share a feature only by chance: relax then
    uses the features of the most members, here all of them, i.e. the average fusion's code too.
    """
    dense, groups, elsa = make_case(7)
    sae = make_sae(5, h=64, k=1, seed=7)
    rows = sp.csr_matrix(dense)
    pop = item_popularity(rows, np.arange(10, 30))
    s = settings()
    emb = elsa.encoder.detach().numpy()
    strategies = [
        SageaRecommender(elsa, sae, "average", sae.k),
        SageaRecommender(elsa, sae, "common_features", sae.k, zero_fallback="average"),
    ]
    res = evaluate_groups(strategies, rows, groups, s, pop, emb, elsa)
    nan = evaluate_groups([SageaRecommender(elsa, sae, "common_features", sae.k, zero_fallback="nan")], rows, groups, s, pop, emb, elsa)
    zero = res["common_features"].per_group["CommonFeatures"].to_numpy() == 0
    assert zero.any()
    np.testing.assert_array_equal(res["common_features"].per_group["ZeroFusedCode"].to_numpy(), zero)
    assert not res["average"].per_group["ZeroFusedCode"].any()
    avg = res["average"].recommendations.groupby("group")["item"].apply(list)
    com = res["common_features"].recommendations.groupby("group")["item"].apply(list)
    nan_lists = nan["common_features"].recommendations.groupby("group")["item"].apply(list)
    masks = group_target_masks(groups, dense.shape[1], s.target_ratio, s.split_seed)
    for g in np.flatnonzero(zero):
        assert com[g] == avg[g]
        inputs, _ = ref.group_inputs_targets(dense, groups[g], masks[g])
        unseen = [i for i in range(dense.shape[1]) if not any(x[i] > 0 for x in inputs)]
        assert nan_lists[g] == unseen[:K]  # NaN scores: every candidate ties, lowest indices win


def test_research_switches_reproduce_defects():
    dense, groups, elsa = make_case(11)
    rows = sp.csr_matrix(dense)
    train = np.arange(10, 30)
    emb = elsa.encoder.detach().numpy()
    # defect 4: popularity over every interaction (targets included)
    pop_all = item_popularity(rows, train, with_targets=True)
    assert list(pop_all) == ref.popularity(dense, range(dense.shape[0]))
    assert not np.array_equal(pop_all, item_popularity(rows, train))
    # defect 3: one mask for every group; defect 1: hit needs two relevant items
    s = settings(shared_mask=True, hit_rate_needs_two=True)
    res = evaluate_groups(build_baselines(["ADD", "POPULAR"], elsa, pop_all), rows, groups, s, pop_all, emb, elsa)
    mask = ref.shared_mask(dense.shape[1], s.target_ratio, s.split_seed)
    masks = np.repeat(mask[None], len(groups), axis=0)
    np.testing.assert_array_equal(group_target_masks(groups, dense.shape[1], 0.5, 5, shared_mask=True), masks)
    A = emb
    for name in ("ADD", "POPULAR"):
        lists = run_reference_lists(dense, groups, masks, lambda x, seen: ref.baseline_group(A, x, seen, name, K, list(pop_all)))
        per_group = res[name].per_group
        assert_metrics(per_group, reference_metrics(dense, groups, masks, lists, elsa, pop_all, s))


def test_hand_computed_metrics():
    """One list checked against values worked out by hand."""
    from sagea.evaluation.group_metrics import group_metrics

    recs = np.array([[0, 1, 2, -1]])
    targets = np.zeros((1, 2, 5), dtype=bool)
    targets[0, 0, [0, 2]] = True  # member 0: hits at ranks 1, 3
    targets[0, 1, [2, 4]] = True  # member 1: hit at rank 3
    common = targets.all(1)  # item 2
    seen = np.zeros((1, 5), dtype=bool)
    seen[0, 3] = True
    pop = np.array([4.0, 2.0, 1.0, 0.0, 0.0])
    emb = np.array([[1.0, 0], [0, 1.0], [1.0, 1.0], [1, 0], [1, 0]])
    out = group_metrics(recs, targets, common, 4, seen, pop, emb / np.linalg.norm(emb, axis=1, keepdims=True))
    d = [1 / math.log2(r + 2) for r in range(4)]
    n0 = (d[0] + d[2]) / (d[0] + d[1])
    n1 = d[2] / (d[0] + d[1])
    assert out["NDCG4_com"][0] == pytest.approx(d[2] / d[0])
    assert out["NDCG4_mean"][0] == pytest.approx((n0 + n1) / 2)
    assert out["NDCG4_min_mean"][0] == pytest.approx(n1 / ((n0 + n1) / 2))
    assert out["NDCG4_jain"][0] == pytest.approx((n0 + n1) ** 2 / (2 * (n0**2 + n1**2)))
    assert out["P4_com"][0] == pytest.approx(1 / 4)
    assert out["R4_min"][0] == pytest.approx(1 / 2)
    assert out["Hit4_min"][0] == 1.0
    assert out["Popularity"][0] == pytest.approx((1 + 0.5 + 0.25) / 3)
    c = 1 / math.sqrt(2)
    assert out["RecommendationsSimilarity"][0] == pytest.approx((0 + c + c) / 3)
    assert out["GT_group"][0] == 1 and out["Candidates"][0] == 4
    assert out["GT_user"][0] == 4 and out["GT_user_mean"][0] == 2  # 2 + 2 held-out items: sum, mean
    assert out["ZeroRecall"][0] == 0.0
    two = group_metrics(recs, targets, common, 4, seen, pop, emb, min_hits=2)  # defect 1
    assert two["Hit4_com"][0] == 0.0 and two["Hit4_min"][0] == 0.0 and two["Hit4_mean"][0] == 0.5


def test_research_names_for_mlflow():
    import pandas as pd

    from sagea.stages.evaluate_mlflow import paper_group_type, research_note, run_params
    from sagea.evaluation.group_metrics import mlflow_metrics

    assert [paper_group_type(g) for g in ("similar_3", "similar_5", "divergent_3", "random_3", "opposing_2-1", "opposing_3-2")] == [
        "sim", "sim", "div", "random", "outlier", "opposing_3-2"
    ]
    assert research_note("l2", False, True) == "sizes_L2_without_acts_normalized"
    assert research_note("cosine", True, False) == "sizes_Cosine_with_acts"
    params = run_params("ml", "SAGEA", "wcom", "test", "similar_3", 3, 2048, 64, "n", True, False)
    assert set(params) == {"dataset", "recommender_strategy", "SAE_fusion_strategy", "group_type", "group_size",
                           "embedding_dim", "top_k", "note", "topk_inference", "normalize_users_embeddings",
                           "group_set", "group_kind", "user_set"}  # fmt: skip
    assert (params["group_type"], params["group_kind"], params["group_size"]) == ("sim", "similar", 3)
    opposing = run_params("ml", "ADD", None, "valid", "opposing_3-2", 5, 256, None, "n")
    assert (opposing["group_type"], opposing["group_set"], opposing["subgroup_sizes"]) == ("opposing_3-2", "opposing_3-2", "3-2")
    frame = pd.DataFrame({"group": [0, 1], "NDCG20_com": [0.2, 0.4], "NDCG20_mean": [0.5, 0.7], "NDCG20_min": [0.1, 0.3],
                          "NDCG20_min_mean": [0.2, np.nan], "P20_min": [0.1, 0.2], "Popularity": [0.5, 1.0], "Time": [1.0, 3.0],
                          "GT_user": [6.0, 9.0], "GT_user_mean": [2.0, 3.0], "ZeroFusedCode": [1.0, 0.0]})
    m = mlflow_metrics(frame, 20)
    assert m["CommonItemsNDCG20/mean"] == m["NDCG20_com"] == pytest.approx(0.3)
    assert m["NDCG20/mean"] == pytest.approx(0.6) and m["NDCG20/min"] == m["NDCG20_min"] == pytest.approx(0.2)
    assert m["NDCG20/min:mean"] == pytest.approx(0.2)  # NaN-aware mean
    assert m["P20_min"] == pytest.approx(0.15) and m["Popularity/mean"] == 0.75 and m["Time/mean"] == 2.0
    assert "NDCG20_mean/mean" not in m and "group/mean" not in m
    assert m["GT_user"] == 7.5 and m["GT_user_mean"] == 2.5
    assert m["ZeroFusedCode/share"] == 0.5 and "ZeroFusedCode/mean" not in m


def test_metric_conventions_when_every_member_scores_zero():
    """min:mean and min:max count 0 and Jain takes its minimum 1/m when every member's NDCG is 0;
    GT_user is the sum of the members' held-out counts (as the research code), GT_user_mean the mean."""
    from sagea.evaluation.group_metrics import group_metrics

    recs = np.array([[0, 1], [0, 1]])
    targets = np.zeros((2, 3, 6), dtype=bool)
    targets[0, 0, [2, 3]] = True  # group 0: nobody's targets in the list -> NDCG 0, 0, 0
    targets[0, 1, [4]] = True
    targets[0, 2, [2, 4, 5]] = True
    targets[1, 0, [0]] = True  # group 1: member 0 NDCG 1, members 1 and 2 NDCG 0
    targets[1, 1, [3]] = True
    common = targets.all(1)
    seen = np.zeros((2, 6), dtype=bool)
    emb = np.eye(6)
    out = group_metrics(recs, targets, common, 2, seen, np.ones(6), emb)
    np.testing.assert_array_equal(out["NDCG2_mean"], [0.0, 1 / 3])
    assert out["NDCG2_min_mean"][0] == 0.0 and out["NDCG2_min_max"][0] == 0.0
    assert out["NDCG2_jain"][0] == pytest.approx(1 / 3)
    assert out["NDCG2_min_mean"][1] == 0.0 and out["NDCG2_min_max"][1] == 0.0
    assert out["NDCG2_jain"][1] == pytest.approx(1 / 3)  # (1 + 0 + 0)² / (3 · 1): the same minimum
    np.testing.assert_array_equal(out["GT_user"], [2 + 1 + 3, 1 + 1 + 0])
    np.testing.assert_allclose(out["GT_user_mean"], [6 / 3, 2 / 3])
    for col, values in out.items():
        assert not np.isnan(values).any(), col  # every metric defined for every group of this case
