"""The sparse autoencoder (sagea.models.sae): activations, losses, training, persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sae_fixtures import clustered_elsa, clustered_matrix, embeddings_of
from sagea.models.sae import SAE, fit
from sagea.models.sae_data import EmbeddingData, InteractionData, positive_view


@pytest.fixture(scope="module")
def clustered():
    matrix, item_cluster = clustered_matrix(300, 120)
    elsa = clustered_elsa(item_cluster, 16)
    return matrix, elsa, embeddings_of(elsa, matrix)


def _x(n=6, d=8, seed=0):
    return torch.as_tensor(np.random.default_rng(seed).standard_normal((n, d)), dtype=torch.float32)


# ----------------------------------------------------------------------------- standardisation
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(2, 9), st.integers(0, 10_000), st.floats(0.1, 50), st.floats(-20, 20))
def test_standardize_round_trip(n, d, seed, scale, shift):
    x = _x(n, d, seed) * scale + shift
    xs, mean, std = SAE.standardize(x)
    assert torch.allclose(SAE.destandardize(xs, mean, std), x, atol=1e-4 * scale + 1e-4)
    assert torch.allclose(mean[:, 0], x.mean(1), atol=1e-4 * (scale + abs(shift)))
    # std is the unbiased row std of x plus 1e-7, so each standardised row has unbiased std ~1
    expected = torch.tensor([float(np.std(row, ddof=1)) for row in x.double().numpy()], dtype=torch.float64) + 1e-7
    assert torch.allclose(std[:, 0].double(), expected, rtol=1e-4)
    assert torch.allclose(xs.mean(1), torch.zeros(n), atol=1e-4)


# ----------------------------------------------------------------------------- activations
def test_topk_keeps_exactly_the_k_largest_and_inference_switch():
    sae = SAE(8, 32, k=5, variant="topk", seed=1)
    with torch.no_grad():
        sae.encoder_b.fill_(5.0)  # every pre-activation positive
    x = _x(4, 8)
    sae.eval()
    xs, _, _ = SAE.standardize(x)
    pre = sae.pre_activation(xs)
    code, _, _ = sae.encode(x)
    assert ((code != 0).sum(1) == 5).all()
    for row in range(4):
        top = set(torch.argsort(pre[row], descending=True)[:5].tolist())
        assert set(torch.nonzero(code[row]).ravel().tolist()) == top
        assert torch.allclose(code[row][list(top)], pre[row][list(top)])
    full, _, _ = sae.encode(x, topk_inference=False)
    assert torch.equal(full, pre)
    sae.train()
    assert ((sae.encode(x, topk_inference=False)[0] != 0).sum(1) == 5).all()  # training is always sparse


def test_batchtopk_keeps_k_times_batch_and_thresholds_at_inference():
    sae = SAE(8, 16, k=3, variant="batchtopk", seed=2)
    with torch.no_grad():
        sae.encoder_b.fill_(5.0)
    sae.train()
    minima = []
    for seed in (0, 1):
        x = _x(4, 8, seed)
        pre = sae.pre_activation(SAE.standardize(x)[0])
        code = sae.activate(pre, track=True)
        assert int((code != 0).sum()) == 3 * 4
        kept = torch.sort(pre.flatten(), descending=True).values[:12]
        assert torch.allclose(torch.sort(code[code != 0], descending=True).values, kept)
        minima.append(float(kept.min().detach()))
    assert float(sae.threshold) == pytest.approx(np.mean(minima), rel=1e-6)  # running mean of the minima
    sae.eval()
    x = _x(5, 8, 7)
    pre = sae.pre_activation(SAE.standardize(x)[0])
    code = sae.encode(x)[0]
    assert torch.equal(code, torch.where(pre > sae.threshold, pre, torch.zeros_like(pre)))
    assert torch.equal(sae.encode(x, topk_inference=False)[0], pre)
    assert float(sae.threshold) == pytest.approx(np.mean(minima), rel=1e-6)  # inference does not update


def test_basic_is_relu_and_normalize_gives_unit_codes():
    sae = SAE(8, 16, variant="basic", normalize=True, seed=3)
    x = _x(5, 8)
    code = sae.encode(x)[0]
    pre = sae.pre_activation(SAE.standardize(x)[0])
    assert torch.allclose(code, F.normalize(pre, dim=-1))
    assert torch.allclose(code.norm(dim=1), torch.ones(5), atol=1e-5)


def test_decoder_init_is_encoder_transpose_and_rows_stay_unit_norm(clustered):
    sae = SAE(16, 32, k=4, seed=4)
    assert torch.allclose(sae.decoder_w, F.normalize(sae.encoder_w.t(), dim=-1))
    opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
    x = torch.as_tensor(clustered[2][:64])
    for _ in range(5):
        sae.train_step(opt, x)
        assert torch.allclose(sae.decoder_w.norm(dim=1), torch.ones(32), atol=1e-5)
    # the projected gradient is tangent to each unit row
    sae.losses(x)["Loss"].backward()
    sae.project_decoder_grad()
    assert torch.allclose((sae.decoder_w.grad * sae.decoder_w).sum(1), torch.zeros(32), atol=1e-6)


def test_dead_latent_bookkeeping():
    sae = SAE(8, 6, k=2, variant="topk", dead_after=3, seed=5)
    with torch.no_grad():
        sae.encoder_b.copy_(torch.tensor([100.0, 100.0, -100.0, -100.0, -100.0, -100.0]))
    sae.train()
    x = _x(4, 8)
    for step in range(1, 4):
        sae.losses(x)
        assert sae.inactive_batches.tolist() == [0, 0, step, step, step, step]
        assert sae.dead_latents().tolist() == [False, False] + [step >= 3] * 4
    sae.eval()
    sae.losses(x)  # evaluation does not count
    assert sae.inactive_batches.tolist() == [0, 0, 3, 3, 3, 3]
    sae.train()
    with torch.no_grad():
        sae.encoder_b[2] = 1000.0  # latent 2 now wins the top-2: its counter resets
    sae.losses(x)
    assert sae.inactive_batches[2] == 0 and sae.inactive_batches[3] == 4


# ----------------------------------------------------------------------------- losses
def test_each_loss_term_against_a_direct_computation():
    d, h, k = 8, 12, 3
    sae = SAE(d, h, k=k, variant="topk", l1_coef=0.01, aux_coef=0.1, contrastive_coef=0.2, aux_k=2, seed=6)
    sae.eval()
    x, x_pos = _x(5, d, 1) * 3 + 1, _x(5, d, 2)
    with torch.no_grad():
        sae.inactive_batches.copy_(torch.tensor([0, 9, 0, 9, 9, 0, 0, 0, 0, 0, 0, 0]))  # latents 1, 3, 4 dead
        terms = sae.losses(x, x_pos)
        xn = x.double().numpy()
        mean = xn.mean(1, keepdims=True)
        std = xn.std(1, ddof=1, keepdims=True) + 1e-7
        xs = (xn - mean) / std
        W, b, D, c = (p.detach().double().numpy() for p in (sae.encoder_w, sae.encoder_b, sae.decoder_w, sae.decoder_b))
        pre = np.maximum((xs - c) @ W + b, 0)
        code = np.zeros_like(pre)
        for r in range(5):
            top = np.argsort(-pre[r])[:k]
            code[r, top] = pre[r, top]
        out = (code @ D + c) * std + mean
        l2 = np.mean((out - xn) ** 2)
        cos = np.mean([1 - o @ t / np.linalg.norm(o) / np.linalg.norm(t) for o, t in zip(out, xn)])
        l1 = np.abs(code).sum(1).mean()
        dead = [1, 3, 4]
        aux = np.zeros_like(pre)
        for r in range(5):
            top = np.array(dead)[np.argsort(-pre[r, dead])[:2]]
            aux[r, top] = pre[r, top]
        aux_loss = np.mean((xs - (code @ D + aux @ D + c)) ** 2)
        # InfoNCE by hand: -log softmax of the diagonal, both directions
        pos = sae.encode(x_pos)[0].double().numpy()
        a = code / np.linalg.norm(code, axis=1, keepdims=True)
        p = pos / np.linalg.norm(pos, axis=1, keepdims=True)
        sim = a @ p.T
        ce = lambda s: np.mean([-s[i, i] + math.log(np.exp(s[i]).sum()) for i in range(5)])  # noqa: E731
        con = (ce(sim) + ce(sim.T)) / 2
    assert float(terms["L2"]) == pytest.approx(l2, rel=1e-4)
    assert float(terms["Cosine"]) == pytest.approx(cos, rel=1e-3, abs=1e-6)
    assert float(terms["L1"]) == pytest.approx(l1, rel=1e-4)
    assert float(terms["L0"]) == pytest.approx(k)
    assert float(terms["Auxiliary"]) == pytest.approx(aux_loss, rel=1e-4)
    assert float(terms["Contrastive"]) == pytest.approx(con, rel=1e-4)
    rec_coef = 1 - (0.01 + 0.1 + 0.2)
    assert float(terms["Loss"]) == pytest.approx(rec_coef * l2 + 0.01 * l1 + 0.1 * aux_loss + 0.2 * con, rel=1e-4)
    sae.hparams["reconstruction_loss"] = "cosine"
    with torch.no_grad():
        total = float(sae.losses(x, x_pos)["Loss"])
    assert total == pytest.approx(rec_coef * cos + 0.01 * l1 + 0.1 * aux_loss + 0.2 * con, rel=1e-4)


def test_no_dead_latents_means_zero_auxiliary_loss_and_bad_coefficients_fail():
    sae = SAE(8, 12, k=3, seed=7)
    assert float(sae.losses(_x())["Auxiliary"]) == 0.0
    with pytest.raises(ValueError, match="must stay below 1"):
        SAE(8, 12, k=3, l1_coef=0.5, aux_coef=0.5)
    with pytest.raises(ValueError, match="variant"):
        SAE(8, 12, variant="dense")


def test_positive_view_keeps_half_the_row_plus_noise():
    import scipy.sparse as sp

    rows = sp.csr_matrix(np.kron(np.eye(3), np.ones((1, 20)))[:, :50].astype(np.float32))  # 20, 20, 10 items
    view = positive_view(rows, np.random.default_rng(0), keep=0.5, noise=0.1)
    for r, n in enumerate((20, 20, 10)):
        own = set(rows[r].indices)
        items = set(view[r].indices)
        kept = items & own
        assert math.ceil(0.5 * n) <= len(kept) <= math.ceil(0.5 * n) + math.ceil(0.1 * n)
        assert len(items - own) <= math.ceil(0.1 * n)
        assert len(items) <= math.ceil(0.5 * n) + math.ceil(0.1 * n)
    assert (view.data == 1).all()


# ----------------------------------------------------------------------------- training
def _fit(sae, emb, **kw):
    args = dict(lr=3e-3, batch_size=32, epochs=40, validate_every=5, patience=100, seed=0)
    args.update(kw)
    return fit(sae, EmbeddingData(torch.as_tensor(emb[:240])), EmbeddingData(torch.as_tensor(emb[240:270])), **args)


@pytest.mark.parametrize("variant", ["topk", "batchtopk", "basic"])
def test_training_reduces_loss_and_reconstructs(clustered, variant):
    matrix, elsa, emb = clustered
    sae = SAE(16, 64, k=8, variant=variant, seed=0)
    result = _fit(sae, emb)
    losses = [row["Loss_valid"] for row in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.best_score == min(losses)
    from sagea.evaluation.sae_metrics import code_statistics

    stats = code_statistics(sae, emb[270:])
    assert stats["CosineSim"] > 0.9
    if variant == "topk":
        assert stats["L0"] == 8


def test_early_stopping_counts_validations_or_epochs(clustered):
    emb = clustered[2]
    # lr 0 and no auxiliary loss: the validation loss never changes, so it never improves after
    # the first validation (epoch 5)
    by_validations = _fit(SAE(16, 32, k=4, aux_coef=0, seed=0), emb, lr=0.0, patience=3)
    assert by_validations.stopped_early and by_validations.epochs_run == 20 and by_validations.best_epoch == 5
    by_epochs = _fit(SAE(16, 32, k=4, aux_coef=0, seed=0), emb, lr=0.0, patience=3, early_stop_unit="epochs")
    assert by_epochs.stopped_early and by_epochs.epochs_run == 10


def test_restores_best_weights(clustered):
    emb = clustered[2]
    sae = SAE(16, 32, k=4, seed=0)
    result = _fit(sae, emb, epochs=20, lr=3e-2)
    from sagea.models.sae import _evaluate_loss

    again = _evaluate_loss(sae, EmbeddingData(torch.as_tensor(emb[240:270])), 32, 0, "cpu")["Loss"]
    assert again == pytest.approx(result.best_score, rel=1e-5)


def test_deterministic_and_resume_equals_uninterrupted(clustered, tmp_path):
    emb = clustered[2]
    a = SAE(16, 32, k=4, variant="batchtopk", seed=0)
    b = SAE(16, 32, k=4, variant="batchtopk", seed=0)
    ra, rb = _fit(a, emb, epochs=15), _fit(b, emb, epochs=15)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert ra.history[-1]["Loss_train"] == rb.history[-1]["Loss_train"]
    # interrupted after epoch 7 (checkpoint of epoch 5), resumed in a fresh model object
    state = tmp_path / "train_state.pt"
    partial = _fit(SAE(16, 32, k=4, variant="batchtopk", seed=0), emb, epochs=15, checkpoint_path=state,
                   stop_after_epochs=7)  # fmt: skip
    assert partial.epochs_run == 7 and state.exists()
    c = SAE(16, 32, k=4, variant="batchtopk", seed=123)  # other init: everything comes from the checkpoint
    rc = _fit(c, emb, epochs=15, checkpoint_path=state)
    assert state.exists()  # kept until the stage has written its outputs (it clears it then)
    for key, value in a.state_dict().items():
        assert torch.equal(value, c.state_dict()[key]), key
    assert [r["Loss_valid"] for r in rc.history] == [r["Loss_valid"] for r in ra.history]


def test_interaction_path_with_contrastive_loss_is_deterministic(clustered):
    matrix, elsa, emb = clustered

    def run():
        sae = SAE(16, 32, k=4, contrastive_coef=0.3, seed=0)
        train = InteractionData(matrix[:240], elsa, contrastive=True)
        valid = InteractionData(matrix[240:270], elsa, contrastive=True)
        result = fit(sae, train, valid, lr=3e-3, batch_size=32, epochs=6, validate_every=3, patience=10, seed=0)
        return sae, result

    (s1, r1), (s2, r2) = run(), run()
    assert torch.equal(s1.encoder_w, s2.encoder_w)
    assert r1.history[-1]["Contrastive_train"] > 0
    assert r1.history[-1]["Contrastive_valid"] == r2.history[-1]["Contrastive_valid"]
    # the interaction path feeds ELSA embeddings x A, the same as the precomputed ones
    x, _ = InteractionData(matrix[:5], elsa).batch(np.arange(5), None, "cpu")
    assert torch.allclose(x, torch.as_tensor(emb[:5]), atol=1e-5)


# ----------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("variant", ["topk", "batchtopk"])
def test_checkpoint_round_trip(tmp_path, variant):
    from sagea.io import write_torch

    sae = SAE(8, 16, k=3, variant=variant, normalize=True, reconstruction_loss="cosine", seed=8)
    sae.train()
    sae.losses(_x(6, 8))  # moves the BatchTopK threshold
    write_torch(sae.checkpoint(), tmp_path / "model.pt")
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    expected = {"encoder_w", "encoder_b", "decoder_w", "decoder_b"} | ({"threshold"} if variant == "batchtopk" else set())
    assert set(ckpt["model_state_dict"]) == expected
    assert ckpt["model_state_dict"]["encoder_w"].shape == (8, 16)
    assert ckpt["model_state_dict"]["decoder_w"].shape == (16, 8)
    loaded = SAE.load(tmp_path / "model.pt")
    assert not loaded.training and loaded.hparams == sae.hparams
    sae.eval()
    x = _x(4, 8, 3)
    for ti in (True, False):
        assert torch.equal(loaded.encode(x, ti)[0], sae.encode(x, ti)[0])
        assert torch.equal(loaded(x, ti), sae(x, ti))
