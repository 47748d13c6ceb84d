"""SAEs trained as one stack (sagea.models.sae_grid) equal SAEs trained one at a time (sagea.models.sae.fit).

Tolerance: the stack computes the same formulas in the same order, but its batched products sum
in another order, so weights may differ by float32 rounding that training carries along: we
require every weight within 1e-5 (absolute) and every history value within 1e-5 (relative) after
tens of epochs, and the same early-stopping decisions (best epoch, epochs run, stopped).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sae_fixtures import clustered_elsa, clustered_matrix, embeddings_of, write_stage_inputs
from sagea.models.sae import LOSS_TERMS, SAE, _evaluate_loss, fit
from sagea.models.sae_data import EmbeddingData, InteractionData
from sagea.models.sae_grid import Inputs, PreparedData, _Stack, fit_stack, stack_key

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

ATOL, RTOL = 1e-5, 1e-5


@pytest.fixture(scope="module")
def clustered():
    matrix, clusters = clustered_matrix(300, 120)
    elsa = clustered_elsa(clusters, 16)
    return matrix, elsa, torch.as_tensor(embeddings_of(elsa, matrix))


def _both_ways(variants, make_data, *, lrs, patiences, units, **common):
    """Train each variant alone with fit(), then all as one stack; return (alone, stacked) (model, result) pairs."""
    alone = []
    for v, lr, patience, unit in zip(variants, lrs, patiences, units):
        model = SAE(16, seed=0, **v)
        train, valid = make_data()
        alone.append((model, fit(model, train, valid, lr=lr, patience=patience, early_stop_unit=unit, **common)))
    models = [SAE(16, seed=0, **v) for v in variants]
    train, valid = make_data()
    results = fit_stack(models, train, valid, lrs=lrs, patiences=patiences, early_stop_units=units, **common)
    return alone, list(zip(models, results))


def _assert_same(alone, stacked):
    for (m1, r1), (m2, r2) in zip(alone, stacked):
        assert m2.hparams == m1.hparams and not m2.training
        for name, value in m1.state_dict().items():
            torch.testing.assert_close(m2.state_dict()[name], value, atol=ATOL, rtol=0, msg=name)
        assert (r2.best_epoch, r2.epochs_run, r2.stopped_early) == (r1.best_epoch, r1.epochs_run, r1.stopped_early)
        assert r2.best_score == pytest.approx(r1.best_score, rel=RTOL)
        assert [h["epoch"] for h in r2.history] == [h["epoch"] for h in r1.history]
        for h1, h2 in zip(r1.history, r2.history):
            for key, value in h1.items():
                if key != "seconds":
                    assert h2[key] == pytest.approx(value, rel=RTOL, abs=1e-7), key


def test_stack_of_mixed_variants_equals_one_at_a_time(clustered):
    """Different widths (padded), k, losses, normalisation, L1, lr, patience, stopping unit, basic."""
    emb = clustered[2]
    variants = [
        dict(width=32, k=4),
        dict(width=64, k=8, reconstruction_loss="cosine"),
        dict(width=64, k=3, normalize=True, l1_coef=1e-3),
        dict(width=48, variant="basic", l1_coef=1e-2),
    ]
    alone, stacked = _both_ways(
        variants, lambda: (EmbeddingData(emb[:240]), EmbeddingData(emb[240:270])),
        lrs=[3e-3, 1e-2, 3e-3, 3e-3], patiences=[3, 2, 100, 3], units=["validations", "epochs", "validations", "validations"],
        batch_size=32, epochs=30, validate_every=2, seed=0,
    )  # fmt: skip
    _assert_same(alone, stacked)
    # the second variant stops early (and so leaves the stack) before the others end
    assert alone[1][1].stopped_early and alone[1][1].epochs_run < 30 and not alone[0][1].stopped_early


def test_stack_with_dead_latents_research_switches_and_contrastive_views(clustered):
    """Auxiliary loss on dead latents (research dead rule), research step order, the interaction path
    with contrastive positive views drawn from the shared (seed, epoch) stream."""
    matrix, elsa, _ = clustered
    variants = [
        dict(width=128, k=2, contrastive_coef=0.3, dead_rule="more_than", dead_after=2),
        dict(width=96, k=4, contrastive_coef=0.5, dead_rule="more_than", dead_after=2, reconstruction_loss="cosine"),
    ]

    def data():
        return (InteractionData(matrix[:240], elsa, contrastive=True),
                InteractionData(matrix[240:270], elsa, contrastive=True))  # fmt: skip

    alone, stacked = _both_ways(variants, data, lrs=[1e-2, 3e-3], patiences=[50, 50], units=["epochs"] * 2,
                                batch_size=32, epochs=8, validate_every=4, seed=1, research_step_order=True)  # fmt: skip
    _assert_same(alone, stacked)
    assert all(r.history[-1]["Auxiliary_train"] > 0 for _, r in alone)  # dead latents were revived
    assert all(r.history[-1]["Contrastive_train"] > 0 for _, r in alone)


def test_fast_top_k_equals_torch_topk():
    """_Stack.top_k (float64 keys, amax passes) keeps exactly torch.topk's latents of relu(pre), per model's k,
    whatever the order of the models' k; negative pre-activations come back as 0. Also its torch.topk branch
    (k above AMAX_TOP_K_MAX)."""
    gen = torch.Generator().manual_seed(3)
    for ks in ([8, 8, 4, 2, 1], [2, 5, 3], [12, 3, 9], [9, 8, 2]):
        stack = _Stack([SAE(4, 16, k=k, seed=i) for i, k in enumerate(ks)], [1e-3] * len(ks), torch.device("cpu"))
        pre = torch.randn(len(ks), 16, 50, generator=gen)
        pre[0, :, 0] = -1.0  # no positive pre-activation at all for one input
        values, index = stack.top_k(pre)
        for m, k in enumerate(ks):
            expected = torch.topk(pre[m].relu().t(), k, dim=-1).values.t()  # [k, B], descending
            torch.testing.assert_close(values[m, :k], expected, rtol=0, atol=0)
            positive = values[m, :k] > 0
            assert torch.equal(pre[m].gather(0, index[m, :k])[positive], values[m, :k][positive])
            assert not values[m, k:].any()
        assert not values[0, :, 0].any()


def test_prepared_inputs_are_bit_for_bit_those_of_each_batch():
    """PreparedData standardises every training input once; a batch's columns must be exactly what the
    batch alone gives (Inputs.of, SAE.standardize), whatever the batch's size and rows: the fast path's
    pre-activations, hence its discrete decisions, depend on them."""
    rng = np.random.default_rng(5)
    for d in (7, 16, 64):
        emb = torch.as_tensor(rng.standard_normal((3000, d)) * rng.uniform(0.01, 20, (3000, 1)), dtype=torch.float32)
        prepared = PreparedData(emb, torch.device("cpu"))
        for size in (1, 33, 1024, 2999):
            index = np.sort(rng.permutation(3000)[:size])
            alone = Inputs.of(emb[torch.from_numpy(index)])
            xs, mean, std = SAE.standardize(emb[torch.from_numpy(index)])
            assert torch.equal(alone.xs_t, xs.t()) and torch.equal(alone.std_t, std.t())
            for name, got, want in zip(Inputs._fields, prepared.batch(index), alone):
                assert got.shape == want.shape and got.is_contiguous(), name
                assert torch.equal(got, want), (d, size, name)
        # the batches come in kept tensors, each batch size its own: a batch is valid until the next of its size
        first, other = prepared.batch(np.arange(10)), prepared.batch(np.arange(20, 25))
        assert torch.equal(first.x_t, emb[:10].t()) and torch.equal(other.x_t, emb[20:25].t())
        assert prepared.batch(np.arange(30, 40)).x_t.data_ptr() == first.x_t.data_ptr()


def test_stacked_validation_equals_each_model_alone():
    """_Stack.evaluate (every model's validation losses in one pass, as fit_stack validates) equals
    sae._evaluate_loss of each model alone: eval mode, batches in order (the last one smaller), size-weighted
    sums; with dead latents (the auxiliary term), and without touching the dead-latent counters."""
    gen = torch.Generator().manual_seed(11)
    models = [SAE(8, w, k=k, reconstruction_loss=loss, seed=i)
              for i, (w, k, loss) in enumerate([(32, 4, "l2"), (32, 2, "cosine"), (20, 3, "l2")])]  # fmt: skip
    with torch.no_grad():
        for model in models:
            for p in model.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
            model.inactive_batches[::4] = model.hparams["dead_after"]  # a quarter of the latents dead
    valid = 2 * torch.randn(70, 8, generator=gen) + 0.5
    stack = _Stack(models, [1e-3] * 3, torch.device("cpu"))
    inactive = stack.inactive.clone()
    table = stack.evaluate(PreparedData(valid, torch.device("cpu")), batch_size=32)
    assert table.dtype == torch.float64 and torch.equal(stack.inactive, inactive)
    for m, model in enumerate(models):
        alone = _evaluate_loss(model, EmbeddingData(valid), 32, 0, "cpu")
        assert alone["Auxiliary"] > 0
        for t, name in enumerate(LOSS_TERMS):
            assert float(table[t, m]) == pytest.approx(alone[name], rel=1e-6, abs=1e-9), (m, name)


@pytest.mark.parametrize(
    "variants, aux_k",
    [
        ([dict(width=32, k=4), dict(width=32, k=2)], 512),  # L2 only
        ([dict(width=32, k=4, reconstruction_loss="cosine"), dict(width=24, k=3, reconstruction_loss="cosine")], 512),
        ([dict(width=32, k=8), dict(width=32, k=4, reconstruction_loss="cosine", l1_coef=0.0, aux_coef=0.1),
          dict(width=16, k=2, l1_coef=0.05)], 512),  # mixed losses, widths (padding) and coefficients
        ([dict(width=32, k=4), dict(width=20, k=2, reconstruction_loss="cosine")], 3),  # aux_k below the dead count
    ],
)
def test_hand_written_gradients_equal_autograd(variants, aux_k):
    """The fast path's loss terms and gradients equal autograd's on the same stacked loss (_Stack.losses),
    with dead latents (auxiliary loss) and without, on random weights and inputs."""
    gen = torch.Generator().manual_seed(7)
    for with_dead in (False, True):
        models = [SAE(8, seed=i, aux_k=aux_k, **v) for i, v in enumerate(variants)]
        with torch.no_grad():  # move off the initialisation (decoder = encoder transpose)
            for model in models:
                for p in model.parameters():
                    p.add_(0.1 * torch.randn(p.shape, generator=gen))
                if with_dead:  # every third latent rarely wins a top-k slot, but has positive pre-activations
                    model.encoder_b[::3] -= 1.0
        reference, fast = (_Stack(models, [1e-3] * len(models), torch.device("cpu")) for _ in range(2))
        assert fast.fast
        if with_dead:  # every third latent has been inactive long enough
            for stack in (reference, fast):
                stack.inactive[:, ::3] = 10
        x = 2 * torch.randn(64, 8, generator=gen) + 0.5
        terms = reference.losses(x, None, track=True)
        terms["Loss"].sum().backward()
        table, grads = fast.fast_gradients(x, track=True)
        assert torch.equal(fast.inactive, reference.inactive)
        for name, value in terms.items():
            torch.testing.assert_close(table[LOSS_TERMS.index(name)], value.detach(), rtol=1e-5, atol=1e-6, msg=name)
        for expected, grad in zip(reference.views(reference.flat.grad), grads):  # autograd's, per parameter
            torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)
        dead = fast.dead()
        assert bool(dead.any()) == with_dead and torch.equal(terms["Auxiliary"] > 0, dead.any(-1))
        if with_dead:  # the auxiliary loss reaches the dead latents' encoder (through their pre-activations)
            assert bool((grads[1][dead] != 0).any())


@pytest.mark.parametrize("aux_k", [512, 2])
def test_paper_shaped_grid_takes_the_fast_path_and_equals_one_at_a_time(clustered, monkeypatch, aux_k):
    """TopK, L2 and Cosine, several k, two widths in one (padded) stack, dead latents reviving: trained by the
    hand-written step (the autograd loss is never called in training), equal to one at a time."""
    emb = clustered[2]
    variants = [dict(width=w, k=k, reconstruction_loss=loss, dead_after=2, aux_k=aux_k)
                for w in (32, 64) for k in (2, 4) for loss in ("l2", "cosine")]  # fmt: skip
    autograd_calls = []
    original = _Stack.losses
    monkeypatch.setattr(_Stack, "losses", lambda self, *a, **kw: autograd_calls.append(1) or original(self, *a, **kw))
    alone, stacked = _both_ways(
        variants, lambda: (EmbeddingData(emb[:240]), EmbeddingData(emb[240:270])), lrs=[3e-3] * 8,
        patiences=[100] * 8, units=["validations"] * 8, batch_size=32, epochs=20, validate_every=5, seed=0,
    )  # fmt: skip
    assert not autograd_calls
    _assert_same(alone, stacked)
    assert all(any(h["Auxiliary_train"] > 0 for h in r.history) for _, r in alone)  # dead latents occurred


def test_fast_path_makes_the_same_discrete_decisions_over_a_longer_run():
    """Over 200 steps of a width-256 TopK SAE (k 8, batch 256) the stacked step keeps the same latents, ReLU
    signs and dead latents as the model alone: its pre-activations are computed bit for bit as alone, so the
    weights still agree within 1e-5 (computed in another order, a top-k near-tie or a pre-activation at 0
    flips now and then, and Adam turns such a flip into a weight difference of the order of the lr)."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((16, 64))
    emb = centres[rng.integers(0, 16, 2700)] + 0.3 * rng.standard_normal((2700, 64))
    emb = torch.as_tensor(emb, dtype=torch.float32)
    variants = [dict(width=256, k=8), dict(width=256, k=4, reconstruction_loss="cosine")]
    alone = []
    for v in variants:
        model = SAE(64, seed=0, **v)
        fit(model, EmbeddingData(emb[:2400]), EmbeddingData(emb[2400:]), lr=1e-3, patience=30, batch_size=256,
            epochs=20, validate_every=10, seed=0)  # fmt: skip
        alone.append(model)
    stacked = [SAE(64, seed=0, **v) for v in variants]
    fit_stack(stacked, EmbeddingData(emb[:2400]), EmbeddingData(emb[2400:]), lrs=[1e-3] * 2, patiences=[30] * 2,
              early_stop_units=["validations"] * 2, batch_size=256, epochs=20, validate_every=10, seed=0)  # fmt: skip
    for a, b in zip(alone, stacked):
        for name, value in a.state_dict().items():
            torch.testing.assert_close(b.state_dict()[name], value, atol=ATOL, rtol=0, msg=name)


def test_batchtopk_and_mismatched_models_are_not_stacked():
    assert stack_key(SAE(8, 16, k=2, variant="batchtopk")) is None
    assert stack_key(SAE(8, 16, k=2)) == stack_key(SAE(8, 32, k=4, variant="basic", reconstruction_loss="cosine"))
    emb = EmbeddingData(torch.randn(20, 8, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="cannot share a stack"):
        fit_stack([SAE(8, 16, k=2), SAE(8, 16, k=2, dead_after=3)], emb, emb, lrs=[1e-3] * 2, patiences=[1] * 2,
                  early_stop_units=["validations"] * 2, epochs=1)  # fmt: skip


def test_stage_trains_the_grid_in_one_process_with_one_run_per_sae(tmp_path):
    """train_sae_grid writes each SAE's usual files and MLflow run, as train_sae does for one (the two
    TopK SAEs of one width as a stack of 2 on the CPU, the BatchTopK one alone)."""
    from mlflow.tracking import MlflowClient

    from sagea.stages.sae import SAEJob, train_sae, train_sae_grid
    from test_sae_stage import HP

    paths = write_stage_inputs(tmp_path, n_users=200, n_items=80, factors=12)
    runs = {"topk-h32-k4-l2": dict(HP), "topk-h32-k6-cosine": {**HP, "k": 6, "reconstruction_loss": "cosine"},
            "batchtopk-h32-k4-l2": {**HP, "variant": "batchtopk"}}  # fmt: skip
    common = (paths["elsa"] / "user_embeddings.parquet", paths["elsa"] / "model.pt", paths["data"],
              paths["data"].parent / "split.parquet")  # fmt: skip
    uri = f"sqlite:///{tmp_path}/mlflow.db"

    def folder(root, sae):
        return tmp_path / root / sae

    jobs = [SAEJob(sae, hp, *(folder("grid", sae) / f for f in ("model.pt", "metrics.json", "history.parquet")))
            for sae, hp in runs.items()]  # fmt: skip
    grid = train_sae_grid(*common, jobs, device="cpu", dataset="synthetic", elsa_run="f16-s42", mlflow_uri=uri)
    assert set(grid) == set(runs)
    for sae, hp in runs.items():
        out = folder("alone", sae)
        alone = train_sae(*common, out / "model.pt", out / "metrics.json", out / "history.parquet", hp, device="cpu",
                          sae_run=sae)  # fmt: skip
        saved = json.loads((folder("grid", sae) / "metrics.json").read_text())
        assert saved["stack_size" if hp["variant"] == "topk" else "train_path"] == (2 if hp["variant"] == "topk" else "embeddings")
        for part in ("valid", "test"):
            for name, value in alone[part].items():
                assert saved[part][name] == pytest.approx(value, rel=1e-4, abs=1e-6), (sae, part, name)
        a = SAE.load(out / "model.pt").state_dict()
        b = SAE.load(folder("grid", sae) / "model.pt").state_dict()
        for name in a:
            torch.testing.assert_close(b[name], a[name], atol=ATOL, rtol=0)
        assert not (folder("grid", sae) / "train_state.pt").exists()
    client = MlflowClient(tracking_uri=uri)
    found = client.search_runs([client.get_experiment_by_name("Sparse_synthetic").experiment_id])
    assert sorted(r.info.run_name for r in found) == sorted(f"f16-s42/{sae}" for sae in runs)
    assert np.isfinite([r.data.metrics["CosineSim/test"] for r in found]).all()


@pytest.mark.workflow
def test_workflow_trains_the_grid_in_one_job(tmp_path, repo, python):
    """sae.batch_grid: one train_sae_grid job writes every SAE's files and logs; extract_sae follows."""
    import subprocess

    write_stage_inputs(tmp_path, elsa_run="f16-s42", n_users=200, n_items=80, factors=16)
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(
        f'configfile: "{repo}/config/config.yaml"\n'
        f'include: "{repo}/workflow/rules/common.smk"\n'
        f'include: "{repo}/workflow/rules/sae.smk"\n'
        "rule all:\n    input: sae_targets()\n"
    )
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        "mlflow: {enabled: false}\n"
        "elsa: {factors: 16, extra_runs: []}\n"
        "sae:\n  base: {variant: topk, lr: 0.003, batch_size: 32, epochs: 6, validate_every: 3, patience: 4}\n"
        "  grid: {width: [32], k: [2, 4]}\n  batch_grid: true\n"
    )
    cmd = [python, "-m", "snakemake", "-s", str(snakefile), "-d", str(tmp_path), "--cores", "2",
           "--configfile", str(repo / "config" / "config.yaml"), str(overrides)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train_sae_grid" in proc.stderr and "rule train_sae:" not in proc.stderr
    assert (tmp_path / "logs/benchmarks/synthetic/s42/sae/f16-s42/grid/train.tsv").exists()
    for sae, k in (("topk-h32-k2-l2", 2), ("topk-h32-k4-l2", 4)):
        folder = tmp_path / "results/synthetic/s42/sae/f16-s42" / sae
        for name in ("model.pt", "metrics.json", "history.parquet", "codes_topk.parquet", "features.parquet"):
            assert (folder / name).exists(), folder / name
        log = (tmp_path / "logs/synthetic/s42/sae/f16-s42" / sae / "train.log").read_text()
        assert "trained a stack of 2 SAEs" in log
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["stack_size"] == 2 and metrics["test"]["L0"] == pytest.approx(k)
