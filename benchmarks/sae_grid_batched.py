"""Wall time of an SAE grid trained one model at a time vs as stacks (sagea.models.sae_grid).

The grid has the paper's shape — 3 widths × 3 k × 2 reconstruction losses = 18 TopK SAEs over
one ELSA run's user embeddings, batch 1024, Adam, validation every ``--validate-every`` epochs —
at small sizes so it runs on a CPU in minutes. Three ways, each on the same data and seed:

- ``alone``: 18 × ``sagea.models.sae.fit`` (what 18 ``train_sae`` jobs compute, without their
  start-up);
- ``by_width``: one stack per width (3 stacks of 6 models, ``fit_stack``);
- ``one_stack``: all 18 in one stack (smaller widths padded to the largest): what
  ``train_sae_grid`` does on a GPU;
- ``stacks_of_one``: 18 stacks of one model each (``fit_stack`` on one model): the hand-written
  step of the stacked code without any batching, to show how much of the gain comes from the
  step itself and how much from stacking.

Early stopping is off (patience above the epoch count), so every model trains every epoch: the
ratio is the one of a full grid. Timed by wall clock (``time.perf_counter``) and by the process's
CPU time (``time.process_time``: less sensitive to other jobs on a shared machine); also prints the
largest weight difference between ``alone`` and the stacks (float rounding; rarely a top-k near-tie
decided differently, which Adam amplifies to about the learning rate).

    SAGEA_PROGRESS=0 python benchmarks/sae_grid_batched.py --threads 1 --epochs 20 --validate-every 10 \\
        --users 4096 --dim 16 --widths 16 32 64 --ks 2 4 8
    SAGEA_PROGRESS=0 python benchmarks/sae_grid_batched.py --device cuda --users 71000 --dim 256 \\
        --widths 1024 2048 4096 --ks 32 64 128 --epochs 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time

import numpy as np
import torch

from sagea.models.sae import SAE, fit
from sagea.models.sae_data import EmbeddingData
from sagea.models.sae_grid import fit_stack


def embeddings(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """Low-rank clustered vectors (like ELSA user embeddings): 16 centres + noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((16, d))
    x = centres[rng.integers(0, 16, n)] + 0.3 * rng.standard_normal((n, d))
    return torch.as_tensor(x, dtype=torch.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=8192, help="training users (batch 1024: users/1024 steps per epoch)")
    parser.add_argument("--valid-users", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=32, help="ELSA factors d")
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--losses", nargs="+", default=["l2", "cosine"], choices=["l2", "cosine"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--validate-every", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", nargs="+", default=["alone", "by_width", "one_stack", "stacks_of_one"])
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x = embeddings(args.users + args.valid_users, args.dim).to(device)
    train, valid = EmbeddingData(x[: args.users]), EmbeddingData(x[args.users :])
    grid = [dict(width=w, k=k, reconstruction_loss=loss)
            for w, k, loss in itertools.product(args.widths, args.ks, args.losses)]  # fmt: skip
    common = dict(batch_size=args.batch_size, epochs=args.epochs, validate_every=args.validate_every, seed=0,
                  device=device)  # fmt: skip
    lr, patience = 1e-3, args.epochs + 1

    def models(variants):
        return [SAE(args.dim, seed=0, **v) for v in variants]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    trained, seconds, cpu = {}, {}, {}
    for mode in args.modes:
        sync()
        tic, cpu_tic = time.perf_counter(), time.process_time()
        if mode == "alone":
            out = []
            for model in models(grid):
                fit(model, train, valid, lr=lr, patience=patience, **common)
                out.append(model)
        else:
            groups = ([[v for v in grid if v["width"] == w] for w in args.widths] if mode == "by_width"
                      else [[v] for v in grid] if mode == "stacks_of_one" else [grid])  # fmt: skip
            out = []
            for variants in groups:
                stack = models(variants)
                fit_stack(stack, train, valid, lrs=[lr] * len(stack), patiences=[patience] * len(stack),
                          early_stop_units=["validations"] * len(stack), **common)  # fmt: skip
                out += stack
            order = {id(v): i for i, v in enumerate(grid)}
            out = [m for _, m in sorted(zip([order[id(v)] for g in groups for v in g], out), key=lambda t: t[0])]
        sync()
        seconds[mode], cpu[mode] = time.perf_counter() - tic, time.process_time() - cpu_tic
        trained[mode] = out
        print(f"{mode:>10}: {seconds[mode]:8.2f} s wall, {cpu[mode]:8.2f} s CPU", flush=True)
    steps = args.epochs * -(-args.users // args.batch_size)
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads, device {device}",
        "load_average": os.getloadavg(),
        "grid": len(grid), "steps_per_model": steps, "seconds": seconds, "cpu_seconds": cpu,
    }  # fmt: skip
    if "alone" in seconds:
        report["ratio"] = {mode: seconds["alone"] / s for mode, s in seconds.items() if mode != "alone"}
        report["cpu_ratio"] = {mode: cpu["alone"] / s for mode, s in cpu.items() if mode != "alone"}
        report["ms_per_step_alone"] = 1000 * seconds["alone"] / (len(grid) * steps)
        for mode in seconds:
            if mode != "alone":
                diff = max(float((a.state_dict()[k] - b.state_dict()[k]).abs().max())
                           for a, b in zip(trained["alone"], trained[mode]) for k in a.state_dict())  # fmt: skip
                report.setdefault("max_weight_difference", {})[mode] = diff
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
