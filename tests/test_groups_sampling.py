"""Synthetic group sampling (docs/method.md §4): rules, semantics, filters, errors, determinism."""

from __future__ import annotations

import collections
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sstats

from groups_fixtures import clustered_users
from sagea.data.splits import common_targets, group_split, group_target_masks
from sagea.groups.diagnostics import member_overlap_pairs, small_data_flags
from sagea.groups.errors import GroupSamplingError
from sagea.groups.filters import cap_overlap, common_items, count_common_targets, unique_group_index
from sagea.groups.grow import grow_groups
from sagea.groups.io import group_set_frame, load_groups, load_groups_frame, load_subgroups, write_groups
from sagea.groups.sampling import sample_group_set, sample_group_sets
from sagea.groups.similarity import estimate_thresholds, group_similarities, normalize_rows


def sim64(emb: np.ndarray) -> np.ndarray:
    """Independent float64 similarity matrix (cos + 1) / 2."""
    e = emb.astype(np.float64)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    return (e @ e.T + 1) / 2


@pytest.fixture(scope="module")
def clustered():
    return clustered_users()


def check_rule(sim, members, rank, subgroup, kind, td, ts, tol=1e-5):
    """Every accepted member passed its rule against the members accepted before it."""
    for g in range(len(members)):
        for j in range(members.shape[1]):
            if rank[g, j] == 0:
                continue
            before = rank[g] < rank[g, j]
            own = members[g, before & (subgroup == subgroup[j])]
            other = members[g, before & (subgroup != subgroup[j])]
            u = members[g, j]
            if kind == "similar":
                assert sim[own, u].mean() >= td - tol
            elif kind == "divergent":
                assert sim[own, u].mean() <= ts + tol
            else:
                if len(own):
                    assert sim[own, u].mean() >= td - tol
                if len(other):
                    assert sim[other, u].mean() <= ts + tol


@pytest.mark.parametrize(
    "kind,sizes", [("similar", (4, 0)), ("divergent", (3, 0)), ("opposing", (3, 2)), ("opposing", (2, 1))]
)
def test_groups_meet_their_rule(clustered, kind, sizes):
    emb, _, _ = clustered
    normed = normalize_rows(emb)
    th = estimate_thresholds(normed, 20000, 0.75, 0.25, seed=1)
    members, rank, grown = grow_groups(
        normed, kind, sizes, 200, th.similar, th.divergent, np.random.default_rng(3)
    )
    subgroup = np.r_[np.zeros(sizes[0], int), np.ones(sizes[1], int)]
    assert members.shape == (200, sum(sizes)) and grown.groups == 200
    assert all(len(set(row)) == len(row) for row in members.tolist())
    # ranks are a permutation of 0..size-1 and each subgroup is stored in acceptance order
    assert (np.sort(rank, axis=1) == np.arange(sum(sizes))).all()
    for sub in (0, 1):
        r = rank[:, subgroup == sub]
        assert (np.diff(r, axis=1) > 0).all()
    check_rule(sim64(emb), members, rank, subgroup, kind, th.similar, th.divergent)
    # the summary statistics match an independent computation
    sims = group_similarities(normed, members, sizes)
    sim = sim64(emb)
    g0 = members[0]
    iu = np.triu_indices(len(g0), 1)
    assert sims["group_similarity"][0] == pytest.approx(sim[np.ix_(g0, g0)][iu].mean(), abs=1e-6)
    if kind == "opposing":
        a = sizes[0]
        assert sims["between_similarity"][0] == pytest.approx(sim[np.ix_(g0[:a], g0[a:])].mean(), abs=1e-6)


def naive_group(sim, kind, sizes, td, ts, max_draws, rng):
    """The research code's loop (seed notebook 001), one candidate at a time, retried forever."""
    pool = len(sim)
    while True:
        subs = ([int(rng.integers(pool))], [])
        index = 1
        for _ in range(max_draws):
            g = 0
            if kind == "opposing":
                g = index % 2
                if len(subs[g]) == sizes[g]:
                    index += 1
                    g = index % 2
            rest = [u for u in range(pool) if u not in subs[0] + subs[1]]
            u = rest[int(rng.integers(len(rest)))]
            own, other = subs[g], subs[1 - g]
            if kind == "divergent":
                ok = sim[own, u].mean() <= ts
            else:
                ok = not own or sim[own, u].mean() >= td
                ok = ok and (kind != "opposing" or not other or sim[other, u].mean() <= ts)
            if ok:
                subs[g].append(u)
            index += 1
            if len(subs[0]) == sizes[0] and len(subs[1]) == sizes[1]:
                return tuple(subs[0] + subs[1])


