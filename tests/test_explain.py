"""Explanations (sagea.explain): exact score decomposition, explain_group's list, labels, deletion
curves and planted-cluster recovery."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from sae_fixtures import clustered_elsa, clustered_matrix, embeddings_of
from sagea.explain import GroupExplanation, explain_group
from sagea.explain.contributions import item_contributions
from sagea.explain.labels import feature_labels_table, item_values_from_column, label_features
from sagea.explain.quality import cluster_recovery, deletion_curve, list_overlap, recovery_summary
from sagea.models.elsa import ELSA
from sagea.models.sae import SAE, fit
from sagea.models.sae_data import EmbeddingData
from sagea.recommenders.sagea import SageaRecommender, encode_members, fused_code, sagea_scores

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models():
    """A clustered ELSA (120 items, 16 factors) and an untrained SAE with a non-zero decoder bias."""
    matrix, item_cluster = clustered_matrix(120, 120, 6, seed=0)
    elsa = clustered_elsa(item_cluster, 16, seed=0)
    sae = SAE(16, 32, k=4, seed=0)
    with torch.no_grad():
        sae.decoder_b.copy_(torch.linspace(-0.5, 0.5, 16))
        sae.encoder_b.copy_(torch.linspace(0.0, 0.3, 32))
    sae.eval()
    groups = np.arange(36).reshape(12, 3)
    inputs = torch.as_tensor(matrix[groups.reshape(-1)].toarray().reshape(12, 3, -1), dtype=torch.float32)
    return elsa, sae, inputs, item_cluster


# ----------------------------------------------------------------------------- decomposition
@pytest.mark.parametrize("fusion", ["average", "common_features", "topk"])
def test_contributions_sum_to_the_scores_and_match_a_numpy_decomposition(models, fusion):
    elsa, sae, inputs, _ = models
    with torch.no_grad():
        members = encode_members(elsa, sae, inputs)
        code, _ = fused_code(members, fusion, 4)
        scores = sagea_scores(elsa, sae, members, code).double()
        items = torch.arange(120).expand(len(inputs), 120)
        contrib, remainder = item_contributions(elsa, sae, members, code, items)
    # the terms add up to the score the recommender ranks by
    torch.testing.assert_close(contrib.sum(-1) + remainder, scores, rtol=1e-5, atol=1e-4)
    # independent formula: contribution = c_f σ̄ (W_f · a_i), remainder = σ̄ (b · a_i) + μ̄ Σ_j a_ij
    a = elsa.encoder.detach().double().numpy()
    w, b = sae.decoder_w.detach().double().numpy(), sae.decoder_b.detach().double().numpy()
    c = code.double().numpy()
    mu = members.mean.double().numpy().mean(axis=1)[:, 0]
    sigma = members.std.double().numpy().mean(axis=1)[:, 0]
    expected = c[:, None, :] * sigma[:, None, None] * (a @ w.T)[None, :, :]
    np.testing.assert_allclose(contrib.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(remainder.numpy(), sigma[:, None] * (a @ b)[None] + mu[:, None] * a.sum(1)[None], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- explain_group
@pytest.mark.parametrize(
    "fusion,topk_inference,normalize,fallback",
    [("average", True, False, "relax"), ("common_features", True, False, "relax"), ("topk", False, True, "relax"),
     ("wcom", False, False, "relax"), ("common_features", True, False, "nan"), ("min", True, False, "average")],
)  # fmt: skip
def test_explain_group_list_equals_the_recommenders_list(models, fusion, topk_inference, normalize, fallback):
    elsa, sae, inputs, _ = models
    rec = SageaRecommender(elsa, sae, fusion, 4, topk_inference, normalize, fallback)
    seen = inputs.bool().any(dim=1)
    with torch.no_grad():
        result = rec.aggregate(rec.score(inputs), seen, 20)
    lists, zero = result.items.numpy(), result.extras["ZeroFusedCode"].numpy()
    if fusion == "common_features":
        assert zero.any() and not zero.all()  # the fixture has groups without a common feature
    for g in range(len(inputs)):
        ex = explain_group(elsa, sae, inputs[g], fusion, 4, topk_inference, normalize, fallback, n=20)
        assert ex.items["item"].tolist() == lists[g].tolist()
        assert ex.items["rank"].tolist() == list(range(20))
        assert ex.zero_fused_code == bool(zero[g])
        if fallback == "nan" and zero[g]:  # NaN code: nothing to attribute
            assert ex.features.empty and ex.items["score"].isna().all()


def test_explain_group_tables_members_and_json(models):
    elsa, sae, inputs, item_cluster = models
    items = pd.DataFrame({"item": np.arange(120), "original_id": [f"m{i}" for i in range(120)],
                          "n_interactions": 1, "cluster": item_cluster})  # fmt: skip
    labels = pd.DataFrame({"feature": np.arange(32), "label": [f"L{f}" for f in range(32)],
                           "top_items": [[f] for f in range(32)], "top_titles": [[f"t{f}"] for f in range(32)]})  # fmt: skip
    ex = explain_group(elsa, sae, inputs[0], "average", 4, n=10, n_features=3, items=items, feature_labels=labels)
    assert isinstance(ex, GroupExplanation)
    with torch.no_grad():
        members = encode_members(elsa, sae, inputs[:1])
        code, _ = fused_code(members, "average", 4)
    np.testing.assert_allclose(ex.fused_code, code[0].numpy(), rtol=1e-6)
    # features: the 3 largest contributions among the active features, members holding each
    assert len(ex.features) == 3
    assert (np.diff(ex.features["contribution"].to_numpy()) <= 0).all()
    member_codes = members.codes[0].numpy()
    for row in ex.features.itertuples():
        assert row.members == np.flatnonzero(member_codes[:, row.feature] > 0).tolist()
        assert row.label == f"L{row.feature}"
        assert code[0, row.feature] != 0
    # items: ids and metadata joined by item index; the per-item top features are sorted
    assert ex.items["original_id"].tolist() == [f"m{i}" for i in ex.items["item"]]
    assert ex.items["cluster"].tolist() == item_cluster[ex.items["item"]].tolist()
    assert all(np.all(np.diff(c) <= 0) for c in ex.items["contributions"])
    out = ex.to_dict()
    import json

    assert json.loads(json.dumps(out))["items"][0]["item"] == int(ex.items["item"].iloc[0])
    assert set(out["fused_code"]) == {str(f) for f in np.flatnonzero(ex.fused_code)}
    assert out["zero_fused_code"] is False


def test_explain_group_rejects_a_batch(models):
    elsa, sae, inputs, _ = models
    with pytest.raises(ValueError, match=r"\[members, items\]"):
        explain_group(elsa, sae, inputs, "average", 4)


# ----------------------------------------------------------------------------- deletion
class FixedCodeSAE:
    """A hand-built SAE: every member's code is ``code``, μ = 0, σ = 1, identity decoder, no bias."""

    def __init__(self, code):
        self.code = torch.as_tensor(code, dtype=torch.float32)
        self.decoder_w = torch.eye(len(code))
        self.decoder_b = torch.zeros(len(code))

    def encode(self, x, topk_inference=True):
        n = len(x)
        return self.code.expand(n, -1).clone(), torch.zeros(n, 1), torch.ones(n, 1)

    def decode(self, code, mean, std):
        return (code @ self.decoder_w + self.decoder_b) * std + mean


