"""All-zero fused SAGEA codes, built by hand: the flag, its share in the summary, each fallback's list.

Stand-in models keep the arithmetic visible: ELSA encodes ``x A`` and decodes ``e Aᵀ``; the SAE's
code is ``relu(e)`` (feature f = ELSA factor f) and it decodes the code itself (mean 0, std 1).
So a member's code is the sum of its input items' rows of ``A`` and a group code ``c`` scores
item i with ``A[i] · c``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sagea.evaluation.group import GroupEvalSettings, evaluate_groups
from sagea.evaluation.outputs import write_strategy_outputs
from sagea.io import read_json
from sagea.recommenders.sagea import SageaRecommender

A = torch.tensor(
    [
        [1.0, 0.0, 0.0, 0.0],  # items 0-3: what the users hold
        [0.0, 2.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, 1.0],
        [0.9, 0.1, 0.3, 0.2],  # items 4-9: candidates only
        [0.1, 0.8, 0.2, 0.6],
        [0.2, 0.3, 0.9, 0.1],
        [0.5, 0.4, 0.1, 0.7],
        [0.3, 0.55, 0.4, 0.0],
        [0.0, 0.2, 0.4, 0.9],
    ],
    dtype=torch.float64,
)
#: users' items -> codes: u0 [1,0,0,0], u1 [0,2,1,0], u2 [1,0,0,0] + [0,1,0,1] = [1,1,0,1], u3 [0,1,0,1]
USERS = [[0], [1, 2], [0, 3], [3]]
K = 3


class LinearElsa:
    def encode(self, x):
        return x @ A

    def decode(self, e):
        return e @ A.T


class ReluSae:
    def encode(self, x, topk_inference=True):
        return x.clamp_min(0), torch.zeros(len(x), 1, dtype=x.dtype), torch.ones(len(x), 1, dtype=x.dtype)

    def decode(self, code, mean, std):
        return code * std + mean


def rows() -> sp.csr_matrix:
    dense = np.zeros((len(USERS), A.shape[0]))
    for u, items in enumerate(USERS):
        dense[u, items] = 1.0
    return sp.csr_matrix(dense)


def evaluate(groups, fusions, zero_fallback):
    # target ratio 0: no held-out items, so the inputs are the users' whole rows
    s = GroupEvalSettings(k=K, batch_groups=8, target_ratio=0.0, top_n=2, dtype=torch.float64)
    elsa = LinearElsa()
    strategies = [SageaRecommender(elsa, ReluSae(), f, 2, zero_fallback=zero_fallback) for f in fusions]
    return evaluate_groups(strategies, rows(), np.array(groups), s, np.ones(A.shape[0]), A.numpy(), elsa)


def expected_list(code, seen):
    """Unseen items by descending ``A[i] · code`` (ties -> lower index), the first K."""
    scores = A.numpy() @ np.asarray(code, dtype=float)
    candidates = [i for i in range(A.shape[0]) if i not in seen]
    return sorted(candidates, key=lambda i: (-scores[i], i))[:K]


def lists(result):
    recs = result.recommendations
    return [recs.loc[recs.group == g, "item"].tolist() for g in range(len(result.per_group))]


# group 0: u0 [1,0,0,0] and u1 [0,2,1,0] share no feature; group 1: u0 and u2 share feature 0
PAIRS = [[0, 1], [0, 2]]
SEEN = [{0, 1, 2}, {0, 3}]
# the fused code of each fusion and fallback, worked out by hand (rescaling keeps the ranking)
PAIR_CODES = {
    "common_features": {  # group 1: mean on feature 0 only
        "relax": ([0.5, 1.0, 0.5, 0.0], [1.0, 0, 0, 0]),  # every active feature is in 1 member: mean
        "average": ([0.5, 1.0, 0.5, 0.0], [1.0, 0, 0, 0]),
    },
    "min": {
        "relax": ([1.0, 2.0, 1.0, 0.0], [1.0, 0, 0, 0]),  # each feature's value in the member that has it
        "average": ([0.5, 1.0, 0.5, 0.0], [1.0, 0, 0, 0]),
    },
}


@pytest.mark.parametrize("fusion", ["common_features", "min"])
@pytest.mark.parametrize("zero_fallback", ["relax", "average"])
def test_disjoint_members_flagged_counted_and_fall_back(tmp_path, fusion, zero_fallback):
    result = evaluate(PAIRS, [fusion, "average"], zero_fallback)
    ours = result[fusion]
    np.testing.assert_array_equal(ours.per_group["ZeroFusedCode"], [1.0, 0.0])
    np.testing.assert_array_equal(result["average"].per_group["ZeroFusedCode"], [0.0, 0.0])
    expected = [expected_list(code, seen) for code, seen in zip(PAIR_CODES[fusion][zero_fallback], SEEN)]
    assert lists(ours) == expected
    summary = write_strategy_outputs(ours, tmp_path, {"zero_fallback": zero_fallback}, K)
    assert summary["metrics"]["ZeroFusedCode/share"] == 0.5
    assert read_json(tmp_path / "summary.json")["metrics"]["ZeroFusedCode/share"] == 0.5


def test_disjoint_pair_relax_equals_average():
    """Members without any shared feature: every active feature is "most shared" and has one
    member's value, so relax gives m × the mean code, the same direction as the average fusion."""
    result = evaluate(PAIRS, ["common_features", "min", "at_least_2_common_features", "average"], "relax")
    for fusion in ("common_features", "min", "at_least_2_common_features"):
        assert lists(result[fusion])[0] == lists(result["average"])[0] == [3, 5, 8], fusion  # by hand


