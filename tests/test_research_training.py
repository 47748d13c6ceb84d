"""Research mode of training and baselines: each switch against a hand computation or an
independent straightforward implementation of the research code's procedure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import rankdata

from elsa_fixtures import clustered_interactions, user_split, write_data_dir
from sae_fixtures import write_stage_inputs
from sagea.evaluation.validation_streams import legacy_target_split, sampled_interactions_embeddings
from sagea.models.elsa import ELSA, nmse_loss
from sagea.models.elsa import fit as fit_elsa
from sagea.models.sae import SAE
from sagea.models.sae_data import EmbeddingData
from sagea.recommenders.aggregation import ElsaMean, ScoreAggregation
from sagea.recommenders.gfar import GFAR, borda_candidates, gfar_select
from sagea.stages import elsa as elsa_stage
from sagea.stages.sae import research_validation_data, train_sae


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def _random_csr(n_rows=40, n_items=30, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, min(12, n_items), size=n_rows)
    lengths[:3] = [0, 1, 5]  # empty, single and a 5-item row (ceil(0.2 * 5) = 1)
    rows = [np.sort(rng.choice(n_items, size=n, replace=False)) for n in lengths]
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    data = np.ones(int(lengths.sum()), dtype=np.float32)
    return sp.csr_matrix((data, np.concatenate(rows), indptr), shape=(n_rows, n_items))


def _research_split(matrix: sp.csr_matrix, ratio: float, seed: int):
    """The research code's split written out: global np.random.seed, one permutation per row."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        mask = np.concatenate([
            np.random.permutation(np.array([True] * int(np.ceil(n * ratio)) + [False] * int(n - np.ceil(n * ratio))))
            for n in np.diff(matrix.indptr)
        ]).astype(bool)  # fmt: skip  (an empty row's float array would turn the mask to float)
    finally:
        np.random.set_state(state)
    inputs, targets = matrix.copy(), matrix.copy()
    inputs.data = inputs.data * ~mask
    targets.data = targets.data * mask
    inputs.eliminate_zeros()
    targets.eliminate_zeros()
    return inputs, targets


# ----------------------------------------------------------------------------- ELSA validation stream
@pytest.mark.parametrize("seed", [42, 43, 7])
def test_legacy_target_split_equals_the_research_loop(seed):
    matrix = _random_csr(seed=seed)
    ours = legacy_target_split(matrix, 0.2, seed)
    expected = _research_split(matrix, 0.2, seed)
    for got, want in zip(ours, expected):
        assert (got != want).nnz == 0
    assert (ours[0] + ours[1] != matrix).nnz == 0
    assert np.diff(ours[1].indptr)[:3].tolist() == [0, 1, 1]  # ceil(0.2 * n) targets


def test_elsa_research_validation_redraws_targets_every_epoch(tmp_path, monkeypatch):
    """The stage validates epoch e on targets drawn from split seed + e (epochs from 1)."""
    matrix = clustered_interactions(200, 60, n_clusters=4, per_user=10, seed=5)
    split = user_split(matrix.shape[0])
    data = tmp_path / "data"
    write_data_dir(matrix, split, data)
    seen = []
    real = elsa_stage.legacy_target_split

    def recording(rows, ratio, seed):
        seen.append((rows.shape[0], seed))
        return real(rows, ratio, seed)

    monkeypatch.setattr(elsa_stage, "legacy_target_split", recording)
    hp = dict(factors=8, lr=0.01, beta1=0.9, beta2=0.99, batch_size=64, epochs=3, patience=5, seed=3,
              research_validation=True)  # fmt: skip
    out = tmp_path / "elsa"
    metrics = elsa_stage.train_elsa(data, data / "split.parquet", out / "model.pt", out / "metrics.json",
                                    out / "history.parquet", hp, split_seed=11, device="cpu")  # fmt: skip
    assert seen == [(len(split["valid"]), 12), (len(split["valid"]), 13), (len(split["valid"]), 14)]
    assert [r["epoch"] for r in metrics["history"]] == [1, 2, 3]
    # the stream function itself: epoch 2 of the research protocol = the research loop with seed 11 + 2
    stream = elsa_stage.validation_pairs(matrix[split["valid"]], 0.2, 11, None, research=True)
    for got, want in zip(stream(2), _research_split(sp.csr_matrix(matrix[split["valid"]]), 0.2, 13)):
        assert (got != want).nnz == 0
    assert elsa_stage.validation_pairs(None, 0.2, 11, "fixed", research=False) == "fixed"


