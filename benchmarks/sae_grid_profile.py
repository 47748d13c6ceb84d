"""Where a stacked SAE step's time goes (sagea.models.sae_grid): the figures behind BENCHMARKS.md,
"SAE grid, batched", round 3.

- ``faults``: ms and minor page faults per step of the 6 width-64 TopK models of the paper grid's
  shape (d 16, batch 1024, k 8/4/2 × L2/Cosine) after 200 warm-up steps, in several fresh
  processes (a fault-bound mode shows in some processes only);
- ``sections``: ms per step of the stack's parts (top-k, auxiliary loss, Adam, decoder constraint)
  and of its batched products, and its operations per step, at widths 16 / 32 / 64;
- ``ops``: top-level operations per step (``torch.profiler``), for the paper grid as one stack of
  18 (widths 1024/2048/4096 padded, k 128/64/32) and for one SAE alone (width 4096, k 128) — the
  number of kernel launches a GPU step pays for;
- ``micro``: the single operations compared in this round, on the width-64 stack's shapes;
- ``dump FILE`` / ``compare OLD NEW``: 18 stacked SAEs trained with early stopping (models leave
  their stack), saved, and compared with those of another checkout: are the weights bit for bit equal.

    SAGEA_PROGRESS=0 python benchmarks/sae_grid_profile.py faults [--processes 6]
    SAGEA_PROGRESS=0 python benchmarks/sae_grid_profile.py sections
    SAGEA_PROGRESS=0 python benchmarks/sae_grid_profile.py ops
    SAGEA_PROGRESS=0 python benchmarks/sae_grid_profile.py micro
    SAGEA_PROGRESS=0 PYTHONPATH=<old checkout>/src python benchmarks/sae_grid_profile.py dump old.pt
    SAGEA_PROGRESS=0 PYTHONPATH=src python benchmarks/sae_grid_profile.py dump new.pt
    python benchmarks/sae_grid_profile.py compare old.pt new.pt

One thread throughout. ``faults`` runs whatever ``sagea`` is importable: point ``PYTHONPATH`` at an
older checkout's ``src`` to measure it.
"""

from __future__ import annotations

import argparse
import math
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from sagea.models.sae import SAE


def _paper_stack(d: int, widths, ks, batch: int, n_batches: int = 4, **hp):
    """A stack of TopK SAEs (every width × k × L2/Cosine, k descending as fit_stack orders them) and its batches."""
    from sagea.models.sae_grid import PreparedData, _Stack  # here: `dump` also runs on checkouts without them

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((16, d))
    x = centres[rng.integers(0, 16, n_batches * batch)] + 0.3 * rng.standard_normal((n_batches * batch, d))
    prepared = PreparedData(torch.as_tensor(x, dtype=torch.float32), torch.device("cpu"))
    models = [SAE(d, w, k=k, reconstruction_loss=loss, seed=0, **hp) for w in widths for k in ks for loss in ("l2", "cosine")]
    models.sort(key=lambda m: -m.k)
    stack = _Stack(models, [1e-3] * len(models), torch.device("cpu"))
    rows = [np.arange(i * batch, (i + 1) * batch) for i in range(n_batches)]

    def step(s: int) -> None:
        stack.train_step(None, None, s, 0.9, 0.99, False, prepared.batch(rows[s % n_batches]))

    return stack, step, torch.as_tensor(x, dtype=torch.float32), rows


def faults_one() -> None:
    torch.set_num_threads(1)
    stack, step, _, _ = _paper_stack(16, [64], [8, 4, 2], 1024)
    for s in range(1, 201):
        step(s)
    before, tic = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for s in range(201, 501):
        step(s)
    seconds, faults = time.perf_counter() - tic, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print(f"{seconds / 300 * 1000:.2f} ms/step, {faults / 300:.1f} minor faults/step, dead latents {int(stack.dead().sum())}")