@pytest.mark.parametrize("kind,sizes", [("similar", (3, 0)), ("opposing", (2, 1))])
def test_same_distribution_as_sequential_research_loop(kind, sizes):
    """Vectorised blocks + draw budget give the research loop's distribution over ordered groups."""
    rng = np.random.default_rng(11)
    emb = rng.normal(size=(7, 3)).astype(np.float32)
    sim = sim64(emb)
    off = sim[np.triu_indices(7, 1)]
    off = np.sort(off)  # thresholds between pair values: no float32/float64 ties
    td, ts = (off[11] + off[12]) / 2, (off[8] + off[9]) / 2
    n = 6000
    members, _, grown = grow_groups(
        normalize_rows(emb),
        kind,
        sizes,
        n,
        td,
        ts,
        np.random.default_rng(5),
        max_draws=3,
        max_restarts=10**7,
    )
    vec = collections.Counter(map(tuple, members.tolist()))
    naive_rng = np.random.default_rng(6)
    ref = collections.Counter(naive_group(sim, kind, sizes, td, ts, 3, naive_rng) for _ in range(n))
    keys = sorted(set(vec) | set(ref))
    table = np.array([[vec[k] for k in keys], [ref[k] for k in keys]])
    assert set(vec) <= set(ref) | {k for k in vec if vec[k] <= 2}  # no group the research loop cannot make
    p = sstats.chi2_contingency(table)[1]
    assert p > 1e-3, f"distributions differ (p={p:.2e})"
    assert grown.restarts > 0  # the small budget was exercised


def test_random_groups_are_uniform():
    emb = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    members, _, grown = grow_groups(
        normalize_rows(emb), "random", (2, 0), 4500, 0.0, 1.0, np.random.default_rng(2)
    )
    assert grown.restarts == 0 and (members[:, 0] != members[:, 1]).all()
    pairs = collections.Counter(tuple(sorted(r)) for r in members.tolist())
    assert len(pairs) == 45
    chi2 = sum((c - 100) ** 2 / 100 for c in pairs.values())
    assert sstats.chi2.sf(chi2, 44) > 1e-3
    users = np.bincount(members.reshape(-1), minlength=10)
    assert sstats.chisquare(users).pvalue > 1e-3


def test_thresholds_are_quantiles_of_non_self_pairs():
    emb = np.array([[1, 0], [0, 1]], dtype=np.float32)
    th = estimate_thresholds(normalize_rows(emb), 1000, 0.75, 0.25, seed=0)
    assert th.similar == pytest.approx(0.5) and th.divergent == pytest.approx(0.5)  # only pair: cos 0
    emb = np.random.default_rng(1).normal(size=(60, 5)).astype(np.float32)
    sim = sim64(emb)[np.triu_indices(60, 1)]
    th = estimate_thresholds(normalize_rows(emb), 200_000, 0.8, 0.1, seed=0)
    assert th.similar == pytest.approx(np.quantile(sim, 0.8), abs=0.01)
    assert th.divergent == pytest.approx(np.quantile(sim, 0.1), abs=0.01)


def test_planted_clusters(clustered):
    emb, labels, _ = clustered
    normed = normalize_rows(emb)
    th = estimate_thresholds(normed, 20000, 0.75, 0.25, seed=1)
    same = {}
    for kind in ("similar", "divergent", "random"):
        members, _, _ = grow_groups(
            normed, kind, (3, 0), 300, th.similar, th.divergent, np.random.default_rng(4)
        )
        same[kind] = (labels[members] == labels[members[:, :1]]).all(axis=1).mean()
    opp, _, _ = grow_groups(
        normed, "opposing", (2, 1), 300, th.similar, th.divergent, np.random.default_rng(4)
    )
    lab = labels[opp]
    assert same["similar"] >= 0.9
    assert same["divergent"] <= 0.02
    assert 0.0 < same["random"] < 0.2  # 4 clusters: about 1/16 of random triples share one
    assert ((lab[:, 0] == lab[:, 1]) & (lab[:, 2] != lab[:, 0])).mean() >= 0.9