def hand_built():
    """Code [4, 3, 2, 1]; items 2f and 2f+1 lie on feature f with weights 1 and 0.9, so the scores
    are 4, 3.6, 3, 2.7, 2, 1.8, 1, 0.9 and the top-4 list is {0, 1, 2, 3}."""
    a = torch.zeros(8, 4)
    for f in range(4):
        a[2 * f, f], a[2 * f + 1, f] = 1.0, 0.9
    elsa = ELSA(8, 4)
    with torch.no_grad():
        elsa.encoder.copy_(a)
    return elsa, FixedCodeSAE([4.0, 3.0, 2.0, 1.0]), torch.zeros(1, 1, 8)


def test_deletion_curve_on_a_hand_built_case():
    elsa, sae, inputs = hand_built()
    curve = deletion_curve(elsa, sae, inputs, "average", 4, ms=[1, 2], k=4, n_random=400, seed=0)
    # top-1 = feature 0 (contribution 4·1.9): list {2,3,4,5} → overlap 1/2; top-2 adds feature 1
    # (3·1.9): list {4,5,6,7} → 0. Monotone, and below random at every m.
    np.testing.assert_allclose(curve["top"][0], [0.5, 0.0])
    # random m=1 over features 0..3: overlaps 1/2, 1/2, 1, 1 → 0.75; m=2 over the 6 pairs:
    # {0,1} 0, {2,3} 1, the other four 1/2 → 0.5 (by hand; 400 draws → within 0.05)
    np.testing.assert_allclose(curve["random"][0], [0.75, 0.5], atol=0.05)
    assert curve["n_active"].tolist() == [4]
    assert np.all(np.diff(curve["top"][0]) <= 0)
    assert np.all(curve["top"][0] < curve["random"][0])