def test_nan_fallback_lists_lowest_unseen_items_in_ascending_order():
    """Research behaviour (defect 5): 0/0 rescaling -> NaN scores -> the lowest-index unseen items."""
    result = evaluate(PAIRS, ["common_features", "min", "at_least_2_common_features"], "nan")
    for fusion, res in result.items():
        np.testing.assert_array_equal(res.per_group["ZeroFusedCode"], [1.0, 0.0], err_msg=fusion)
        got = lists(res)
        assert got[0] == [3, 4, 5], fusion  # items 0, 1, 2 are seen by group 0
        assert got[1] == expected_list([1.0, 0, 0, 0], SEEN[1]) == [4, 7, 8], fusion  # shared feature 0 only


def test_relax_uses_the_features_of_the_most_members():
    """u0 [1,0,0,0], u1 [0,2,1,0], u3 [0,1,0,1]: no feature in all three, feature 1 in two."""
    triple = [[0, 1, 3]]
    seen = {0, 1, 2, 3}
    for fallback, codes in {
        "relax": {"common_features": [0, 1.0, 0, 0], "min": [0, 1.0, 0, 0]},  # mean (0+2+1)/3; min(2, 1)
        "average": {"common_features": [1 / 3, 1.0, 1 / 3, 1 / 3], "min": [1 / 3, 1.0, 1 / 3, 1 / 3]},
    }.items():
        result = evaluate(triple, ["common_features", "min", "at_least_2_common_features"], fallback)
        assert lists(result["common_features"]) == {"relax": [[5, 8, 7]], "average": [[5, 7, 8]]}[fallback]
        for fusion, code in codes.items():
            assert result[fusion].per_group["ZeroFusedCode"].tolist() == [1.0]
            assert lists(result[fusion]) == [expected_list(code, seen)], (fallback, fusion)
        # feature 1 is active in two members: at_least_2 is not zero and needs no fallback
        assert result["at_least_2_common_features"].per_group["ZeroFusedCode"].tolist() == [0.0]
        assert lists(result["at_least_2_common_features"]) == [expected_list([0, 1.0, 0, 0], seen)]