def test_impossible_kind_stops_quickly_with_clear_error(clustered):
    normed = normalize_rows(clustered[0])
    start = time.perf_counter()
    with pytest.raises(GroupSamplingError) as err:
        grow_groups(normed, "similar", (3, 0), 100, 1.01, 0.0, np.random.default_rng(0))
    assert time.perf_counter() - start < 30
    msg = str(err.value)
    for part in (
        "similar groups of size 3",
        "acceptance rate",
        "groups.similar_quantile",
        "groups.max_restarts",
    ):
        assert part in msg
    with pytest.raises(GroupSamplingError, match="opposing groups 2-1"):
        grow_groups(normed, "opposing", (2, 1), 50, 0.5, -1.0, np.random.default_rng(0), max_restarts=50)
    with pytest.raises(GroupSamplingError, match="pool has only 2 users"):
        grow_groups(normed[:2], "random", (3, 0), 5, 0.5, 0.5, np.random.default_rng(0))


def test_unique_and_overlap_helpers():
    groups = np.array([[1, 2, 3], [3, 2, 1], [4, 5, 6], [1, 2, 7], [2, 1, 3]])
    assert unique_group_index(groups).tolist() == [0, 2, 3]
    pairs = member_overlap_pairs(groups[[0, 2, 3]], threshold=0.3)
    assert pairs.tolist() == [[0, 2, 2]]
    kept = cap_overlap(groups, np.array([0, 2, 3, 4]), max_overlap=0.5, limit=10)
    assert kept.tolist() == [0, 2]  # 3 shares 2/3 with 0, 4 is a copy of 0
    assert cap_overlap(groups, np.array([3, 0, 2]), None, 2).tolist() == [3, 0]


def test_group_set_filters(clustered):
    emb, _, x = clustered
    pool = np.arange(0, 400, 2)  # a pool of every other user
    normed = normalize_rows(emb[pool])
    th = estimate_thresholds(normed, 20000, 0.75, 0.25, seed=1)
    kw = dict(
        final_group_count=60,
        common_interactions=3,
        max_overlap=0.34,
        seed=9,
        target_ratio=0.5,
        split_seed=4,
        shared_mask=False,
    )
    gs = sample_group_set("similar_3", normed, pool, x, th, **kw)
    g = gs.members
    assert g.shape == (60, 3) and np.isin(g, pool).all()
    assert len({tuple(sorted(r)) for r in g.tolist()}) == 60
    assert all(len(set(r)) == 3 for r in g.tolist())
    # common held-out items recomputed directly: rows of every member inside the group's mask
    masks = group_target_masks(g, x.shape[1], 0.5, 4, False)
    dense = x.toarray() > 0
    common = np.array([(dense[r].all(axis=0) & m).sum() for r, m in zip(g, masks)])
    assert (common == gs.n_common_targets).all() and (common > 3).all()
    assert np.array_equal(count_common_targets(x, g, 0.5, 4, False, max_bytes=1), common)  # chunks of 1
    assert np.array_equal(common_items(x, g, chunk=7), np.array([dense[r].all(axis=0).sum() for r in g]))
    for i in range(60):
        for j in range(i + 1, 60):
            assert len(set(g[i]) & set(g[j])) <= 1  # overlap 1/3 <= 0.34
    s = gs.summary
    assert s["kept"] == 60 and s["generated"] >= s["distinct"] >= s["passed_common_targets"] >= 60
    with pytest.raises(GroupSamplingError, match="groups.common_interactions=1000"):
        sample_group_set(
            "random_3", normed, pool, x, th, **{**kw, "common_interactions": 1000, "max_overlap": None}
        )