def test_deletion_random_draws_are_seeded(models):
    elsa, sae, inputs, _ = models
    one = deletion_curve(elsa, sae, inputs, "average", 4, ms=[1, 2], n_random=3, seed=7)
    two = deletion_curve(elsa, sae, inputs, "average", 4, ms=[1, 2], n_random=3, seed=7)
    np.testing.assert_array_equal(one["random"], two["random"])
    np.testing.assert_array_equal(one["top"], two["top"])


def test_list_overlap_ignores_padding():
    before = torch.tensor([[1, 2, 3, -1], [-1, -1, -1, -1]])
    after = torch.tensor([[3, 9, -1, -1], [1, 2, 3, 4]])
    out = list_overlap(before, after)
    assert out[0].item() == pytest.approx(1 / 3)
    assert torch.isnan(out[1])


# ----------------------------------------------------------------------------- labels
def test_lift_labels_worked_by_hand():
    # 10 items; genre A on items 0-4 (catalogue share 1/2), B on 0-1 (1/5), C on 9 only (1/10)
    values = [["A", "B"], ["A", "B"], ["A"], ["A"], ["A"], [], [], [], [], ["C"]]
    labels = label_features([[0, 1, 2, 3], [5, 6, 9, 7], [0, 2, 9, 5]], values, n_labels=2, min_count=2)
    # feature 0: B 2/4 ÷ 1/5 = 2.5, A 4/4 ÷ 1/2 = 2 → "B, A"
    assert labels["label"][0] == "B, A"
    assert labels["label_lift"][0] == pytest.approx([2.5, 2.0])
    assert labels["label_count"][0] == [2, 4]
    # feature 1: only C once (lift 1/4 ÷ 1/10 = 2.5): below min_count but still the label
    assert labels["label"][1] == "C"
    assert labels["label_lift"][1] == pytest.approx([2.5])
    # feature 2: A 2/4 → lift 1, C 1/4 → 2.5, B 1/4 → 1.25; A alone reaches min_count so it leads
    assert labels["label_values"][2] == ["A", "C"]


def test_feature_labels_table_uses_genres_or_the_column():
    items = pd.DataFrame({"item": [1, 0, 2], "original_id": ["b", "a", "c"],
                          "genres": ["Drama", "Comedy|Drama", "(no genres listed)"], "artist": ["x", "y", "z"]})  # fmt: skip
    features = pd.DataFrame({"feature": [0, 1], "frequency": [0.5, 0.0], "top_items": [[0, 1], [2]],
                             "top_titles": [[], []]})  # fmt: skip
    table = feature_labels_table(features, items, min_count=1)
    assert table["label_source"].iloc[0] == "genres"
    # catalogue: Drama on items 0,1 (2/3), Comedy on item 0 (1/3) → Comedy lift 1.5 > Drama 1.5? equal:
    # Comedy 1/2 ÷ 1/3 = 1.5, Drama 2/2 ÷ 2/3 = 1.5 → tie broken by count (Drama 2) → "Drama, Comedy"
    assert table["label"].tolist() == ["Drama, Comedy", ""]
    assert table["alive"].tolist() == [True, False]
    by_artist = feature_labels_table(features, items, column="artist", min_count=1)
    assert by_artist["label"].tolist() == ["y, x", "z"]
    with pytest.raises(KeyError, match="explain.labels.column"):
        feature_labels_table(features, items, column="nope")


