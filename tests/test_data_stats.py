"""Dataset statistics (sagea.analysis.calibration) on a hand-made matrix, and the synthetic default's
calibration against the real ml-latest-small."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import yaml

from sagea.analysis import calibration as S

ROOT = Path(__file__).resolve().parents[1]

# users x items (5 items, item 4 never used):
#   u0: {0, 1, 2}   u1: {1, 2, 3}   u2: {0}   u3: {1, 2}
SETS = [{0, 1, 2}, {1, 2, 3}, {0}, {1, 2}]


def tiny() -> sp.csr_matrix:
    rows = [u for u, s in enumerate(SETS) for _ in s]
    cols = [i for s in SETS for i in sorted(s)]
    return sp.csr_matrix((np.full(len(rows), 2.0), (rows, cols)), shape=(4, 5))  # any non-zero counts


def test_counts_gini_and_quantiles_by_hand():
    st = S.dataset_statistics(tiny(), n_pairs=10, n_groups=8, group_size=3, target_ratio=1.0, common_interactions=1)
    assert st["counts"] == {"users": 4, "items": 5, "interactions": 9, "density": pytest.approx(9 / 20)}
    # item counts 2, 3, 3, 1, 0 -> ascending 0, 1, 2, 3, 3: sum (2i - n - 1) x_i = 16; / (5 * 9)
    assert st["item_popularity_gini"] == pytest.approx(16 / 45)
    # user counts 3, 3, 1, 2 -> ascending 1, 2, 3, 3: (-3*1 - 1*2 + 1*3 + 3*3) / (4 * 9) = 7 / 36
    assert st["user_activity_gini"] == pytest.approx(7 / 36)
    # the top 10% of 5 items is 1 item (3 interactions of 9)
    assert st["top_decile_share"] == pytest.approx(3 / 9)
    pu = st["per_user"]
    assert (pu["min"], pu["max"], pu["mean"]) == (1, 3, 2.25)
    assert (pu["q25"], pu["q50"], pu["q75"]) == (pytest.approx(1.75), pytest.approx(2.5), pytest.approx(3.0))
    assert st["per_user_share"]["q50"] == pytest.approx(2.5 / 5)
    assert st["per_item"]["max"] == 3 and st["per_item"]["min"] == 0


def test_shared_and_common_items_by_hand():
    pairs = np.array(list(combinations(range(4), 2)))
    # (0,1): {1,2}  (0,2): {0}  (0,3): {1,2}  (1,2): {}  (1,3): {1,2}  (2,3): {}
    assert S.shared_items(tiny(), pairs).tolist() == [2, 1, 2, 0, 2, 0]
    # popularity 2, 3, 3, 1, 0: ranks by count, ties by item index
    assert S.popularity_rank(np.array([2, 3, 3, 1, 0])).tolist() == [2, 0, 1, 3, 4]


def test_pair_and_group_statistics_against_sets():
    """Pairs/groups drawn by the function, counted here with Python sets; with target_ratio 1 every
    item is held out, so common held-out items are the items all members hold."""
    st = S.dataset_statistics(
        tiny(), n_pairs=50, n_groups=40, group_size=3, target_ratio=1.0, common_interactions=1, top_items=1
    )
    pairs = S.random_sets(4, 50, 2, seed=[42, 1])
    shared = np.array([len(SETS[u] & SETS[v]) for u, v in pairs])
    assert st["pairs"]["mean"] == pytest.approx(shared.mean())
    assert st["pairs"]["share_ge1"] == pytest.approx((shared >= 1).mean())
    assert st["pairs"]["share_ge5"] == 0.0
    groups = S.random_sets(4, 40, 3, seed=[42, 2])
    assert all(len(set(g)) == 3 for g in groups)
    common = [set.intersection(*(SETS[u] for u in g)) for g in groups]
    counts = np.array([len(c) for c in common])
    g = st["groups"]
    assert g["common_mean"] == pytest.approx(counts.mean())
    assert g["common_targets_mean"] == pytest.approx(counts.mean())
    # only {0, 1, 3} shares items ({1, 2}); it passes "more than 1"
    assert g["share_passing"] == pytest.approx((counts > 1).mean())
    assert g["share_any"] == pytest.approx((counts >= 1).mean())
    # item 1 is the most popular (rank 0), item 2 rank 1: half of the common items are the top item
    assert g["targets_top_share"] == pytest.approx(0.5 if counts.any() else 0.0)
    assert g["targets_mean_rank_share"] == pytest.approx((0 + 1) / 2 / 5 if counts.any() else 0.0)


def test_group_mask_halves_the_common_items():
    """With the 50% group mask, common held-out items are the common items the group's mask keeps
    (the mask computed here straight from its definition: seed and sorted members)."""
    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((30, 40)) < 0.6).astype(np.float32))
    st = S.dataset_statistics(
        x, n_pairs=10, n_groups=25, group_size=3, target_ratio=0.5, common_interactions=2, seed=7
    )
    groups = S.random_sets(30, 25, 3, seed=[7, 2])
    dense = x.toarray() > 0
    expected = []
    for g in groups:
        mask = np.zeros(40, dtype=bool)
        mask[np.random.default_rng([7, *sorted(int(m) for m in g)]).permutation(40)[:20]] = True
        expected.append((dense[g].all(axis=0) & mask).sum())
    assert st["groups"]["common_targets_mean"] == pytest.approx(np.mean(expected))
    assert st["groups"]["share_passing"] == pytest.approx(np.mean(np.array(expected) > 2))
    assert st["groups"]["share_gt5"] == pytest.approx(np.mean(np.array(expected) > 5))


def test_random_sets_are_distinct_and_seeded():
    a = S.random_sets(5, 200, 4, seed=3)
    assert (np.sort(a, axis=1)[:, 1:] != np.sort(a, axis=1)[:, :-1]).all()
    assert (a == S.random_sets(5, 200, 4, seed=3)).all()
    with pytest.raises(ValueError, match="3 distinct users from 2"):
        S.random_sets(2, 1, 3)


def test_within_band():
    bands = {"a": ("rel", 0.25), "b": ("abs", 0.1)}
    assert S.within_band("a", 100, 124, bands) and not S.within_band("a", 100, 126, bands)
    assert S.within_band("b", 0.3, 0.39, bands) and not S.within_band("b", 0.3, 0.41, bands)
    assert S.within_band("c", 1, 2, bands) is None


def test_popularity_vs_personal_without_taste_signal():
    """Users who all hold the same items: nothing beyond popularity, and POP = EASE = perfect-ish."""
    x = sp.csr_matrix(np.tile((np.arange(30) < 10).astype(np.float32), (40, 1)))
    out = S.popularity_vs_personal(x, folds=4, ease_lambda=10.0)
    assert out["POP"] == pytest.approx(1.0)
    assert out["EASE"] == pytest.approx(1.0)


def test_synthetic_default_matches_real_movielens(ml_small):
    """The embedded default's generator lies in every calibration band around ml-latest-small
    (ratings >= 4, the MovieLens 50 / 20 filter)."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    spec = config["datasets"]["synthetic"]
    kwargs = {"common_interactions": config["groups"]["common_interactions"]}
    real = S.calibration_statistics(
        S.prepared_matrix({"source": "movielens", "release": "ml-latest-small"}, str(ml_small)), **kwargs
    )
    synthetic = S.calibration_statistics(S.prepared_matrix(spec, name="synthetic"), **kwargs)
    assert real["counts.users"] == 255 and real["counts.items"] == 510  # the known filtered size
    outside = {
        key: (real[key], synthetic[key])
        for key in S.CALIBRATION_BANDS
        if not S.within_band(key, real[key], synthetic[key])
    }
    assert not outside, f"outside the calibration bands (real, synthetic): {outside}"


def test_group_kinds_on_three_planted_blocks():
    """Three blocks of 30 users, each holding its own 15 items plus 2 random extras: similar groups
    stay in a block (about 7 of its 15 items fall in the 50% mask), divergent groups take one user
    per block (nothing in common but a rare extra), random groups are in between."""
    rng = np.random.default_rng(1)
    x = np.zeros((90, 45), dtype=np.float32)
    for b in range(3):
        x[30 * b : 30 * (b + 1), 15 * b : 15 * (b + 1)] = 1
    x[np.repeat(np.arange(90), 2), rng.integers(0, 45, 180)] = 1
    out = S.group_kind_statistics(sp.csr_matrix(x), n_groups=200, seed=3)
    assert set(out) == {"similar", "divergent", "random", "opposing"}
    assert out["similar"]["mean"] > 5 and out["similar"]["share_gt1"] == 1.0
    assert out["divergent"]["mean"] < 0.5 and out["divergent"]["share_gt5"] == 0.0
    assert out["divergent"]["mean"] < out["random"]["mean"] < out["similar"]["mean"]
    # opposing 2 + 1: the single member comes from another block
    assert out["opposing"]["share_gt5"] == 0.0