# ----------------------------------------------------------------------------- step order
def _adam(param, grad, state, t, lr, b1=0.9, b2=0.99, eps=1e-8):
    """One Adam update written out (torch's formula)."""
    state["m"] = b1 * state.get("m", 0) + (1 - b1) * grad
    state["v"] = b2 * state.get("v", 0) + (1 - b2) * grad * grad
    step = lr / (1 - b1**t)
    denom = state["v"].sqrt() / math.sqrt(1 - b2**t) + eps
    return param - step * state["m"] / denom


def _unit(a):
    return a / a.norm(dim=1, keepdim=True)


def _project(g, a):
    return g - (g * a).sum(1, keepdim=True) * a


@pytest.mark.parametrize("research", [False, True])
def test_elsa_step_order_against_hand_written_adam(research):
    # every item row gets a clearly non-zero gradient (Adam's first steps amplify numerical zeros)
    x = torch.tensor([[1, 1, 0, 0, 1], [0, 1, 1, 0, 0], [1, 0, 0, 1, 1], [0, 0, 1, 1, 0]], dtype=torch.float32)
    model = ELSA(5, 3, seed=4)
    a = model.encoder.detach().clone().double()
    lr, state = 0.05, {}
    for t in (1, 2):
        leaf = a.clone().requires_grad_(True)
        xd = x.double()
        nmse_loss(torch.relu(xd @ leaf @ leaf.T - xd), xd).backward()
        g = leaf.grad
        if research:  # re-normalise, project on the re-normalised rows, Adam; no normalisation after
            a = _unit(a)
            a = _adam(a, _project(g, a), state, t, lr)
        else:  # project, Adam, re-normalise
            a = _unit(_adam(a, _project(g, a), state, t, lr))
    snapshots = []  # weights after each epoch (fit restores the best epoch at the end)
    fit_elsa(model, sp.csr_matrix(x.numpy()), None, lr=lr, batch_size=8, epochs=2, seed=1,
             research_step_order=research, callback=lambda _: snapshots.append(model.encoder.detach().clone()))  # fmt: skip
    got = snapshots[-1].double()
    np.testing.assert_allclose(got, a, rtol=2e-5, atol=2e-6)
    norms = got.norm(dim=1)
    if research:
        assert (norms - 1).abs().max() > 1e-4  # rows end off the unit sphere
    else:
        np.testing.assert_allclose(norms, 1.0, atol=1e-6)


@pytest.mark.parametrize("research", [False, True])
def test_sae_step_order_against_hand_written_adam(research):
    torch.manual_seed(0)
    x = torch.randn(6, 4)
    model = SAE(4, 8, k=2, seed=1)
    with torch.no_grad():  # start off the sphere, so the two orders differ already in step 1
        model.decoder_w.mul_(1.1)
    twin = SAE(4, 8, k=2, seed=1)
    twin.load_state_dict(model.state_dict())
    twin.train()
    lr = 0.01
    twin.losses(x)["Loss"].backward()
    grads = {name: p.grad.detach().clone() for name, p in twin.named_parameters()}
    expected = {}
    for name, p in twin.named_parameters():
        w, g = p.detach().clone(), grads[name]
        if name == "decoder_w":
            if research:
                w = _unit(w)
                expected[name] = _adam(w, _project(g, w), {}, 1, lr)
            else:
                expected[name] = _unit(_adam(w, _project(g, w), {}, 1, lr))
        else:
            expected[name] = _adam(w, g, {}, 1, lr)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.99))
    model.train_step(optimizer, x, research_step_order=research)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.detach(), expected[name], rtol=1e-5, atol=1e-7, err_msg=name)


