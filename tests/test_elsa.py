"""ELSA stage: metrics, model invariants, training, baselines, checkpoints, stage jobs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from elsa_fixtures import clustered_interactions, ml_small_matrix, user_split
from sagea.data.batches import DeviceCSR
from sagea.evaluation import metrics as M
from sagea.evaluation.single_user import evaluate_scorer, single_user_split
from sagea.models.elsa import ELSA, fit, nmse_loss
from sagea.recommenders.user_baselines import ease_weights, pop_scorer
from sagea.scoring import item_popularity, top_k_items
from sagea.scoring import minmax as minmax_rows
from sagea.stages.elsa import validator

L2 = np.log2


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


# ----------------------------------------------------------------------------- metrics by hand
def test_metrics_hand_case_fewer_targets_than_k():
    # k = 4, hits at ranks 1 and 3, two relevant items (fewer than k)
    hits = np.array([[1, 0, 1, 0]], dtype=bool)
    n_rel = np.array([2])
    dcg = 1 + 1 / L2(4)
    idcg = 1 + 1 / L2(3)
    assert M.ndcg(hits, n_rel)[0] == pytest.approx(dcg / idcg)
    assert M.recall(hits, n_rel)[0] == pytest.approx(1.0)  # 2 / min(4, 2)
    assert M.precision(hits)[0] == pytest.approx(0.5)
    assert M.hit_rate(hits)[0] == 1.0
    assert M.mrr(hits)[0] == 1.0


def test_metrics_hand_case_more_targets_than_k_and_empty():
    hits = np.array([[0, 1, 0], [0, 0, 0]], dtype=bool)
    n_rel = np.array([5, 0])
    # IDCG uses min(k, n_rel) = 3 relevant items at the top
    assert M.ndcg(hits, n_rel)[0] == pytest.approx((1 / L2(3)) / (1 + 1 / L2(3) + 1 / L2(4)))
    assert M.recall(hits, n_rel)[0] == pytest.approx(1 / 3)
    assert M.mrr(hits)[0] == pytest.approx(0.5)
    assert M.ndcg(hits, n_rel)[1] == 0.0 and M.recall(hits, n_rel)[1] == 0.0
    assert M.hit_rate(hits, min_hits=2)[0] == 0.0  # research defect 1


def _evaluate_dense(scores: np.ndarray, inputs: np.ndarray, targets: np.ndarray, k: int) -> dict:
    """Evaluate fixed scores (the scorer ignores x and returns the user's rows of ``scores``)."""
    table = torch.as_tensor(scores, dtype=torch.float32)
    calls = {"start": 0}

    def score_fn(x):
        start = calls["start"]
        calls["start"] += x.shape[0]
        return table[start : start + x.shape[0]]

    assert (targets.sum(1) > 0).all()  # every row evaluated, so the scorer's row counter lines up
    return evaluate_scorer(score_fn, sp.csr_matrix(inputs), sp.csr_matrix(targets), k=k, batch_size=2)


def test_evaluate_scorer_hand_case_with_ties_and_exclusion():
    # items 0..5; user 0 holds item 0 as input (highest score, must be excluded);
    # items 1 and 2 tie (both targets, so the tie order does not matter); item 4 is a target at rank 4.
    scores = np.array(
        [[9.0, 5.0, 5.0, 4.0, 3.0, 0.0],
         [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
         [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]
    )  # fmt: skip
    inputs = np.zeros((3, 6))
    inputs[0, 0] = 1
    inputs[1, 5] = 1
    targets = np.zeros((3, 6))
    targets[0, [1, 2, 4]] = 1
    targets[1, [0]] = 1  # lowest score, outside the top 4
    targets[2, [2, 3, 4, 5]] = 1  # constant scores: with 6 items and 4 targets every top-4 holds >= 2
    res = _evaluate_dense(scores, inputs, targets, k=4)
    ndcg0 = (1 + 1 / L2(3) + 1 / L2(5)) / (1 + 1 / L2(3) + 1 / L2(4))
    r0 = 3 / 3
    assert res["users"] == 3
    # user 2's scores all tie: whatever top-4 is chosen, the metrics must match that list
    top2 = top_k_items(torch.as_tensor(scores[2:3], dtype=torch.float32), torch.zeros(1, 6), 4)[0].numpy()
    hits2 = targets[2, top2] > 0
    ndcg2 = M.ndcg(hits2[None], np.array([4]))[0]
    assert res["NDCG4"] == pytest.approx((ndcg0 + 0.0 + ndcg2) / 3)
    assert res["R4"] == pytest.approx((r0 + 0.0 + hits2.sum() / 4) / 3)
    assert res["P4"] == pytest.approx((3 / 4 + 0 + hits2.sum() / 4) / 3)
    assert res["Hit4"] == pytest.approx(2 / 3)
    assert res["MRR4"] == pytest.approx((1 + 0 + 1 / (np.argmax(hits2) + 1)) / 3)


def test_evaluate_scorer_skips_users_without_targets_and_coverage():
    inputs = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32))
    targets = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float32))
    # scorer: prefer item (i+1) mod 4 for input item i (a "next item" recommender)
    nxt = torch.roll(torch.eye(4), shifts=1, dims=1)
    res = evaluate_scorer(lambda x: x @ nxt, inputs, targets, k=1, batch_size=8)
    assert res["users"] == 2
    assert res["NDCG1"] == pytest.approx(1.0) and res["R1"] == pytest.approx(1.0)
    assert res["Coverage1"] == pytest.approx(2 / 4)  # items 1 and 3 recommended to evaluated users


