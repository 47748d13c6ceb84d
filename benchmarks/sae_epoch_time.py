"""Seconds per SAE training epoch per variant and width, and the projected time of the paper grid.

ML-32M-sized input: ``--users`` (default 71 117 ≈ 80 % of ML-32M's 88 897 users) synthetic
ELSA-like embeddings of ``--factors`` (256) dimensions with a clustered low-rank structure.
Each (variant, width) trains ``--epochs`` epochs with ``sagea.models.sae`` (batch 1024, Adam,
the paper's loss coefficients) after a short warm-up; the median epoch time is reported. On a
slow CPU ``--batches N`` times N batches per epoch and scales to the full epoch.

The paper grid (docs/method.md §3) is widths 1024/2048/4096 x k 32/64/128 x L2/Cosine = 18 TopK
models of at most 4000 epochs, validated every 10 epochs; the projection multiplies the measured
TopK seconds per epoch at each width by 6 models x 4000 epochs (an upper bound: early stopping
usually ends sooner).

    python benchmarks/sae_epoch_time.py --batches 10          # CPU, scaled from 10 batches
    python benchmarks/sae_epoch_time.py --device cuda --epochs 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from sagea.models.sae import SAE


def synthetic_embeddings(n: int, d: int, seed: int = 0, clusters: int = 64) -> np.ndarray:
    """Clustered ELSA-like user embeddings: sums of a few cluster directions plus noise."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, d)).astype(np.float32)
    mix = rng.dirichlet(np.ones(clusters) * 0.1, size=n).astype(np.float32)
    return mix @ centers * 5 + 0.3 * rng.standard_normal((n, d)).astype(np.float32)


def epoch_seconds(
    model: SAE, x: torch.Tensor, batch_size: int, epochs: int, max_batches: int | None = None, seed: int = 0
) -> list[float]:
    """Seconds per epoch after a warm-up epoch; with ``max_batches`` only that many batches are
    timed per epoch and scaled to the full epoch (time is linear in the number of batches)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5, betas=(0.9, 0.99))
    n_batches = -(-len(x) // batch_size)
    timed = min(n_batches, max_batches or n_batches)
    times = []
    for epoch in range(epochs + 1):  # epoch 0 is a warm-up
        perm = torch.as_tensor(np.random.default_rng([seed, epoch]).permutation(len(x)), device=x.device)
        if x.is_cuda:
            torch.cuda.synchronize()
        tic = time.perf_counter()
        for b in range(timed if epoch else min(timed, 3)):
            model.train_step(optimizer, x[perm[b * batch_size : (b + 1) * batch_size]])
        if x.is_cuda:
            torch.cuda.synchronize()
        if epoch:
            times.append((time.perf_counter() - tic) * n_batches / timed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=71_117)
    parser.add_argument("--factors", type=int, default=256)
    parser.add_argument("--widths", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--variants", nargs="+", default=["topk", "batchtopk", "basic"])
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batches", type=int, default=None, help="time only this many batches per epoch, scaled up")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x = torch.as_tensor(synthetic_embeddings(args.users, args.factors), device=device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"# device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.users} users x {args.factors} factors, batch {args.batch_size}, k {args.k}, "
          f"timed batches per epoch: {args.batches or 'all'}")  # fmt: skip
    print("| variant | width | s/epoch (median) | epochs timed |")
    print("|---|---:|---:|---:|")
    results = {}
    for variant in args.variants:
        for width in args.widths:
            model = SAE(args.factors, width, args.k, variant, seed=0).to(device)
            times = epoch_seconds(model, x, args.batch_size, args.epochs, args.batches)
            results[(variant, width)] = statistics.median(times)
            print(f"| {variant} | {width} | {results[(variant, width)]:.2f} | {len(times)} |", flush=True)
    if "topk" in args.variants:
        per_width = {w: results[("topk", w)] for w in args.widths}
        hours = sum(6 * 4000 * s for s in per_width.values()) / 3600
        print(f"\nprojected paper grid (18 TopK models x 4000 epochs, no early stop): {hours:.1f} h")
        print(json.dumps({"seconds_per_epoch_topk": per_width, "paper_grid_upper_bound_hours": hours}))


if __name__ == "__main__":
    main()