# ----------------------------------------------------------------------------- dead latents
def test_dead_rule_at_exactly_five_and_six_batches():
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    for rule, dead_at_5 in (("at_least", True), ("more_than", False)):
        model = SAE(6, 4, k=1, dead_after=5, dead_rule=rule, seed=0)
        model.inactive_batches.copy_(torch.tensor([5, 6, 4, 0]))
        assert model.dead_latents().tolist() == [dead_at_5, True, False, False]
        model.inactive_batches.fill_(5)
        model.eval()  # no counter update: only the rule decides whether the auxiliary loss is active
        assert (model.losses(x)["Auxiliary"].item() > 0) is dead_at_5
    with pytest.raises(ValueError, match="dead_rule"):
        SAE(6, 4, k=1, dead_rule="sometimes")


def test_dead_rule_counts_consecutive_training_batches():
    """A latent that never fires is dead after 5 batches (at_least) or 6 (more_than)."""
    model = SAE(2, 3, k=1, dead_after=5, dead_rule="more_than", seed=0)
    with torch.no_grad():  # latent 2 can never fire (huge negative bias); 0 and 1 alternate
        model.encoder_b.copy_(torch.tensor([0.0, 0.0, -1e6]))
    model.train()
    x = torch.tensor([[1.0, -1.0]])
    for batch in range(1, 7):
        model.losses(x)
        assert int(model.inactive_batches[2]) == batch
        assert bool(model.dead_latents()[2]) is (batch > 5)
    model.hparams["dead_rule"] = "at_least"
    model.inactive_batches[2] = 5
    assert bool(model.dead_latents()[2])


def test_sae_dead_rule_survives_the_checkpoint():
    model = SAE(4, 8, k=2, dead_rule="more_than", seed=0)
    assert SAE.from_checkpoint(model.checkpoint()).hparams["dead_rule"] == "more_than"


