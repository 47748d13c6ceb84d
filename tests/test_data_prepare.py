"""Filtering, re-indexing, card, split and the synthetic generator against hand-computed values."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sagea.data.prepare import gini, prepare_interactions, resolve_filter, write_prepared
from sagea.data.raw import DataError, RawData
from sagea.data.splits import split_users
from sagea.data.synthetic import generate
from sagea.data.splits import user_input_target_split


def raw(pairs: dict[str, list[int]], extra: list[tuple[str, int]] = ()) -> RawData:
    rows = [(u, i) for u, items in pairs.items() for i in items] + list(extra)
    return RawData("custom", pd.DataFrame(rows, columns=["user", "item"]))


BASE = {"a": [1, 2, 3], "b": [1, 2], "c": [1], "d": [1, 2, 3, 4]}


def as_pairs(prepared) -> set[tuple[str, int]]:
    users = prepared.users.set_index("user")["original_id"]
    items = prepared.items.set_index("item")["original_id"]
    return {(users[u], int(items[i])) for u, i in prepared.interactions.itertuples(index=False)}


def test_dedupe_filter_and_reindex_by_hand():
    # c has 1 pair (< 2) -> dropped; then item 4 only has d (< 2) -> dropped; (a, 1) twice -> once
    p = prepare_interactions(raw(BASE, extra=[("a", 1)]), 2, 2, name="t")
    assert as_pairs(p) == {("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("d", 1), ("d", 2), ("d", 3)}
    assert p.users["original_id"].tolist() == ["a", "b", "d"]
    assert p.items["original_id"].tolist() == ["1", "2", "3"]
    assert p.users["n_interactions"].tolist() == [3, 2, 3]
    assert p.items["n_interactions"].tolist() == [3, 3, 2]
    # sorted by user then item, int32 contiguous
    assert p.interactions["user"].tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert p.interactions["item"].tolist() == [0, 1, 2, 0, 1, 0, 1, 2]
    assert p.interactions.dtypes.tolist() == [np.int32, np.int32]
    d = p.card["dropped"]
    assert d["duplicate_pairs"] == 1
    assert (d["users_below_min_user_interactions"], d["pairs_of_dropped_users"]) == (1, 1)
    assert (d["items_below_min_item_interactions"], d["pairs_of_dropped_items"]) == (1, 1)
    c = p.card["counts"]
    assert (c["users"], c["items"], c["interactions"]) == (3, 3, 8)
    assert c["density"] == pytest.approx(8 / 9)
    assert p.card["per_user"] == {"min": 2, "mean": pytest.approx(8 / 3), "median": 3.0, "max": 3}


def test_single_pass_versus_iterate():
    pairs = {**BASE, "e": [4, 5, 6]}
    # one pass: b (2) and c (1) dropped; items 5, 6 (1 each) dropped; e keeps only item 4
    once = prepare_interactions(raw(pairs), 3, 2)
    assert as_pairs(once) == {("a", 1), ("a", 2), ("a", 3), ("d", 1), ("d", 2), ("d", 3), ("d", 4), ("e", 4)}
    assert once.card["users_below_min_after_filter"] == 1
    assert once.card["filter"]["passes"] == 1
    # until stable: e (1 left) goes, then item 4 (only d) goes, then nothing changes
    stable = prepare_interactions(raw(pairs), 3, 2, iterate=True)
    assert as_pairs(stable) == {("a", 1), ("a", 2), ("a", 3), ("d", 1), ("d", 2), ("d", 3)}
    assert stable.card["filter"]["passes"] == 3
    assert stable.card["users_below_min_after_filter"] == 0


def test_empty_after_filter_names_the_keys():
    with pytest.raises(DataError, match=r"datasets\.toy\.filter\.min_user_interactions"):
        prepare_interactions(raw(BASE), 10, 1, name="toy")


def test_gini_by_hand():
    assert gini(np.array([1, 1, 1, 1])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)  # (2*4-5)*4 / (4*4)
    assert gini(np.array([1, 2, 3])) == pytest.approx(((-2) * 1 + 0 * 2 + 2 * 3) / (3 * 6))


def test_filter_defaults_per_source():
    assert resolve_filter("movielens", {}) == (50, 20, False)
    assert resolve_filter("lastfm1k", {"min_item_interactions": None}) == (5, 10, False)
    assert resolve_filter("echonest", None) == (100, 200, False)
    assert resolve_filter("movielens", {"min_user_interactions": 3, "iterate": True}) == (3, 20, True)


def test_metadata_alignment_and_files(tmp_path):
    r = raw(BASE)
    r.items = pd.DataFrame({"original_id": [3, 1, 2, 9], "title": ["three", "one", "two", "nine"]})
    p = prepare_interactions(r, 2, 2)
    assert p.items["title"].tolist() == ["one", "two", "three"]
    write_prepared(p, tmp_path)
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "card.json",
        "card.md",
        "interactions.parquet",
        "items.parquet",
        "users.parquet",
    ]
    assert "What was dropped" in (tmp_path / "card.md").read_text()
    back = pd.read_parquet(tmp_path / "users.parquet")
    assert back.dtypes["user"] == np.int32 and back.dtypes["n_interactions"] == np.int32


def test_split_users_independent_permutation():
    split = split_users(103, 0.1, 0.2, seed=7)
    order = np.random.default_rng(7).permutation(103)
    expected = np.array(["train"] * 103, dtype=object)
    expected[order[:10]] = "valid"  # floor(10.3)
    expected[order[10:30]] = "test"  # floor(20.6)
    assert split["split"].tolist() == expected.tolist()
    assert split["user"].tolist() == list(range(103))
    assert split.equals(split_users(103, 0.1, 0.2, seed=7))
    assert not split.equals(split_users(103, 0.1, 0.2, seed=8))
    with pytest.raises(ValueError, match="valid_fraction"):
        split_users(10, 0.5, 0.5)


def test_user_input_target_split_counts_and_determinism():
    rng = np.random.default_rng(0)
    dense = np.zeros((4, 12), dtype=np.float32)
    for row, n in enumerate([5, 6, 10, 1]):
        dense[row, rng.choice(12, n, replace=False)] = 1
    rows = sp.csr_matrix(dense)
    inputs, targets = user_input_target_split(rows, 0.2, seed=3)
    assert np.diff(targets.indptr).tolist() == [1, 2, 2, 1]  # ceil(0.2 n): 1, ceil(1.2)=2, 2, 1
    assert (inputs + targets != rows).nnz == 0
    assert inputs.multiply(targets).nnz == 0
    again = user_input_target_split(rows, 0.2, seed=3)[1]
    assert (again != targets).nnz == 0
    other = [user_input_target_split(rows, 0.2, seed=s)[1] for s in range(4, 12)]
    assert any((o != targets).nnz for o in other)


def test_synthetic_generator_ground_truth():
    kw = dict(
        n_users=400,
        n_items=300,
        n_interactions=8000,
        n_clusters=6,
        max_clusters_per_user=2,
        noise=0.0,
        mainstream=0.0,
        seed=1,
    )
    a, b = generate(**kw), generate(**kw)
    assert a.interactions.equals(b.interactions)
    assert not a.interactions.equals(generate(**{**kw, "seed": 2}).interactions)
    assert len(a.interactions) == 8000
    assert not a.interactions.duplicated().any()
    assert np.bincount(a.item_cluster).tolist() == [50] * 6
    assert all(1 <= len(c) <= 2 and len(set(c)) == len(c) for c in a.user_clusters)
    assert all(c[0] == m for c, m in zip(a.user_clusters, a.user_main_cluster))
    # without noise or mainstream draws every item comes from one of the user's planted clusters
    item_c = a.item_cluster[a.interactions["item"].to_numpy()]
    members = {(u, int(c)) for u, cs in enumerate(a.user_clusters) for c in cs}
    assert all((u, c) in members for u, c in zip(a.interactions["user"].to_numpy(), item_c))
    # Zipf inside clusters: popularity is very unequal
    pop = np.bincount(a.interactions["item"], minlength=300)
    assert gini(pop) > 0.2
    with_noise = generate(**{**kw, "noise": 0.5})
    planted = {(u, int(c)) for u, cs in enumerate(with_noise.user_clusters) for c in cs}
    item_c = with_noise.item_cluster[with_noise.interactions["item"].to_numpy()]
    inside = np.mean(
        [(u, int(c)) in planted for u, c in zip(with_noise.interactions["user"].to_numpy(), item_c)]
    )
    assert 0.5 < inside < 0.8  # half the draws uniform; a uniform item hits a planted cluster 1-2 times in 6


# ----------------------------------------------------------------------------- property test
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def reference_filter(frame: pd.DataFrame, min_user: int, min_item: int, iterate: bool) -> pd.DataFrame:
    """Straightforward pandas version of dedupe + filter (docs/method.md §1)."""
    pos = frame.drop_duplicates()
    while True:
        n = len(pos)
        pos = pos[pos.groupby("user")["item"].transform("size") >= min_user]
        pos = pos[pos.groupby("item")["user"].transform("size") >= min_item]
        if not iterate or len(pos) == n:
            return pos.sort_values(["user", "item"]).reset_index(drop=True)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 9)), min_size=1, max_size=80),
    min_user=st.integers(0, 4),
    min_item=st.integers(0, 4),
    iterate=st.booleans(),
)
def test_prepare_matches_pandas_reference(rows, min_user, min_item, iterate):
    frame = pd.DataFrame(rows, columns=["user", "item"])
    expected = reference_filter(frame, min_user, min_item, iterate)
    if expected.empty:
        with pytest.raises(DataError):
            prepare_interactions(RawData("custom", frame), min_user, min_item, iterate)
        return
    p = prepare_interactions(RawData("custom", frame), min_user, min_item, iterate)
    got = pd.DataFrame(
        {
            "user": p.users["original_id"].astype(int).to_numpy()[p.interactions["user"]],
            "item": p.items["original_id"].astype(int).to_numpy()[p.interactions["item"]],
        }
    )
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert p.users["n_interactions"].sum() == p.items["n_interactions"].sum() == len(expected)


def test_plan_data_helpers():
    from sagea import plan

    cfg = {
        "datasets": {
            "s": {
                "source": "synthetic",
                "synthetic": {"n_users": 5},
                "split": {"valid_fraction": 0.1, "test_fraction": 0.2, "target_fraction": 0.2, "seed": 1},
                "elsa": {"factors": 8},
            },
            "m": {"source": "movielens", "path": None, "release": "ml-1m", "url": None, "sha256": None},
            "c": {"source": "custom", "path": "mine.csv"},
            "bad": {"source": "custom"},
        }
    }
    assert plan.raw_input(cfg, "s") == {}
    assert plan.raw_input(cfg, "m", "out") == {"raw": "out/m/raw/files"}
    assert plan.raw_input(cfg, "c") == {"raw": "mine.csv"}
    with pytest.raises(ValueError, match=r"datasets\.bad\.path is required"):
        plan.raw_input(cfg, "bad")
    assert plan.prepare_params(cfg, "s") == {
        "source": "synthetic",
        "synthetic": {"n_users": 5},
    }  # no elsa/split
    assert plan.split_params(cfg, "s") == {"valid_fraction": 0.1, "test_fraction": 0.2, "seed": 1}
    assert plan.download_params(cfg, "m") == {
        "source": "movielens",
        "release": "ml-1m",
        "url": None,
        "sha256": None,
    }
    # real data is shared by every seed; synthetic data (it has a seed) and every split live in the replicate
    rep = {"seed": 7, "groups": {"seed": 7, "split": {"seed": 7}}, "compare": {"seed": 7},
           "datasets": {"m": {"source": "movielens", "split": {"seed": 7}},
                        "s": {"source": "synthetic", "synthetic": {"seed": 3}, "split": {"seed": 7}}}}  # fmt: skip
    assert plan.data_files(rep, "r") == [f"r/m/data/{n}" for n in plan.DATA_FILES] + ["r/m/s7/split.parquet"] + [
        f"r/s/s7-syn3/data/{n}" for n in plan.DATA_FILES] + ["r/s/s7-syn3/split.parquet"]  # fmt: skip
