"""Unit tests of sagea.analysis.compare: hand-checkable cases and independent implementations."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import procrustes as scipy_procrustes

from sagea.analysis import compare as C
from sagea.analysis import compare_report as R


def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d))


def orthogonal(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# ----------------------------------------------------------------------------- independent implementations
def brute_knn_sets(x: np.ndarray, k: int) -> list[set[int]]:
    """Cosine neighbours by a plain loop and a full sort."""
    sets = []
    for i in range(len(x)):
        sims = [
            (x[i] @ x[j]) / (np.linalg.norm(x[i]) * np.linalg.norm(x[j])) if j != i else -np.inf
            for j in range(len(x))
        ]
        sets.append(set(np.argsort(sims)[::-1][:k].tolist()))
    return sets


def hsic_cka(a: np.ndarray, b: np.ndarray) -> float:
    """CKA from HSIC(K, L) = tr(K H L H) with explicit centring matrix H and linear kernels."""
    n = len(a)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = a @ a.T, b @ b.T

    def hsic(p, q):
        return np.trace(p @ h @ q @ h)

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


# ----------------------------------------------------------------------------- dense: hand cases
def test_identical_spaces_score_one():
    a = gaussian(120, 6, 0)
    scores = C.compare_spaces(a, a.copy(), k=5, seed=1)
    assert scores["knn_jaccard"] == 1.0 and scores["knn_jaccard_std"] == 0.0
    assert scores["cka"] == pytest.approx(1.0, abs=1e-12)
    assert scores["procrustes_residual"] == pytest.approx(0.0, abs=1e-12)
    assert scores["cca"] == pytest.approx(1.0, abs=1e-9)


def test_rotated_and_scaled_space_keeps_every_measure():
    a = gaussian(150, 8, 1)
    b = 3.0 * a @ orthogonal(8, 2)
    scores = C.compare_spaces(a, b, k=7, seed=3)
    assert scores["knn_jaccard"] == pytest.approx(1.0)
    assert scores["cka"] == pytest.approx(1.0, abs=1e-10)
    assert scores["procrustes_residual"] == pytest.approx(0.0, abs=1e-10)
    assert scores["cca"] == pytest.approx(1.0, abs=1e-8)


def test_rotation_into_wider_space_is_still_identical():
    """An isometric embedding into more dimensions (columns of a semi-orthogonal matrix)."""
    a = gaussian(100, 4, 4)
    b = a @ orthogonal(9, 5)[:4]  # [4, 9] with orthonormal rows
    scores = C.compare_spaces(a, b, k=5)
    assert scores["knn_jaccard"] == pytest.approx(1.0)
    assert scores["cka"] == pytest.approx(1.0, abs=1e-10)
    assert scores["procrustes_residual"] == pytest.approx(0.0, abs=1e-10)
    assert np.isnan(scores["cca"])  # widths differ: not reported


def test_knn_overlap_hand_case():
    # Points on a line through the origin's far side: cosine neighbours are fixed by angle.
    angles_a = np.array([0.0, 0.1, 0.2, 1.5, 1.6, 3.0])
    angles_b = np.array([0.0, 0.1, 1.55, 0.2, 1.6, 3.0])  # items 2 and 3 swap places
    a = np.c_[np.cos(angles_a), np.sin(angles_a)]
    b = np.c_[np.cos(angles_b), np.sin(angles_b)]
    na = C.knn_indices(a, 1)
    nb = C.knn_indices(b, 1)
    # nearest neighbours: a: 0->1, 1->{0 or 2: 0.1 both}, ...; compare only unambiguous rows
    assert na[0, 0] == 1 and nb[0, 0] == 1
    assert na[5, 0] == 4 and nb[5, 0] == 4
    # row 4: a -> 3 (0.1 away); b -> 2 (0.05 away): disjoint, Jaccard 0
    assert na[4, 0] == 3 and nb[4, 0] == 2
    jac = C.neighbour_jaccard(na, nb)
    assert jac[0] == 1.0 and jac[4] == 0.0


def test_neighbour_jaccard_by_hand():
    na = np.array([[0, 1, 2], [5, 6, 7]])
    nb = np.array([[2, 1, 9], [8, 9, 4]])
    # row 0: ∩ = {1, 2} (2), ∪ = 4 -> 0.5; row 1: disjoint -> 0
    np.testing.assert_allclose(C.neighbour_jaccard(na, nb), [0.5, 0.0])


@pytest.mark.parametrize("chunk_size", [7, 1000])
def test_knn_overlap_matches_brute_force(chunk_size):
    a = gaussian(60, 5, 6)
    b = a + 0.4 * gaussian(60, 5, 7)
    k = 4
    sa, sb = brute_knn_sets(a, k), brute_knn_sets(b, k)
    expected = np.array([len(x & y) / len(x | y) for x, y in zip(sa, sb)])
    np.testing.assert_allclose(C.knn_overlap(a, b, k, chunk_size=chunk_size), expected)
    queries = np.array([3, 10, 59])
    np.testing.assert_allclose(C.knn_overlap(a, b, k, queries=queries, chunk_size=2), expected[queries])


def test_cka_matches_hsic_formula_with_centring_matrix():
    a, b = gaussian(40, 5, 8), gaussian(40, 3, 9)
    b = b + a[:, :3]
    assert C.linear_cka(a, b) == pytest.approx(hsic_cka(a, b), rel=1e-10)


def test_procrustes_matches_scipy_disparity():
    a = gaussian(50, 4, 10)
    b = a @ orthogonal(4, 11) + 0.5 * gaussian(50, 4, 12) + 2.0
    _, _, disparity = scipy_procrustes(a, b)
    assert C.procrustes_residual(a, b) == pytest.approx(disparity, rel=1e-10)
    # different widths = the narrower padded with zero columns
    c = gaussian(50, 2, 13)
    _, _, disparity = scipy_procrustes(a, np.c_[c, np.zeros((50, 2))])
    assert C.procrustes_residual(a, c) == pytest.approx(disparity, rel=1e-10)


def test_orthogonal_map_recovers_rotation():
    a = gaussian(80, 6, 14)
    q = orthogonal(6, 15)
    np.testing.assert_allclose(C.orthogonal_map(a, a @ q), q, atol=1e-10)


def test_cca_heldout_recovers_known_canonical_correlation():
    """b_j = ρ a_j + sqrt(1-ρ²) noise_j per column: every canonical correlation is ρ."""
    n, d, rho = 4000, 3, 0.6
    a = gaussian(n, d, 16)
    b = rho * a + np.sqrt(1 - rho**2) * gaussian(n, d, 17)
    b = b @ orthogonal(d, 18)  # mixing must not matter
    assert C.cca_heldout(a, b, seed=0) == pytest.approx(rho, abs=0.04)


def test_cca_heldout_is_not_inflated_on_random_spaces():
    a, b = gaussian(200, 20, 19), gaussian(200, 20, 20)
    # in-sample CCA of 100 rows x 20 columns would be far above zero; held out it is ~0
    assert abs(C.cca_heldout(a, b, seed=1)) < 0.1
    assert np.isnan(C.cca_heldout(gaussian(30, 20, 1), gaussian(30, 20, 2), seed=0))


# ----------------------------------------------------------------------------- dense: chance levels
def test_knn_overlap_chance_against_simulation():
    n, k = 50, 5
    rng = np.random.default_rng(21)
    sims = []
    for _ in range(20000):
        x = set(rng.choice(n - 1, k, replace=False).tolist())
        y = set(rng.choice(n - 1, k, replace=False).tolist())
        sims.append(len(x & y) / len(x | y))
    assert C.knn_overlap_chance(n, k) == pytest.approx(np.mean(sims), abs=0.003)
    # hand value for k = 1: the single neighbours agree with probability 1/(n-1)
    assert C.knn_overlap_chance(11, 1) == pytest.approx(0.1)


def test_random_spaces_score_near_chance():
    n, d, k = 600, 12, 10
    vals = [C.compare_spaces(gaussian(n, d, 2 * s), gaussian(n, d, 2 * s + 1), k=k, seed=s) for s in range(3)]
    chance = C.dense_chance(n, d, d, k)
    knn = np.mean([v["knn_jaccard"] for v in vals])
    cka = np.mean([v["cka"] for v in vals])
    assert knn == pytest.approx(chance["knn_jaccard"], rel=0.25)  # ~0.0091
    assert cka == pytest.approx(chance["cka"], rel=0.3)  # ~0.019
    assert all(abs(v["cca"]) < 0.05 for v in vals)
    # Procrustes of independent spaces: 1 - (Σσ)² with Σσ ≈ (8/3π) sqrt(d/n) -> about 0.986
    assert all(0.95 < v["procrustes_residual"] <= 1.0 for v in vals)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 10.0))
def test_rotation_invariance_property(seed, scale):
    a = gaussian(30, 4, seed)
    b = gaussian(30, 3, seed + 1)
    q = orthogonal(4, seed + 2)
    assert C.linear_cka(a @ q * scale, b) == pytest.approx(C.linear_cka(a, b), rel=1e-8)
    assert C.procrustes_residual(a @ q * scale, b) == pytest.approx(C.procrustes_residual(a, b), abs=1e-10)


# ----------------------------------------------------------------------------- dictionaries
def dictionary(h: int, d: int, seed: int) -> np.ndarray:
    return C.unit_rows(gaussian(h, d, seed))


def random_codes(n: int, h: int, k: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    cols = np.argsort(rng.random((n, h)), axis=1)[:, :k]
    return sp.csr_matrix((rng.random(n * k) + 0.1, (np.repeat(np.arange(n), k), cols.ravel())), shape=(n, h))


def test_permuted_dictionary_matches_fully():
    da = dictionary(40, 10, 30)
    perm = np.random.default_rng(31).permutation(40)
    ca = random_codes(300, 40, 5, 32)
    scores = C.compare_dictionaries(da, 2.5 * da[perm], ca, ca[:, perm], threshold=0.99)
    for name, value in scores.items():
        assert value == pytest.approx(1.0), name
    _, _, rows, cols = C.hungarian_match(C.cosine_matrix(da, da[perm]), 0.9)
    np.testing.assert_array_equal(perm[cols], rows)  # the matching recovers the permutation


def test_dictionary_measures_against_loops():
    da, db = dictionary(7, 4, 33), dictionary(5, 4, 34)
    cos = np.array([[a @ b for b in db] for a in da])
    scores = C.compare_dictionaries(da, db, threshold=0.5)
    assert scores["decoder_mmcs_ab"] == pytest.approx(np.mean([max(r) for r in cos]))
    assert scores["decoder_mmcs_ba"] == pytest.approx(np.mean([max(c) for c in cos.T]))
    # Hungarian by brute force over all injective assignments of the 5 columns into the 7 rows
    best = max(itertools.permutations(range(7), 5), key=lambda rows: sum(cos[r, j] for j, r in enumerate(rows)))
    matched = np.array([cos[r, j] for j, r in enumerate(best)])
    assert scores["decoder_hungarian"] == pytest.approx(matched.mean())
    assert scores["decoder_matched_share"] == pytest.approx((matched >= 0.5).mean())
    assert np.isnan(scores["activation_hungarian"])


def test_activation_correlation_matches_corrcoef():
    ca, cb = random_codes(200, 6, 2, 35), random_codes(200, 4, 2, 36)
    cb = sp.csr_matrix(cb.toarray() + ca.toarray()[:, :4])
    ca = sp.csr_matrix(np.c_[ca.toarray(), np.zeros(200)])  # a dead feature correlates 0
    expected = np.corrcoef(ca.toarray()[:, :6].T, cb.toarray().T)[:6, 6:]
    got = C.activation_correlation(ca, cb)
    np.testing.assert_allclose(got[:6], expected, atol=1e-10)
    np.testing.assert_array_equal(got[6], 0.0)


def test_codes_matrix_from_long_form():
    codes = pd.DataFrame({"user": [5, 5, 9, 2], "feature": [0, 3, 1, 3], "value": [1.0, 2.0, 3.0, 4.0]})
    m = C.codes_matrix(codes, np.array([9, 5]), 4).toarray()
    np.testing.assert_array_equal(m, [[0, 3, 0, 0], [1, 0, 0, 2]])
    with pytest.raises(ValueError, match="feature 3"):
        C.codes_matrix(codes, np.array([5]), 3)


def test_random_dictionary_scores_far_below_a_match():
    da = dictionary(64, 16, 37)
    scores = C.compare_dictionaries(da, C.random_dictionary(64, 16, 38), threshold=0.7)
    assert scores["decoder_matched_share"] < 0.1
    assert scores["decoder_hungarian"] < 0.6


def complement_rotation(d: int, seed: int) -> np.ndarray:
    """An orthogonal map fixing the all-ones direction (so per-vector standardisation commutes with it)."""
    ones = np.ones((d, 1)) / np.sqrt(d)
    basis = np.linalg.qr(np.c_[ones, gaussian(d, d - 1, seed)])[0][:, 1:]
    return basis @ orthogonal(d - 1, seed + 1) @ basis.T + ones @ ones.T


def test_dictionaries_on_rotated_elsa_runs_are_aligned_first():
    d, h, n = 8, 12, 400
    users_a = C.standardise_rows(gaussian(n, d, 40))
    q = complement_rotation(d, 41)
    np.testing.assert_allclose(C.standardise_rows(users_a @ q), users_a @ q, atol=1e-6)
    da = dictionary(h, d, 42)
    perm = np.random.default_rng(43).permutation(h)
    frame = pd.DataFrame(
        {"user": np.repeat(np.arange(n), 3), "feature": np.tile([0, 1, 2], n), "value": np.arange(3 * n) % 7 + 1.0}
    )
    frame_b = frame.assign(feature=np.argsort(perm)[frame["feature"]])
    hps = {"a": {"elsa_seed": 1, "width": h}, "b": {"elsa_seed": 2, "width": h}}
    table = C.compare_sae_dictionaries(
        {"a": da, "b": (da @ q)[perm]},
        {"a": frame, "b": frame_b},
        hps,
        {"a": "e1", "b": "e2"},
        {"e1": users_a, "e2": users_a @ q},
        threshold=0.99,
    )
    got = table[table["kind"] == "compared"].set_index("measure")["value"]
    for name in ("decoder_mmcs_ab", "decoder_mmcs_ba", "decoder_hungarian", "decoder_matched_share"):
        assert got[name] == pytest.approx(1.0, abs=1e-6), name
    # 3 of the 12 features are active and match with correlation 1; dead features correlate 0
    assert got["activation_hungarian"] == pytest.approx(3 / 12)
    assert got["activation_matched_share"] == pytest.approx(3 / 12)
    # without alignment the rotated dictionary does not match
    plain = C.compare_dictionaries(da, (da @ q)[perm], threshold=0.99)
    assert plain["decoder_matched_share"] < 0.5
    # runs differing only in an ELSA seed form a noise-floor pair
    assert set(table["kind"]) == {"compared", "seed", "random"}
    with pytest.raises(ValueError, match="user embeddings"):
        C.compare_sae_dictionaries({"a": da, "b": da}, {"a": frame, "b": frame}, hps, {"a": "e1", "b": "e2"})


# ----------------------------------------------------------------------------- studies and bookkeeping
def test_seed_pairs_and_labels():
    hps = {
        "f64-s42": {"factors": 64, "seed": 42},
        "f32-s42": {"factors": 32, "seed": 42},
        "f64-s43": {"factors": 64, "seed": 43},
        "f32-s7": {"factors": 32, "seed": 7},
    }
    assert C.seed_pairs(hps) == [("f64-s42", "f64-s43"), ("f32-s42", "f32-s7")]
    assert C.varied_label(hps["f64-s42"], hps["f32-s7"]) == "factors=32, seed=7"
    assert C.varied_label(hps["f64-s42"], hps["f64-s42"]) == "identical"


def test_compare_elsa_runs_table():
    base = gaussian(200, 6, 50)
    embeddings = {
        "f6-s42": base,
        "f4-s42": base[:, :4] + 0.3 * gaussian(200, 4, 51),
        "f6-s43": base @ orthogonal(6, 52),  # a seed rerun that only rotated the space
    }
    hps = {"f6-s42": {"factors": 6, "seed": 42}, "f4-s42": {"factors": 4, "seed": 42}, "f6-s43": {"factors": 6, "seed": 43}}
    table = C.compare_elsa_runs(embeddings, hps, k=5, seed=0, chunk_size=64, knn_queries=150)
    assert list(table.columns) == C.RESULT_COLUMNS
    comp = table[table["kind"] == "compared"].set_index(["b", "measure"])
    # the seed pair is identical up to rotation: it is also the noise floor of every compared pair
    assert comp.loc[("f6-s43", "cka"), "value"] == pytest.approx(1.0)
    assert comp.loc[("f4-s42", "cka"), "noise_floor"] == pytest.approx(1.0)
    assert comp.loc[("f4-s42", "knn_jaccard"), "noise_floor"] == pytest.approx(1.0)
    direct = C.compare_spaces(base, embeddings["f4-s42"], k=5)
    assert comp.loc[("f4-s42", "cka"), "value"] == pytest.approx(direct["cka"])
    assert comp.loc[("f4-s42", "cka"), "varied"] == "factors=4"
    # random baselines sit near the analytic chance level
    rnd = comp.loc[("f4-s42", "knn_jaccard")]
    assert rnd["random_baseline"] < 0.1 and rnd["chance"] == pytest.approx(C.knn_overlap_chance(200, 5))
    assert (table["kind"] == "random").sum() == 2 * len(C.DENSE_MEASURES)
    with pytest.raises(ValueError, match="row counts"):
        C.compare_elsa_runs({"a": base, "b": base[:10]}, {"a": {}, "b": {}})


def test_report_table_and_figures(tmp_path):
    base = gaussian(100, 4, 60)
    embeddings = {"f4-s1": base, "f4-s2": base + 0.1 * gaussian(100, 4, 61), "f8-s1": gaussian(100, 8, 62)}
    hps = {"f4-s1": {"factors": 4, "seed": 1}, "f4-s2": {"factors": 4, "seed": 2}, "f8-s1": {"factors": 8, "seed": 1}}
    table = C.compare_elsa_runs(embeddings, hps, k=3)
    wide = R.summary_table(table)
    assert list(wide["b"]) == ["f4-s2", "f8-s1"]
    row = table[(table["kind"] == "compared") & (table["b"] == "f8-s1") & (table["measure"] == "cka")].iloc[0]
    assert wide.loc[1, "cka"] == row["value"] and wide.loc[1, "cka_random"] == row["random_baseline"]
    md = R.markdown_table(table)
    assert md.count("\n| f4-s1 |") == 2 and f"{row['value']:.3f} (" in md
    R.write_report(table, tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.png", tmp_path / "p.png")
    assert pd.read_csv(tmp_path / "t.csv").shape[0] == 2
    assert (tmp_path / "t.png").stat().st_size > 1000 and (tmp_path / "p.png").stat().st_size > 1000


def test_pairwise_figure_puts_directional_measures_row_to_column():
    decoders = {"s1": dictionary(6, 4, 70), "s2": dictionary(12, 4, 71)}
    codes = {
        name: pd.DataFrame({"user": np.arange(20).repeat(2), "feature": np.tile([0, 1], 20), "value": np.arange(40.0) % 5})
        for name in decoders
    }
    hps = {"s1": {"width": 6}, "s2": {"width": 12}}
    table = C.compare_sae_dictionaries(decoders, codes, hps, {"s1": "e", "s2": "e"})
    fig = R.pairwise_figure(table, title="my title")
    assert fig._suptitle.get_text() == "my title"
    ax = next(a for a in fig.axes if a.get_title() == "decoder mean max cosine row→column")
    mat = ax.images[0].get_array()
    value = table.set_index(["kind", "measure"])["value"]
    assert mat[0, 1] == pytest.approx(value[("compared", "decoder_mmcs_ab")])
    assert mat[1, 0] == pytest.approx(value[("compared", "decoder_mmcs_ba")])
    assert value[("compared", "decoder_mmcs_ab")] > value[("compared", "decoder_mmcs_ba")]  # narrow -> wide finds partners