# ----------------------------------------------------------------------------- SAE validation
def test_sae_research_validation_embeddings_by_hand():
    rows = _random_csr(n_rows=7, n_items=9, seed=3)
    elsa = ELSA(9, 4, seed=0)
    data = research_validation_data(elsa, rows, seed=5, batch_size=3, device="cpu")
    a = elsa.encoder.detach().numpy().astype(np.float64)
    dense = rows.toarray().astype(np.float64)
    g = torch.Generator().manual_seed(5)
    expected = []
    for _ in range(2):  # embeddings, then the positive views, from one stream, batch by batch
        keep = np.concatenate([(torch.rand((min(3, 7 - s), 9), generator=g) < 0.8).numpy() for s in range(0, 7, 3)])
        expected.append((dense * keep) @ a)
    np.testing.assert_allclose(data.embeddings.numpy(), expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(data.positives.numpy(), expected[1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected[0], dense @ a)  # some interactions were dropped
    x, pos = data.batch(np.array([1, 4]), None, "cpu")
    assert torch.equal(x, data.embeddings[[1, 4]]) and torch.equal(pos, data.positives[[1, 4]])
    again = sampled_interactions_embeddings(elsa.encode, rows, torch.Generator().manual_seed(5), 0.8, 3)
    assert torch.equal(again, data.embeddings)


def test_sae_stage_research_validation_changes_only_validation(tmp_path):
    paths = write_stage_inputs(tmp_path, n_users=150, n_items=60, factors=8, titles=False)
    hp = dict(variant="topk", width=16, k=4, reconstruction_loss="l2", l1_coef=3e-4, aux_coef=1 / 32,
              contrastive_coef=0.0, normalize=False, lr=3e-3, beta1=0.9, beta2=0.99, batch_size=32, epochs=4,
              validate_every=2, patience=5, early_stop_unit="validations", dead_after=5, aux_k=512,
              train_path="embeddings", max_train_users=None, seed=42)  # fmt: skip
    histories = {}
    for research in (False, True):
        out = tmp_path / f"sae{int(research)}"
        metrics = train_sae(
            paths["elsa"] / "user_embeddings.parquet", paths["elsa"] / "model.pt", paths["data"],
            paths["data"].parent / "split.parquet", out / "model.pt", out / "metrics.json", out / "history.parquet",
            {**hp, "research_validation": research}, device="cpu",
        )  # fmt: skip
        histories[research] = metrics["history"]
    assert [r["Loss_train"] for r in histories[False]] == [r["Loss_train"] for r in histories[True]]
    assert histories[False][0]["Loss_valid"] != histories[True][0]["Loss_valid"]


def test_embedding_data_without_positives_is_unchanged():
    data = EmbeddingData(torch.arange(6.0).reshape(3, 2))
    x, pos = data.batch(np.array([2]), None, "cpu")
    assert x.tolist() == [[4.0, 5.0]] and pos is None


# ----------------------------------------------------------------------------- GFAR ties
def research_gfar(scores: np.ndarray, k: int, n_rel: int) -> list[int]:
    """GFAR as the research code computes it: a pandas frame (rows by list position, then member),
    nlargest + ordinal Borda, float64 gains summed by groupby, idxmax (lowest item id on ties).
    Equal scores are listed by lower item index (the research relies on torch.topk's order there)."""
    m, n = scores.shape
    order = [np.argsort(-scores[u], kind="stable") for u in range(m)]
    rows = [(u, int(order[u][j]), float(scores[u, order[u][j]])) for j in range(n) for u in range(m)]
    df = pd.DataFrame(rows, columns=["user", "item", "predicted_rating"])
    df["p_rel"], df["p_none"] = 0.0, 1.0
    for u in df.user.unique():
        top = df[df.user == u].nlargest(n_rel, "predicted_rating")
        borda = len(top) - rankdata(-top["predicted_rating"].values, method="ordinal") + 1
        df.loc[top.index, "p_rel"] = borda / borda.sum()
    slate = []
    for _ in range(k):
        df["gain"] = df.p_rel * df.p_none
        item = int(df.groupby("item")["gain"].sum().idxmax())
        slate.append(item)
        for uid, p in zip(df[df.item == item].user, df[df.item == item].p_rel):
            df.loc[df.user == uid, "p_none"] *= 1 - p
        df = df[df.item != item]
    return slate


def _gfar_lists(scores: np.ndarray, k: int, n_rel: int, gain_dtype=None) -> list[int]:
    s = torch.tensor(scores, dtype=torch.float32)[None]
    seen = torch.zeros(1, scores.shape[1], dtype=torch.bool)
    items, p = borda_candidates(s, seen, n_rel)
    return gfar_select(items, p if gain_dtype is None else p.to(gain_dtype), seen, k)[0].tolist()


@pytest.mark.parametrize("m", [2, 3, 5])
def test_gfar_equals_the_research_pandas_implementation(m):
    """Every member ranks the items differently (many exact ties between gains); ours = pandas."""
    for seed in range(25):
        rng = np.random.default_rng(seed)
        scores = np.stack([rng.permutation(24) for _ in range(m)]).astype(np.float32)
        assert _gfar_lists(scores, 8, 10) == research_gfar(scores, 8, 10), seed


def test_gfar_float32_gains_would_break_an_exact_tie_differently():
    """A case where float32 gains change the list: the float64 default gives the research list."""
    scores = np.array([
        [0, 25, 18, 5, 14, 29, 8, 10, 4, 9, 3, 16, 21, 15, 6, 26, 1, 2, 17, 24, 11, 13, 19, 22, 7, 20, 12, 23, 28, 27],
        [10, 8, 20, 19, 17, 7, 2, 15, 1, 11, 26, 12, 18, 29, 21, 4, 0, 28, 25, 24, 13, 16, 9, 14, 6, 27, 22, 23, 5, 3],
    ], dtype=np.float32)  # fmt: skip
    expected = research_gfar(scores, 8, 10)
    assert _gfar_lists(scores, 8, 10) == expected
    assert _gfar_lists(scores, 8, 10, gain_dtype=torch.float32) != expected


def test_gfar_sums_members_like_pandas():
    """Three members: summing each item's terms in member order instead of pandas' compensated sum
    in table order changes the last bit of one gain, and with it the first two picks."""
    scores = np.array([
        [7, 0, 25, 20, 19, 14, 21, 27, 5, 18, 2, 9, 1, 29, 4, 23, 10, 15, 8, 26, 3, 11, 24, 17, 13, 28, 16, 12, 6, 22],
        [29, 12, 26, 23, 4, 1, 21, 6, 22, 28, 16, 8, 17, 0, 10, 24, 19, 25, 2, 14, 18, 9, 15, 7, 5, 27, 20, 3, 13, 11],
        [23, 7, 25, 18, 19, 29, 20, 3, 0, 12, 16, 27, 1, 28, 4, 14, 17, 13, 2, 15, 26, 5, 10, 21, 24, 8, 22, 6, 9, 11],
    ], dtype=np.float32)  # fmt: skip
    expected = research_gfar(scores, 8, 10)
    assert expected[:2] == [2, 13]
    assert _gfar_lists(scores, 8, 10) == expected


def test_gfar_with_tied_scores_follows_lower_index():
    scores = np.array([[3, 3, 1, 1, 2, 0], [1, 2, 2, 3, 3, 0]], dtype=np.float32)
    assert _gfar_lists(scores, 5, 3) == research_gfar(scores, 5, 3)
    group = GFAR(_StubElsa(torch.tensor(scores)))  # n_relevant defaults to the list length k
    inputs = torch.zeros(1, 2, 6)
    state = group.score(inputs)
    assert torch.equal(state[0], torch.tensor(scores))
    assert group.aggregate(state, inputs.amax(dim=1) > 0, 5).items[0].tolist() == research_gfar(scores, 5, 5)


# ----------------------------------------------------------------------------- defects 6 and 7
class _StubElsa:
    """encode = identity, decode = fixed scores + e, so x A Aᵀ − x = the fixed scores."""

    def __init__(self, fixed: torch.Tensor) -> None:
        self.fixed = fixed

    def encode(self, x):
        return x

    def decode(self, e):
        return self.fixed[: e.shape[0]] + e


def test_elsa_mean_seen_item_at_zero_beats_negative_scores():
    fixed = torch.tensor([[-0.5, -0.2, -0.9, -0.1]])
    inputs = torch.tensor([[[0.0, 0.0, 1.0, 0.0]]])  # one member who has seen item 2
    seen = inputs.amax(dim=1) > 0
    stub = _StubElsa(fixed - inputs[0])  # decode(mean) = fixed exactly
    assert ElsaMean(stub).aggregate(ElsaMean(stub).score(inputs), seen, 3).items.tolist() == [[3, 1, 0]]
    research = ElsaMean(stub, seen_at_zero=True)
    assert research.aggregate(research.score(inputs), seen, 3).items.tolist() == [[2, 3, 1]]


def test_score_aggregation_keeps_seen_items_with_zero_relevance():
    # raw member scores; min-max: member 0 -> [1, 1/3, 2/3, 0], member 1 -> [0, 2/3, 1/3, 1]
    fixed = torch.tensor([[3.0, 1.0, 2.0, 0.0], [0.0, 2.0, 1.0, 3.0]])
    inputs = torch.tensor([[[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    seen = inputs.amax(dim=1) > 0  # item 2
    stub = _StubElsa(fixed)
    expected = {  # by hand: fixed excludes item 2 (padding -1); research scores it 0, ties -> lower index
        "MUL": ([1, 0, 3, -1], [1, 0, 2, 3]),  # products [0, 2/9, -, 0]
        "LMS": ([1, 0, 3, -1], [1, 0, 2, 3]),  # minima [0, 1/3, -, 0]
        "ADD": ([0, 1, 3, -1], [0, 1, 3, 2]),  # sums [1, 1, -, 1]
        "MPL": ([0, 3, 1, -1], [0, 3, 1, 2]),  # maxima [1, 2/3, -, 1]
    }
    for method, (fixed_list, research_list) in expected.items():
        ours = ScoreAggregation(stub, method)
        assert ours.aggregate(ours.score(inputs), seen, 4).items[0].tolist() == fixed_list, method
        research = ScoreAggregation(stub, method, seen_at_zero=True)
        assert research.aggregate(research.score(inputs), seen, 4).items[0].tolist() == research_list, method


def test_build_baselines_passes_the_defect_switches():
    from sagea.stages.evaluate import build_baselines

    stub = _StubElsa(torch.zeros(1, 4))
    default = build_baselines(["ELSA", "ADD", "MPL"], stub, np.ones(4))
    research = build_baselines(["ELSA", "ADD", "MPL"], stub, np.ones(4), True, True)
    assert [s.seen_at_zero for s in default] == [False, False, False]
    assert [s.seen_at_zero for s in research] == [True, True, True]
    only_elsa = build_baselines(["ELSA", "ADD"], stub, np.ones(4), elsa_seen_at_zero=True)
    assert [s.seen_at_zero for s in only_elsa] == [True, False]