def test_sample_group_sets_is_deterministic_and_written(clustered, tmp_path):
    emb, _, x = clustered
    users = np.arange(100, 400)
    kw = dict(
        max_pool_users=250,
        n_pairs=5000,
        final_group_count=40,
        common_interactions=2,
        max_draws=1000,
        max_restarts=10000,
    )
    names = ["similar_3", "divergent_3", "random_4", "opposing_2-1"]
    sets_a, summary = sample_group_sets(emb, users, x, names, seed=3, **kw)
    sets_b, _ = sample_group_sets(emb, users, x, names, seed=3, **kw)
    sets_c, _ = sample_group_sets(emb, users, x, names, seed=4, **kw)
    for name in names:
        assert np.array_equal(sets_a[name].members, sets_b[name].members)
    assert not np.array_equal(sets_a["similar_3"].members, sets_c["similar_3"].members)
    assert summary["pool"]["pool_users"] == 250 and set(summary["sets"]) == set(names)
    assert summary["thresholds"]["Td"] > summary["thresholds"]["Ts"]
    assert summary["sets"]["opposing_2-1"]["paper_name"] == "outlier"
    ids = np.array([f"u{i}" for i in range(400)])
    frame = group_set_frame(sets_a["opposing_2-1"], ids)
    write_groups(frame, tmp_path / "opposing_2-1.parquet")
    back = load_groups_frame(tmp_path / "opposing_2-1.parquet")
    assert [str(t) for t in back.dtypes][:3] == ["int32", "int16", "int32"]
    assert list(back.columns) == [
        "group",
        "member",
        "user",
        "original_id",
        "subgroup",
        "group_similarity",
        "subgroup_similarity_0",
        "subgroup_similarity_1",
        "between_similarity",
        "n_common_targets",
    ]
    assert np.array_equal(load_groups(tmp_path / "opposing_2-1.parquet"), sets_a["opposing_2-1"].members)
    assert load_subgroups(tmp_path / "opposing_2-1.parquet").tolist() == [0, 0, 1]
    assert (back["original_id"] == "u" + back["user"].astype(str)).all()
    assert back["between_similarity"].notna().all() and back["subgroup_similarity_1"].isna().all()


def test_planted_clusters_of_the_synthetic_dataset():
    """On sagea.data.synthetic data (embeddings: a random projection of the normalised rows,
    which keeps their cosines), similar groups mostly share the planted main cluster."""
    synthetic = pytest.importorskip("sagea.data.synthetic")
    import scipy.sparse as sp

    data = synthetic.generate(
        n_users=800, n_items=400, n_interactions=30000, n_clusters=6, max_clusters_per_user=2, seed=1,
        mainstream=0.1,  # a weaker shared-popularity component keeps the random projection clustered
        zipf_exponent=1.1, zipf_offset=0.0, activity_sigma=0.8, noise=0.05,  # the generator this was written for
    )
    df = data.interactions
    x = sp.csr_matrix((np.ones(len(df)), (df["user"], df["item"])), shape=(800, 400))
    x = sp.diags(1 / np.sqrt(np.asarray(x.sum(1)).ravel())) @ x
    emb = np.asarray(x @ np.random.default_rng(0).normal(size=(400, 64)), dtype=np.float32)
    normed = normalize_rows(emb)
    th = estimate_thresholds(normed, 20000, 0.75, 0.25, seed=0)
    label = data.user_main_cluster
    rate = {}
    for kind in ("similar", "divergent", "random"):
        m, _, _ = grow_groups(normed, kind, (3, 0), 300, th.similar, th.divergent, np.random.default_rng(2))
        rate[kind] = (label[m] == label[m[:, :1]]).all(axis=1).mean()
    assert rate["similar"] >= 0.3 and rate["similar"] >= 4 * rate["random"]
    assert rate["divergent"] <= 0.02


@settings(max_examples=60, deadline=None)
@given(
    groups=st.lists(
        st.lists(st.integers(0, 12), min_size=3, max_size=3, unique=True), min_size=1, max_size=25
    ),
    max_overlap=st.sampled_from([0.0, 0.34, 0.67]),
)
def test_overlap_cap_and_unique_properties(groups, max_overlap):
    g = np.array(groups)
    first = unique_group_index(g)
    sets = [frozenset(r) for r in groups]
    assert [i for i, s in enumerate(sets) if s not in sets[:i]] == first.tolist()
    order = first[::-1]
    kept = cap_overlap(g, order, max_overlap, limit=100)
    shared = lambda i, j: len(sets[i] & sets[j]) / 3  # noqa: E731
    assert all(shared(i, j) <= max_overlap + 1e-9 for i in kept for j in kept if i != j)
    # greedy: every skipped group conflicts with a group kept before it in the order
    position = {int(g_): k for k, g_ in enumerate(order)}
    for i in set(order.tolist()) - set(kept.tolist()):
        assert any(shared(i, j) > max_overlap + 1e-9 and position[j] < position[i] for j in kept)
    pairs = member_overlap_pairs(g, threshold=0.3)
    expected = [
        [i, j, len(sets[i] & sets[j])]
        for i in range(len(g))
        for j in range(i + 1, len(g))
        if len(sets[i] & sets[j]) >= 1
    ]
    assert sorted(pairs.tolist()) == expected