def sections() -> None:
    """ms per step of the stack's parts (wall clock around each method; on a CPU every operation is
    synchronous) and of its batched products (``torch.profiler``), at widths 16 / 32 / 64."""
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(1)
    for width in (16, 32, 64):
        stack, step, _, _ = _paper_stack(16, [width], [8, 4, 2], 1024)
        for s in range(1, 201):
            step(s)
        spent: dict[str, float] = {}
        for name in ("top_k", "fast_auxiliary", "adam", "project_decoder_grad", "normalize_decoder"):
            method = getattr(stack, name)

            def timed(*a, _method=method, _name=name, **kw):
                tic = time.perf_counter()
                try:
                    return _method(*a, **kw)
                finally:
                    spent[_name] = spent.get(_name, 0.0) + time.perf_counter() - tic

            setattr(stack, name, timed)
        tic = time.perf_counter()
        for s in range(201, 501):
            step(s)
        total = (time.perf_counter() - tic) / 300 * 1000
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for s in range(501, 521):
                step(s)
        top = [e for e in prof.events() if e.cpu_parent is None]
        products = sum(e.cpu_time_total for e in top if e.name in ("aten::bmm", "aten::baddbmm")) / 20 / 1000
        parts = ", ".join(f"{name} {seconds / 300 * 1000:.2f}" for name, seconds in spent.items())
        print(f"width {width}: {total:.2f} ms per step; {parts}; bmm/baddbmm {products:.2f} (profiled); "
              f"{len(top) / 20:.0f} operations per step; dead latents {int(stack.dead().sum())}")  # fmt: skip


def ops() -> None:
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(1)

    def count(step, n: int = 5) -> float:
        for s in range(1, 30):  # warm-up: latents die after dead_after (5) batches without activation
            step(s)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for s in range(30, 30 + n):
                step(s)
        return sum(e.cpu_parent is None for e in prof.events()) / n

    stack, step, x, rows = _paper_stack(16, [1024, 2048, 4096], [128, 64, 32], 64, dead_after=5)
    print(f"paper grid, one stack of {len(stack.k)}: {count(step):.0f} operations per step "
          f"({len(stack.k_blocks)} top-k blocks on this CPU), dead latents {int(stack.dead().sum())}")  # fmt: skip
    model = SAE(16, 4096, k=128, seed=0, dead_after=5)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    print(f"one SAE alone (width 4096, k 128): {count(lambda s: model.train_step(optimizer, x[rows[s % 4]])):.0f} "
          f"operations per step, dead latents {int(model.dead_latents().sum())}")  # fmt: skip


def micro() -> None:
    torch.set_num_threads(1)

    def best(f, n: int = 300) -> float:
        for _ in range(20):
            f()
        times = []
        for _ in range(5):
            tic = time.perf_counter()
            for _ in range(n):
                f()
            times.append((time.perf_counter() - tic) / n * 1e6)
        return min(times)

    n, h, b, d, dead = 6, 64, 1024, 16, 10
    gen = torch.Generator().manual_seed(0)
    pre, grad = torch.randn(n, h, b, generator=gen), torch.randn(n, h, b, generator=gen)
    code = torch.zeros(n, h, b).scatter_(1, torch.randint(0, h, (n, 8, b), generator=gen), 1.0)
    rows = torch.randint(0, h, (n, dead), generator=gen)
    flat_rows = (rows + torch.arange(0, n * h, h)[:, None]).view(-1)
    src = torch.randn(n * dead, b, generator=gen)
    keys = torch.randn(2, h, b, dtype=torch.float64, generator=gen)
    index = torch.randint(0, h, (2, 1, b), generator=gen)
    strike = torch.full((2, 1, b), -math.inf, dtype=torch.float64)
    x = torch.randn(b, d, generator=gen)
    out = torch.empty(n, h, b)
    figures = {
        "dead latents' pre-activations: gather along latents": lambda: torch.gather(pre, 1, rows[:, :, None].expand(n, dead, b)),
        "dead latents' pre-activations: index_select of rows": lambda: pre.view(n * h, b).index_select(0, flat_rows),
        "their gradient back: scatter_add_ along latents": lambda: grad.scatter_add_(1, rows[:, :, None].expand(n, dead, b), src.view(n, dead, b)),
        "their gradient back: index_add_ of rows": lambda: grad.view(n * h, b).index_add_(0, flat_rows, src),
        "ReLU/top-k mask: threshold_backward into a third tensor": lambda: torch.ops.aten.threshold_backward.grad_input(grad, code, 0.0, grad_input=out),
        "ReLU/top-k mask: threshold_backward in place": lambda: torch.ops.aten.threshold_backward.grad_input(grad, code, 0.0, grad_input=grad),
        "top-k strike-out (2 models): scatter_ of a scalar -inf": lambda: keys.scatter_(1, index, -math.inf),
        "top-k strike-out (2 models): scatter_ of a -inf tensor": lambda: keys.scatter_(1, index, strike),
        "SAE.standardize of a batch of 1024": lambda: SAE.standardize(x),
    }  # fmt: skip
    for name, f in figures.items():
        print(f"{name}: {best(f):.1f} µs")