def test_tags_join_genres(tmp_path):
    items = pd.DataFrame({"item": [0, 1], "original_id": ["10", "20"], "genres": ["Drama", "Drama"]})
    raw = tmp_path / "ml" / "ml-latest-small"
    raw.mkdir(parents=True)
    (raw / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,10,Funny,0\n2,10,funny ,0\n3,30,x,0\n")
    from sagea.explain.labels import find_tags_file, item_metadata

    source, values = item_metadata(items, tags_path=find_tags_file(tmp_path / "ml"))
    assert source == "genres+tags"
    assert values == [["Drama", "#funny"], ["Drama"]]
    assert find_tags_file(tmp_path / "elsewhere") is None


# ----------------------------------------------------------------------------- planted clusters
def test_trained_sae_features_recover_and_label_planted_clusters():
    """Embeddings built so the clusters are recoverable (sae_fixtures: ELSA item rows = cluster
    centre + noise; each user likes 2 of 6 clusters). A small TopK SAE (h 12, k 2) trained on them:
    stated rates — every planted cluster has a feature whose 10 top items are ≥ 80 % in it, ≥ 80 %
    of the alive features are that pure, and ≥ 90 % of the alive features' labels name the
    majority cluster of their top items."""
    from sagea.analysis.sae_features import feature_table, sparse_codes

    matrix, item_cluster = clustered_matrix(600, 120, 6, seed=0)
    elsa = clustered_elsa(item_cluster, 16, seed=0)
    emb = embeddings_of(elsa, matrix)
    sae = SAE(16, 12, k=2, seed=0)
    fit(sae, EmbeddingData(torch.as_tensor(emb[:500])), EmbeddingData(torch.as_tensor(emb[500:])),
        lr=3e-3, batch_size=64, epochs=60, validate_every=5, patience=5)  # fmt: skip
    sae.eval()
    features = feature_table(sae, elsa, sparse_codes(sae, emb), len(emb), top_n=10)
    items = pd.DataFrame({"item": np.arange(120), "original_id": np.arange(120).astype(str), "cluster": item_cluster})
    labels = feature_labels_table(features, items, n_labels=1)
    alive = labels["alive"].to_numpy()
    # the test's own count of each feature's majority cluster and purity
    majority, purity = [], []
    for top in labels["top_items"]:
        (cluster, count), = Counter(item_cluster[top].tolist()).most_common(1)
        majority.append(cluster)
        purity.append(count / len(top))
    majority, purity = np.array(majority), np.array(purity)
    assert alive.sum() >= 6
    assert (purity[alive] >= 0.8).mean() >= 0.8
    assert (labels["label"].to_numpy()[alive] == np.array([f"cluster {c}" for c in majority])[alive]).mean() >= 0.9
    assert {int(c) for c in majority[alive & (purity >= 0.8)]} == set(range(6))
    # the library's recovery table agrees with the count above
    per_feature, per_cluster = cluster_recovery(labels["top_items"].tolist(), item_cluster, alive)
    np.testing.assert_allclose(per_feature["purity"], purity)
    assert per_cluster["recovered"].all()
    summary = recovery_summary(per_feature, per_cluster)
    assert summary["share_clusters_recovered"] == 1.0
    assert summary["share_pure"] == pytest.approx((purity[alive] >= 0.8).mean())


def test_cluster_recovery_by_hand():
    item_cluster = np.array([0, 0, 0, 1, 1, 1])
    top = [[0, 1, 2], [0, 3, 4], [3, 4, 5], [0, 1, 3]]
    per_feature, per_cluster = cluster_recovery(top, item_cluster, np.array([True, True, False, True]), pure=0.6)
    np.testing.assert_allclose(per_feature["purity"], [1.0, 2 / 3, 1.0, 2 / 3])
    assert per_feature["majority_cluster"].tolist() == [0, 1, 1, 0]
    # cluster 1's purest alive feature is 1 (2/3); feature 2 (pure) is dead
    assert per_cluster["best_feature"].tolist() == [0, 1]
    np.testing.assert_allclose(per_cluster["best_purity"], [1.0, 2 / 3])
    assert per_cluster["n_pure"].tolist() == [2, 1]


def test_labels_from_an_item_metadata_file(tmp_path):
    items = pd.DataFrame({"item": [0, 1, 2], "original_id": ["a", "b", "c"]})
    (tmp_path / "meta.csv").write_text("id,category\nb,Jazz|Blues\na,Rock\nz,Pop\n")
    features = pd.DataFrame({"feature": [0], "frequency": [1.0], "top_items": [[1, 2]], "top_titles": [[]]})
    table = feature_labels_table(features, items, "category", min_count=1, metadata_file=tmp_path / "meta.csv", id_col="id")
    # item b (Jazz, Blues: lift 1/2 ÷ 1/3 = 1.5 each), item c unlisted; ties by name
    assert table["label"].tolist() == ["Blues, Jazz"]
    assert table["label_source"].iloc[0] == "meta.csv:category"
    with pytest.raises(KeyError, match="explain.labels.id_col"):
        feature_labels_table(features, items, "category", metadata_file=tmp_path / "meta.csv", id_col="nope")


# ----------------------------------------------------------------------------- the rules' jobs
def test_jobs_on_fixture_files(tmp_path):
    """label_features -> explain_groups -> explain_report on files in the stages' formats."""
    from sae_fixtures import write_stage_inputs

    from sagea.analysis.sae_features import feature_table, sparse_codes
    from sagea.data.matrix import load_interactions
    from sagea.data.splits import group_split, group_target_masks
    from sagea.explain.jobs import explain_job, explain_report_job, label_features_job
    from sagea.plan_explain import EXPLAIN_TABLES
    from sagea.groups.io import write_groups
    from sagea.io import read_embeddings, read_json, read_parquet, write_torch
    from sagea.stages.sae import write_features

    paths = write_stage_inputs(tmp_path)
    data, folder = paths["data"], paths["elsa"]
    elsa = ELSA.load(folder / "model.pt")
    sae = SAE(16, 32, k=4, seed=0).eval()
    write_torch(sae.checkpoint(), tmp_path / "sae.pt")
    emb = read_embeddings(folder / "user_embeddings.parquet")
    items = read_parquet(data / "items.parquet")
    titles = items.sort_values("item")["title"].to_numpy()
    write_features(feature_table(sae, elsa, sparse_codes(sae, emb), len(emb), 10, titles), tmp_path / "features.parquet")
    groups = {"similar_3": np.arange(30).reshape(10, 3), "random_3": np.arange(30, 60).reshape(10, 3)}
    paths_g = {}
    for name, members in groups.items():
        n = members.size
        frame = pd.DataFrame({"group": np.repeat(np.arange(len(members)), 3), "member": np.tile(np.arange(3), len(members)),
                              "user": members.ravel(), "original_id": [f"u{u}" for u in members.ravel()],
                              "subgroup": 0, "group_similarity": 0.0, "subgroup_similarity_0": np.nan,
                              "subgroup_similarity_1": np.nan, "between_similarity": np.nan, "n_common_targets": 1})  # fmt: skip
        assert len(frame) == n
        paths_g[name] = tmp_path / f"{name}.parquet"
        write_groups(frame, paths_g[name])
    label_features_job(tmp_path / "features.parquet", data / "items.parquet", tmp_path / "labels.parquet")
    labels = read_parquet(tmp_path / "labels.parquet")
    assert len(labels) == 32 and labels["label_source"].iloc[0] == "none"
    out = {k: tmp_path / f"{k}.{e}" for k, e in (("deletion", "parquet"), ("shared", "parquet"), ("clusters", "parquet"),
                                                  ("recovery", "json"), ("examples", "json"))}  # fmt: skip
    explain_job(data, paths_g, folder / "model.pt", tmp_path / "sae.pt", tmp_path / "labels.parquet", out,
                ms=[1, 2], n_random=2, batch_groups=4, n_examples=1, k=10, device="cpu")  # fmt: skip
    deletion = read_parquet(out["deletion"])
    assert deletion[["group_set", "m"]].values.tolist() == [["similar_3", 1], ["similar_3", 2], ["random_3", 1], ["random_3", 2]]
    # the job's top-m curve is the library's on the evaluation's member inputs (chunking aside)
    rows = load_interactions(data)
    masks = group_target_masks(groups["random_3"], rows.shape[1], 0.5, 42)
    inputs = torch.from_numpy(group_split(rows, groups["random_3"], masks)[0]).float()
    direct = deletion_curve(elsa, sae, inputs, "average", 4, [1, 2], k=10, n_random=1)
    np.testing.assert_allclose(deletion.loc[deletion["group_set"] == "random_3", "top_overlap"], direct["top"].mean(0))
    shared = read_parquet(out["shared"])
    with torch.no_grad():
        held = (encode_members(elsa, sae, inputs).codes > 0).all(dim=1).double().mean(0).numpy()
    np.testing.assert_allclose(shared.loc[shared["group_set"] == "random_3", "groups_sharing"], held)
    cards = read_json(out["examples"])["cards"]
    assert [c["group_set"] for c in cards] == ["similar_3", "random_3"]
    first = explain_group(elsa, sae, inputs[0], "average", 4, n=10)
    assert [r["item"] for r in cards[1]["explanation"]["items"]] == first.items["item"].tolist()
    assert read_parquet(out["clusters"]).empty and read_json(out["recovery"]) == {}
    outputs = {t: {e: tmp_path / f"explain_{t}.{e}" for e in ("csv", "tex", "md", "html")} for t in EXPLAIN_TABLES}
    explain_report_job({**out, "labels": tmp_path / "labels.parquet"}, {**outputs, "cards": tmp_path / "cards.html"},
                       dataset="fixture", sae_run="topk-h32-k4-l2")  # fmt: skip
    page = (tmp_path / "cards.html").read_text()
    assert titles[first.items["item"].iloc[0]] in page
    assert "m=2" in (tmp_path / "explain_deletion.md").read_text()
    assert "no planted clusters" in (tmp_path / "explain_clusters.md").read_text()


# ----------------------------------------------------------------------------- config -> jobs
def _default_config(**explain):
    from pathlib import Path

    import yaml
    from snakemake.utils import validate

    from sagea import plan

    repo = Path(__file__).resolve().parents[1]
    raw = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    raw["explain"] = explain
    config = plan.replicate_config(raw, raw["seed"])
    validate(config, str(repo / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def test_explain_plan_of_the_default_config():
    from sagea import plan_explain as explain_plan

    config = _default_config()
    pool, elsa, sae, option = explain_plan.choice(config, "synthetic")
    # report pool test, main ELSA run, the grid's first SAE, the first SAGEA option
    assert (pool, elsa, sae) == ("test", "f64-s42", "topk-h128-k8-l2")
    assert option == {"topk_inference": True, "normalize_users_embeddings": False}
    targets = explain_plan.targets(config)
    # 4 SAEs' labels + 5 explain_groups files + 3 tables x 4 formats + 1 card page
    assert len(targets) == 4 + 5 + 12 + 1
    assert "results/synthetic/s42/sae/f64-s42/topk-h256-k16-l2/feature_labels.parquet" in targets
    assert "results/default/s42/explain/cards-synthetic.html" in targets
    settings = explain_plan.job_settings(config, "synthetic")
    assert settings["ms"] == [1, 2, 4, 8] and settings["fusion"] == "average" and settings["k"] == 20
    assert explain_plan.targets(_default_config(enabled=False)) == []
    assert explain_plan.choice(_default_config(sae="topk-h256-k16-l2", pool="valid"), "synthetic")[:3] == (
        "valid", "f64-s42", "topk-h256-k16-l2")  # fmt: skip
    with pytest.raises(ValueError, match="explain.sae"):
        explain_plan.choice(_default_config(sae="topk-h999-k8-l2"), "synthetic")


def test_explain_group_on_the_group_split_equals_the_evaluations_recommendations():
    """The evaluation (evaluate_groups: split, chunking, recommendations frame) and explain_group
    on the same group's member inputs under the group split give the same list."""
    from sagea.evaluation.group import GroupEvalSettings, evaluate_groups
    from sagea.data.splits import group_split, group_target_masks

    matrix, item_cluster = clustered_matrix(60, 120, 6, seed=1)
    elsa = clustered_elsa(item_cluster, 16, seed=1)
    sae = SAE(16, 32, k=4, seed=1).eval()
    groups = np.arange(45).reshape(15, 3)[::-1].copy()
    settings = GroupEvalSettings(k=20, batch_groups=4, split_seed=7)
    strategies = [SageaRecommender(elsa, sae, f, 4) for f in ("average", "common_features")]
    with torch.no_grad():
        results = evaluate_groups(strategies, matrix, groups, settings, np.ones(120), elsa.encoder.detach().numpy(), elsa)
    masks = group_target_masks(groups, 120, settings.target_ratio, settings.split_seed)
    inputs = torch.from_numpy(group_split(matrix, groups, masks)[0]).float()
    for fusion in ("average", "common_features"):
        recs = results[fusion].recommendations
        for g in (0, 6, 14):
            expected = recs[recs["group"] == g].sort_values("rank")["item"].tolist()
            assert explain_group(elsa, sae, inputs[g], fusion, 4).items["item"].tolist() == expected


def test_labels_follow_the_sae_grids_of_the_comparison():
    from sagea import plan_explain as explain_plan

    config = _default_config()
    config["compare"]["sae_elsa_runs"] = ["f64-s43"]
    labelled = explain_plan.labelled_saes(config, "synthetic")
    assert len(labelled) == 8 and ("f64-s43", "topk-h128-k8-l2") in labelled
    assert len(explain_plan.targets(config)) == 8 + 5 + 12 + 1
