"""Unit tests of the group recommenders: fusions by hand, stable top-k, greedy GFAR / EP-FuzzDA."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_group as ref
from sagea.scoring import minmax, stable_topk
from sagea.recommenders.epfuzzda import epfuzzda_select
from sagea.recommenders.fusion import fuse, normalize_members, relax, rescale
from sagea.recommenders.gfar import borda_candidates, gfar_select

CODES = torch.tensor([[[1.0, 0.0, 2.0, 0.0], [3.0, 1.0, 0.0, 0.0], [2.0, 0.0, 4.0, 0.0]]], dtype=torch.float64)


@pytest.mark.parametrize(
    "fusion,expected",
    [
        ("average", [2.0, 1 / 3, 2.0, 0.0]),
        ("square_average", [4.0, 1 / 9, 4.0, 0.0]),
        ("topk", [2.0, 0.0, 2.0, 0.0]),  # k = 2: the two largest means (a tie at 2.0, both kept)
        ("max", [3.0, 1.0, 4.0, 0.0]),
        ("min", [1.0, 0.0, 0.0, 0.0]),
        ("common_features", [2.0, 0.0, 0.0, 0.0]),
        ("at_least_2_common_features", [2.0, 0.0, 2.0, 0.0]),
        ("wcom", [6.0, 1 / 3, 4.0, 0.0]),
    ],
)
def test_fusions_by_hand(fusion, expected):
    np.testing.assert_allclose(fuse(CODES, fusion, k=2)[0].numpy(), expected)


def test_topk_fusion_tie_goes_to_lower_feature():
    codes = torch.tensor([[[1.0, 2.0, 2.0, 2.0]]])
    assert fuse(codes, "topk", k=2)[0].tolist() == [0.0, 2.0, 2.0, 0.0]


def test_rescale_to_members_mean_norm_and_zero_fallback():
    codes = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]])  # norms 5 and 1 -> target 3
    fused = torch.tensor([[0.0, 2.0, 0.0]])
    assert rescale(fused, codes)[0].tolist() == [0.0, 3.0, 0.0]
    zero = torch.zeros(1, 3)
    avg = fuse(codes, "average")
    out = rescale(zero, codes, fallback=avg, zero_fallback="average")
    assert torch.allclose(out.norm(), torch.tensor(3.0)) and torch.allclose(out / out.norm(), avg / avg.norm())
    assert torch.isnan(rescale(zero, codes, zero_fallback="nan")).all()  # defect 5
    assert rescale(zero, codes, fallback=zero, zero_fallback="relax")[0].tolist() == [0.0, 0.0, 0.0]  # stays zero
    with pytest.raises(ValueError, match="zero_fallback"):
        rescale(fused, codes, zero_fallback="bogus")


# member codes without a feature active in all three; features 1 and 3 are active in two
PARTLY_SHARED = torch.tensor([[[2.0, 0.0, 0.0, 1.0], [0.0, 3.0, 1.0, 0.0], [0.0, 1.0, 0.0, 2.0]]], dtype=torch.float64)
DISJOINT = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 2.0, 4.0]]], dtype=torch.float64)  # no feature in two members


@pytest.mark.parametrize(
    "codes,fusion,fused,relaxed",
    [
        # most-shared features: 1 and 3 (2 of 3 members); mean over all three members there
        (PARTLY_SHARED, "common_features", [0, 0, 0, 0], [0, 4 / 3, 0, 1]),
        # min over the members that have the feature: f1 min(3, 1), f3 min(1, 2)
        (PARTLY_SHARED, "min", [0, 0, 0, 0], [0, 1, 0, 1]),
        (PARTLY_SHARED, "at_least_2_common_features", [0, 4 / 3, 0, 1], [0, 4 / 3, 0, 1]),
        # disjoint members: every active feature is "most shared" (1 member)
        (DISJOINT, "common_features", [0, 0, 0], [0.5, 1, 2]),
        (DISJOINT, "at_least_2_common_features", [0, 0, 0], [0.5, 1, 2]),
        (DISJOINT, "min", [0, 0, 0], [1, 2, 4]),
        (DISJOINT, "max", [1, 2, 4], [1, 2, 4]),  # other fusions: unchanged
    ],
)
def test_relax_fallback_by_hand(codes, fusion, fused, relaxed):
    np.testing.assert_allclose(fuse(codes, fusion, k=2)[0].numpy(), fused)
    np.testing.assert_allclose(relax(codes, fusion, k=2)[0].numpy(), relaxed)


@pytest.mark.parametrize("fusion", ["average", "square_average", "topk", "max", "min", "common_features",
                                    "at_least_2_common_features", "wcom"])
def test_every_fusion_is_zero_for_all_zero_members_and_relax_keeps_zero(fusion):
    """Only members without any active feature make every fusion all-zero; relax has nothing to use."""
    zero = torch.zeros(1, 3, 4, dtype=torch.float64)
    assert not fuse(zero, fusion, k=2).any() and not relax(zero, fusion, k=2).any()
    one_active = zero.clone()
    one_active[0, 1, 2] = 0.5
    assert relax(one_active, fusion, k=2)[0, 2] > 0  # one active feature anywhere: relax uses it


def test_normalize_members_unit_norm_keeps_zero_codes():
    codes = torch.tensor([[[3.0, 4.0], [0.0, 0.0]]], dtype=torch.float64)
    assert normalize_members(codes)[0].tolist() == [[0.6, 0.8], [0.0, 0.0]]


def test_minmax_constant_rows_are_zero():
    assert minmax(torch.tensor([[2.0, 4.0, 3.0], [1.0, 1.0, 1.0]])).tolist() == [[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, -math.inf, math.nan]), min_size=1, max_size=25),
    st.integers(min_value=1, max_value=30),
)
def test_stable_topk_matches_sorted(values, k):
    x = torch.tensor([values])
    expected = ref.ranked(values, range(len(values)), k)
    expected = [i if values[i] != -math.inf else -1 for i in expected] + [-1] * max(0, k - len(values))
    assert stable_topk(x, k)[0].tolist() == expected


def _random_relevance(seed, b=6, m=3, n=40, levels=None):
    g = torch.Generator().manual_seed(seed)
    if levels:  # few distinct values -> many exact ties
        r = torch.randint(0, levels, (b, m, n), generator=g).double() / (levels - 1)
    else:
        r = torch.rand(b, m, n, generator=g, dtype=torch.float64)
    seen = torch.rand(b, n, generator=g) < 0.2
    return r, seen


@pytest.mark.parametrize("seed,levels", [(0, None), (1, 3), (2, 2), (3, None)])
@pytest.mark.parametrize("candidates", [2, 8, 1000])
def test_epfuzzda_matches_reference(seed, levels, candidates):
    """Pruned greedy (candidate set + exact fallback) equals the plain loop over all items."""
    r, seen = _random_relevance(seed, levels=levels)
    ours = epfuzzda_select(r, seen, 10, candidates=candidates)
    for g in range(r.shape[0]):
        cands = [i for i in range(r.shape[2]) if not seen[g, i]]
        expected = ref.epfuzzda_group(r[g].tolist(), cands, 10)
        assert ours[g].tolist() == expected


@pytest.mark.parametrize("seed,levels", [(0, None), (1, 3), (4, 2)])
@pytest.mark.parametrize("n_rel", [1, 5, 10])
def test_gfar_matches_reference(seed, levels, n_rel):
    """GFAR over the union of members' top-N (with the zero-gain fallback) equals the plain loop."""
    r, seen = _random_relevance(seed, levels=levels)
    items, p = borda_candidates(r, seen, n_rel)
    ours = gfar_select(items, p, seen, 12)
    for g in range(r.shape[0]):
        cands = [i for i in range(r.shape[2]) if not seen[g, i]]
        assert ours[g].tolist() == ref.gfar_group(r[g].tolist(), cands, 12, n_rel)


def test_greedy_pads_when_catalogue_runs_out():
    r = torch.rand(1, 2, 5, dtype=torch.float64)
    seen = torch.tensor([[True, False, True, False, True]])
    assert epfuzzda_select(r, seen, 4).tolist() == [ref.epfuzzda_group(r[0].tolist(), [1, 3], 4) + [-1, -1]]
    items, p = borda_candidates(r, seen, 3)
    assert gfar_select(items, p, seen, 4)[0, 2:].tolist() == [-1, -1]