def dump(path: str) -> None:
    """Train the 18 SAEs (widths 16/32/64, k 2/4/8, L2/Cosine; d 16; 60 epochs, lr 1e-2, patience 1–2
    validations so that models stop early and leave their stack) by width stacks; save weights and histories."""
    from sagea.models.sae_data import EmbeddingData
    from sagea.models.sae_grid import fit_stack

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((16, 16))
    x = centres[rng.integers(0, 16, 5120)] + 0.3 * rng.standard_normal((5120, 16))
    x = torch.as_tensor(x, dtype=torch.float32)
    train, valid = EmbeddingData(x[:4096]), EmbeddingData(x[4096:])
    out = {}
    for width in (16, 32, 64):
        models = [SAE(16, width, k=k, reconstruction_loss=loss, seed=0, dead_after=5) for k in (2, 4, 8)
                  for loss in ("l2", "cosine")]  # fmt: skip
        results = fit_stack(models, train, valid, lrs=[1e-2] * 6, patiences=[1, 2] * 3,
                            early_stop_units=["validations"] * 6, epochs=60, validate_every=5, seed=0)  # fmt: skip
        for i, (model, result) in enumerate(zip(models, results)):
            history = [{k: v for k, v in row.items() if k != "seconds"} for row in result.history]
            out[f"{width}/{i}"] = (model.state_dict(), history, result.best_epoch, result.epochs_run)
    torch.save(out, path)


def compare(a_path: str, b_path: str) -> None:
    a, b = torch.load(a_path, weights_only=False), torch.load(b_path, weights_only=False)
    same_weights = sum(all(torch.equal(a[k][0][n], b[k][0][n]) for n in a[k][0]) for k in a)
    same_stops = sum(a[k][2:] == b[k][2:] for k in a)
    rel = max((abs(rb[n] - ra[n]) / max(abs(ra[n]), 1e-12) for k in a for ra, rb in zip(a[k][1], b[k][1]) for n in ra),
              default=0.0)  # fmt: skip
    print(f"{len(a)} SAEs: weights bit for bit equal {same_weights}, same best epoch and epochs run {same_stops} "
          f"(epochs run: {sorted({a[k][3] for k in a})}); largest relative history difference {rel:.1e}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["faults", "sections", "ops", "micro", "dump", "compare", "faults-one"])
    parser.add_argument("paths", nargs="*", help="dump: the file to write; compare: two such files")
    parser.add_argument("--processes", type=int, default=6)
    args = parser.parse_args()
    if args.what not in ("faults-one", "compare"):
        print(f"torch {torch.__version__}, 1 thread", flush=True)
    if args.what == "faults":  # fresh processes: the allocator's state differs from one to the next
        for _ in range(args.processes):
            subprocess.run([sys.executable, __file__, "faults-one"], check=True)
    elif args.what == "faults-one":
        faults_one()
    elif args.what == "sections":
        sections()
    elif args.what == "dump":
        dump(*args.paths)
    elif args.what == "compare":
        compare(*args.paths)
    elif args.what == "ops":
        ops()
    else:
        micro()


if __name__ == "__main__":
    main()