def test_evaluate_scorer_rejects_k_above_items():
    x = sp.csr_matrix(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="evaluation.k"):
        evaluate_scorer(lambda t: t, x, x, k=4)


def test_minmax_rows():
    out = minmax_rows(torch.tensor([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]]))
    assert torch.allclose(out, torch.tensor([[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]]))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 12), st.integers(1, 15), st.integers(0, 10_000))
def test_device_csr_dense_matches_scipy(n_rows, n_cols, seed):
    rng = np.random.default_rng(seed)
    mat = sp.random(n_rows, n_cols, density=0.3, random_state=rng, format="csr", dtype=np.float32)
    rows = rng.integers(0, n_rows, size=rng.integers(1, 8))
    dense = DeviceCSR(mat, "cpu").dense(rows, out=torch.full((8, n_cols), 7.0))
    np.testing.assert_array_equal(dense.numpy(), mat[rows].toarray())


# ----------------------------------------------------------------------------- model invariants
def test_forward_encode_decode_and_loss_by_hand():
    model = ELSA(5, 3, seed=0)
    a = model.encoder.detach()
    x = torch.tensor([[1.0, 0, 1, 0, 0], [0, 0, 0, 0, 1]])
    np.testing.assert_allclose(model.encode(x).detach(), x @ a, rtol=1e-6)
    np.testing.assert_allclose(model(x).detach(), torch.relu(x @ a @ a.T - x), rtol=1e-5, atol=1e-6)
    assert torch.allclose(model.encode(x.to_sparse()), model.encode(x))
    p = model(x).detach()
    pn = p / p.norm(dim=1, keepdim=True)
    xn = x / x.norm(dim=1, keepdim=True)
    assert nmse_loss(p, x).item() == pytest.approx(((pn - xn) ** 2).sum(1).mean().item(), rel=1e-5)


def test_rows_unit_norm_and_projected_gradient_orthogonal():
    x = torch.as_tensor(clustered_interactions(64, 40, per_user=6, seed=1).toarray())
    model = ELSA(40, 8, seed=3)
    assert torch.allclose(model.encoder.norm(dim=1), torch.ones(40), atol=1e-6)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        nmse_loss(model(x), x).backward()
        raw = model.encoder.grad.clone()
        model.project_gradient()
        g, a = model.encoder.grad, model.encoder.detach()
        assert torch.allclose((g * a).sum(dim=1), torch.zeros(40), atol=1e-6)
        # the projection removes exactly the radial part
        assert torch.allclose(raw - g, (raw * a).sum(1, keepdim=True) * a, atol=1e-6)
        opt.step()
        model.normalize_rows()
        assert torch.allclose(model.encoder.norm(dim=1), torch.ones(40), atol=1e-5)
    # and through fit()
    fit(model, sp.csr_matrix(x.numpy()), None, lr=0.05, batch_size=16, epochs=2, seed=0)
    assert torch.allclose(model.encoder.norm(dim=1), torch.ones(40), atol=1e-5)


# ----------------------------------------------------------------------------- training
SYN_HP = dict(lr=0.01, batch_size=64, epochs=12, patience=4, seed=7)


@pytest.fixture(scope="module")
def synthetic():
    matrix = clustered_interactions(600, 200, n_clusters=8, per_user=20, seed=0)
    split = user_split(matrix.shape[0], seed=42)
    train = matrix[split["train"]]
    return train, single_user_split(matrix, split["valid"]), single_user_split(matrix, split["test"])


def _train(synthetic, factors=16, **kw):
    train, valid, test = synthetic
    model = ELSA(train.shape[1], factors, seed=SYN_HP["seed"])
    result = fit(model, train, validator(valid), **{**SYN_HP, **kw})
    return model, result, evaluate_scorer(model.scores, *test)


def test_elsa_beats_pop_on_synthetic(synthetic):
    train, _, test = synthetic
    _, result, elsa = _train(synthetic)
    pop = evaluate_scorer(pop_scorer(train), *test)
    assert elsa["NDCG20"] > pop["NDCG20"] + 0.05, (elsa, pop)
    assert result.best_epoch >= 1 and len(result.history) >= result.best_epoch


def test_same_seed_identical_and_best_weights_restored(synthetic):
    m1, r1, e1 = _train(synthetic)
    m2, r2, e2 = _train(synthetic)
    assert e1 == e2
    assert torch.equal(m1.encoder, m2.encoder)
    assert [h["loss"] for h in r1.history] == [h["loss"] for h in r2.history]
    # the restored weights are the best epoch's: re-evaluating on valid reproduces its NDCG
    _, valid, _ = synthetic
    assert evaluate_scorer(m1.scores, *valid)["NDCG20"] == pytest.approx(r1.best_valid["NDCG20"], abs=1e-9)
    assert r1.best_valid["NDCG20"] == max(h["NDCG20_valid"] for h in r1.history)