# ----------------------------------------------------------------------------- rounds and budget
def clique_pool(n_users: int = 200, clique: int = 44, shared: int = 40, private: int = 10):
    """Users ``0..clique-1`` all hold items ``0..shared-1``; every user also holds ``private`` items
    of its own. A group has common items only when every member is in the clique, so a random
    group of 3 passes the common held-out items filter with probability C(44,3)/C(200,3) ~ 1.01%
    (its ~20 common held-out items of 40 pass any threshold <= 5 but with negligible chance)."""
    import scipy.sparse as sp

    rows, cols = [], []
    for u in range(n_users):  # fixture construction only
        own = shared + u * private + np.arange(private)
        items = np.r_[np.arange(shared), own] if u < clique else own
        rows.append(np.full(len(items), u))
        cols.append(items)
    r, c = np.concatenate(rows), np.concatenate(cols)
    x = sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(n_users, shared + n_users * private))
    emb = np.random.default_rng(0).normal(size=(n_users, 8)).astype(np.float32)
    return emb, x


def test_rare_passing_groups_are_found_by_more_rounds():
    """A ~1% pass rate: the first round (46 candidates) holds no passing group with probability
    e^-0.46 ~ 63%; the sampler keeps drawing rounds until it has its groups."""
    from math import comb

    emb, x = clique_pool()
    pool = np.arange(200)
    normed = normalize_rows(emb)
    th = estimate_thresholds(normed, 5000, 0.75, 0.25, seed=1)
    kw = dict(final_group_count=30, common_interactions=5, seed=3, target_ratio=0.5, split_seed=4)
    gs = sample_group_set("random_3", normed, pool, x, th, **kw)
    assert gs.members.shape == (30, 3) and (gs.members < 44).all()  # only clique groups pass
    s = gs.summary
    assert s["rounds"] >= 2 and s["generated"] > math_ceil_first_round(30)
    # the measured pass rate of the distinct candidates estimates C(44,3)/C(200,3)
    p = comb(44, 3) / comb(200, 3)
    sd = np.sqrt(p * (1 - p) / s["distinct"])
    assert abs(s["passed_common_targets"] / s["distinct"] - p) < 4 * sd
    # independent count of the common held-out items of the kept groups
    masks = group_target_masks(gs.members, x.shape[1], 0.5, 4, False)
    dense = x.toarray() > 0
    common = np.array([(dense[r].all(axis=0) & m).sum() for r, m in zip(gs.members, masks)])
    assert np.array_equal(common, gs.n_common_targets) and (common > 5).all()


def math_ceil_first_round(final_group_count: int, oversample: float = 1.25) -> int:
    return int(np.ceil(final_group_count * oversample)) + 8


def _suggestions(message: str) -> dict:
    """``- groups.x.y: value`` lines of an error's advice, values parsed as YAML."""
    import re

    import yaml

    found = {}
    for key, value in re.findall(r"^- (groups\.[\w.]+): (\S+)", message, flags=re.M):
        found[key] = yaml.safe_load(value)
    return found


def _validate_suggestion(repo, key: str, value) -> None:
    """The default config with ``key`` set to ``value`` passes the config schema."""
    import yaml
    from snakemake.utils import validate

    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    node = config
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    validate(config, str(repo / "workflow" / "schemas" / "config.schema.yaml"))


def test_budget_error_reports_pass_rate_and_schema_valid_advice(repo):
    emb, x = clique_pool()
    pool = np.arange(200)
    normed = normalize_rows(emb)
    th = estimate_thresholds(normed, 5000, 0.75, 0.25, seed=1)
    # 30 groups at ~1% need ~3000 candidates: a budget of 1000 cannot do it
    kw = dict(final_group_count=30, common_interactions=5, seed=3, target_ratio=0.5, split_seed=4)
    with pytest.raises(GroupSamplingError) as err:
        sample_group_set("random_3", normed, pool, x, th, max_candidates=1000, **kw)
    msg = str(err.value)
    assert "cannot keep groups.final_group_count=30 groups for random_3" in msg
    assert "pass rate" in msg and "candidate groups would be needed" in msg
    advice = _suggestions(msg)
    assert advice["groups.budget.max_candidates"] > 1000
    assert 1 <= advice["groups.final_group_count"] < 30
    assert "groups.common_interactions" not in advice  # lowering it cannot help: non-clique groups share nothing
    assert "groups.kinds.random" in msg
    for key, value in advice.items():
        _validate_suggestion(repo, key, value)
    # the suggested budget works
    gs = sample_group_set("random_3", normed, pool, x, th, max_candidates=advice["groups.budget.max_candidates"], **kw)
    assert len(gs.members) == 30


def test_impossible_filter_advice_stays_inside_the_schema(repo):
    emb, x = clique_pool(shared=6)  # clique groups share at most 6 items, ~3 of them held out
    pool = np.arange(200)
    normed = normalize_rows(emb)
    th = estimate_thresholds(normed, 5000, 0.75, 0.25, seed=1)
    kw = dict(final_group_count=20, seed=3, target_ratio=0.5, split_seed=4, max_candidates=20000)
    with pytest.raises(GroupSamplingError) as err:
        sample_group_set("random_3", normed, pool, x, th, common_interactions=6, **kw)
    msg = str(err.value)
    assert "pass rate 0.000%" in msg and "groups.kinds.random" in msg
    advice = _suggestions(msg)
    assert 0 <= advice["groups.common_interactions"] < 6
    for key, value in advice.items():
        _validate_suggestion(repo, key, value)
    # at the schema minimum (0) nothing passes either when no group shares an item: no lower value offered
    emb0, x0 = clique_pool(clique=0)
    with pytest.raises(GroupSamplingError) as err:
        sample_group_set("random_3", normalize_rows(emb0), pool, x0, th, common_interactions=0, **kw)
    msg = str(err.value)
    assert "groups.common_interactions:" not in msg and "remove 3 from groups.kinds.random" in msg
    for key, value in _suggestions(msg).items():
        _validate_suggestion(repo, key, value)


def test_small_data_flags_by_hand():
    # median of (1, 2, 2, 9) = 2 <= 2; 2 of 4 groups in overlapping pairs = 50% >= 25%; 3 * 4 slots > 10 users
    out = small_data_flags(np.array([1, 2, 2, 9]), overlapping_groups=2, n_groups=4, size=3, pool_users=10)
    assert out["flags"] == ["few_common_targets", "heavy_overlap", "small_pool"]
    assert out["common_targets"] == {"median": 2.0, "min": 1.0, "share_at_most_2": 0.75}
    assert out["overlap_share"] == 0.5 and out["mean_groups_per_user"] == pytest.approx(1.2)
    assert len(out["warnings"]) == 3 and "NDCG_com rests on one or two items" in out["warnings"][0]
    # median 3, 1 of 5 groups overlapping (20%), 3 * 5 = 15 slots for 15 users: no flag
    out = small_data_flags(np.array([3, 3, 3, 1, 8]), overlapping_groups=1, n_groups=5, size=3, pool_users=15)
    assert out["flags"] == [] and out["warnings"] == []


def test_time_budget_stops_after_the_first_round(repo):
    """``max_seconds`` far below one round's duration: the first round (46 candidates at a ~1% pass
    rate) cannot fill 30 groups, so sampling stops there and says which budget ran out."""
    emb, x = clique_pool()
    normed = normalize_rows(emb)
    th = estimate_thresholds(normed, 5000, 0.75, 0.25, seed=1)
    with pytest.raises(GroupSamplingError) as err:
        sample_group_set(
            "random_3", normed, np.arange(200), x, th, final_group_count=30, common_interactions=5, seed=3,
            max_seconds=1e-9,
        )  # fmt: skip
    msg = str(err.value)
    assert "the budget groups.budget.max_seconds=1e-09 is used up" in msg and "in 1 rounds" in msg
    assert _suggestions(msg)["groups.budget.max_seconds"] is None  # nothing kept yet: no rate to size it by
    for key, value in _suggestions(msg).items():
        _validate_suggestion(repo, key, value)


# ----------------------------------------------------------------------------- vectorised filters vs loops
def reference_cap_overlap(groups, order, max_overlap, limit):
    """The greedy overlap cap as a plain loop over groups (the sampler's former implementation)."""
    if max_overlap is None:
        return np.asarray(order[:limit], dtype=np.int64)
    size = groups.shape[1]
    kept, by_user = [], {}
    for g in order:
        counts = {}
        for u in groups[g]:
            for other in by_user.get(int(u), ()):
                counts[other] = counts.get(other, 0) + 1
        if counts and max(counts.values()) / size > max_overlap + 1e-12:
            continue
        kept.append(int(g))
        for u in groups[g]:
            by_user.setdefault(int(u), []).append(int(g))
        if len(kept) >= limit:
            break
    return np.asarray(kept, dtype=np.int64)