def test_resume_after_interruption_equals_uninterrupted(synthetic, tmp_path):
    state = tmp_path / "train_state.pt"
    ref_model, ref, _ = _train(synthetic, epochs=6, patience=10)

    class Interrupt(Exception):
        pass

    def stop_at_3(record):
        if record["epoch"] == 3:
            raise Interrupt

    train, valid, _ = synthetic
    with pytest.raises(Interrupt):
        fit(ELSA(train.shape[1], 16, seed=SYN_HP["seed"]), train, validator(valid), **{**SYN_HP, "epochs": 6, "patience": 10},
            checkpoint_path=state, callback=stop_at_3)  # fmt: skip
    assert state.exists()
    seen = []
    model = ELSA(train.shape[1], 16, seed=999)  # weights come from the state file
    res = fit(model, train, validator(valid), **{**SYN_HP, "epochs": 6, "patience": 10}, checkpoint_path=state,
              callback=lambda r: seen.append(r["epoch"]))  # fmt: skip
    assert seen == [4, 5, 6]
    assert torch.equal(model.encoder, ref_model.encoder)
    strip = lambda hist: [{k: v for k, v in h.items() if "seconds" not in k} for h in hist]  # noqa: E731
    assert strip(res.history) == strip(ref.history)
    assert res.best_epoch == ref.best_epoch


def test_checkpoint_round_trip_and_research_format(tmp_path):
    model = ELSA(30, 4, seed=1)
    model.save(tmp_path / "model.pt", hyperparameters={"factors": 4, "lr": 1e-4})
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    assert list(ckpt["model_state_dict"]) == ["encoder"]
    assert ckpt["n_items"] == 30 and ckpt["factors"] == 4 and ckpt["hyperparameters"]["lr"] == 1e-4
    loaded = ELSA.load(tmp_path / "model.pt", "cpu")
    assert torch.equal(loaded.encoder, model.encoder)
    # a research-code checkpoint: model + optimiser state dicts
    torch.save({"model_state_dict": model.state_dict(), "optimizer_state_dict": {}}, tmp_path / "research.ckpt")
    assert torch.equal(ELSA.load(tmp_path / "research.ckpt").encoder, model.encoder)
    plain = ELSA(30, 4, seed=1, relu=False)  # the elsarec-style objective survives a round trip
    x = torch.eye(30)[:3]
    assert torch.equal(plain(x), plain.scores(x)) and (plain.scores(x) < 0).any()
    plain.save(tmp_path / "plain.pt")
    assert ELSA.load(tmp_path / "plain.pt").relu is False and ELSA.load(tmp_path / "model.pt").relu is True
    torch.save({"model_state_dict": {"W": model.encoder}}, tmp_path / "bad.pt")
    with pytest.raises(KeyError, match="encoder"):
        ELSA.load(tmp_path / "bad.pt")


# ----------------------------------------------------------------------------- baselines
def test_ease_matches_numpy_closed_form():
    x = clustered_interactions(50, 12, n_clusters=3, per_user=4, seed=2).toarray().astype(np.float64)
    lam = 3.0
    p = np.linalg.inv(x.T @ x + lam * np.eye(12))
    expected = np.eye(12) - p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(ease_weights(sp.csr_matrix(x), lam).numpy(), expected, rtol=1e-4, atol=1e-6)


def test_pop_counts_training_users():
    train = sp.csr_matrix(np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0]], dtype=np.float32))
    np.testing.assert_array_equal(item_popularity(train), [3, 1, 1])
    assert torch.equal(pop_scorer(train)(torch.zeros(2, 3)), torch.tensor([[3.0, 1, 1], [3.0, 1, 1]]))


# ----------------------------------------------------------------------------- real data
def test_elsa_beats_pop_on_ml_latest_small(ml_small):
    """ml-latest-small, rating >= 4, users >= 20, items >= 10 (elsa_fixtures): ELSA >> POP."""
    matrix = ml_small_matrix(ml_small)
    assert matrix.shape[0] > 400 and matrix.shape[1] > 1000
    split = user_split(matrix.shape[0], seed=42)
    train = matrix[split["train"]]
    valid = single_user_split(matrix, split["valid"])
    test = single_user_split(matrix, split["test"])
    model = ELSA(matrix.shape[1], 64, seed=42)
    fit(model, train, validator(valid), lr=0.01, batch_size=64, epochs=15, patience=5, seed=42)
    elsa = evaluate_scorer(model.scores, *test)
    pop = evaluate_scorer(pop_scorer(train), *test)
    assert elsa["NDCG20"] > pop["NDCG20"] + 0.05, (elsa["NDCG20"], pop["NDCG20"])
    assert elsa["R20"] > pop["R20"] + 0.05
    assert math.isfinite(elsa["MRR20"]) and elsa["Coverage20"] > pop["Coverage20"]