@pytest.mark.parametrize("pool,size,n", [(8, 3, 60), (40, 3, 300), (300, 2, 500), (50, 5, 400), (2000, 3, 3000)])
def test_cap_overlap_equals_the_greedy_loop(pool, size, n):
    """Blocks of any size and the vectorised rounds give exactly the loop's kept groups, in its order,
    from pools where nearly every pair conflicts to pools where conflicts are rare."""
    rng = np.random.default_rng(pool * 7 + size)
    groups = np.argsort(rng.random((n, pool)), axis=1)[:, :size]  # distinct members per group
    groups[n // 2 :: 7] = groups[: len(groups[n // 2 :: 7])]  # some identical groups
    order = rng.permutation(n)[: int(0.9 * n)]
    for max_overlap in (None, 0.0, 0.2, 1 / 3, 0.34, 0.5, 0.67, 1.0):
        for limit in (1, 25, n):
            expected = reference_cap_overlap(groups, order, max_overlap, limit)
            for block in (None, 1 if n <= 300 else 97, 13, n):
                got = cap_overlap(groups, order, max_overlap, limit, block=block)
                assert got.tolist() == expected.tolist(), (max_overlap, limit, block)


def test_cap_overlap_chain_of_conflicts():
    """A chain g0-g1-g2-...: each group conflicts with its neighbours only; the greedy keeps every
    other one, which the rounds reach one link at a time."""
    groups = np.array([[i, i + 1] for i in range(0, 40)])  # g_i and g_{i+1} share one of 2 members
    kept = cap_overlap(groups, np.arange(40), 0.4, limit=100)
    assert kept.tolist() == list(range(0, 40, 2)) == reference_cap_overlap(groups, np.arange(40), 0.4, 100).tolist()
    # reversed order, and a limit inside the chain
    assert cap_overlap(groups, np.arange(40)[::-1], 0.4, 5).tolist() == [39, 37, 35, 33, 31]


def test_group_similarities_in_chunks_equal_one_pass(clustered):
    emb, _, _ = clustered
    normed = normalize_rows(emb)
    members = np.random.default_rng(0).permutation(400)[:300].reshape(60, 5)
    whole = group_similarities(normed, members, (3, 2))
    for max_bytes in (1, 5 * 16 * 8 * 7):  # one group, then 7 groups per chunk
        parts = group_similarities(normed, members, (3, 2), max_bytes=max_bytes)
        for key in whole:
            assert np.array_equal(parts[key], whole[key], equal_nan=True), key
    single = group_similarities(normed, members[:, :4], (4, 0), max_bytes=1)
    assert np.isnan(single["between_similarity"]).all() and not np.isnan(single["group_similarity"]).any()


@pytest.mark.parametrize("shared_mask", [False, True])
def test_common_targets_equal_the_evaluation_split(clustered, shared_mask):
    """The sparse count equals the evaluation's own dense path (group_split + common_targets), in any
    chunking, also for groups of 5 and for stored zeros / weights in the interactions."""
    _, _, x = clustered
    x = x.copy()
    x.data[::5] = 3.0  # weights count as held items
    x.data[1::11] = 0.0  # a stored zero is not an interaction (group_split: toarray() > 0)
    rng = np.random.default_rng(1)
    for size in (2, 3, 5):
        g = np.argsort(rng.random((90, 400)), axis=1)[:, :size]
        g[:30] = g[:30] % 100  # members of the same item block share items
        masks = group_target_masks(g, x.shape[1], 0.4, 6, shared_mask)
        expected = common_targets(group_split(x, g, masks)[1]).sum(axis=1)
        assert expected.max() > 3
        for max_bytes in (1, 7 * x.shape[1], 64 * 2**20):
            got = count_common_targets(x, g, 0.4, 6, shared_mask, max_bytes=max_bytes)
            assert got.tolist() == expected.tolist()
        items = (x.toarray() > 0)[g].all(axis=1).sum(axis=1)
        assert common_items(x, g, chunk=13).tolist() == items.tolist()
