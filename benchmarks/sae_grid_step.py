"""One training step of a stack of SAEs against one SAE alone, per width (sagea.models.sae_grid).

The paper grid's 6 models of one width (k 8/4/2 × L2/Cosine, TopK) as one ``_Stack`` (the
hand-written step, its batches prepared once as ``fit_stack`` prepares them:
``PreparedData``) and one model (k 4) through ``SAE.train_step`` with Adam, on the same
clustered d-dimensional inputs, batch 1024, after warm-up steps (dead latents, hence the
auxiliary loss, occur as in training). Prints ms per step and the ratio 6 × alone / stack; with
``--compile`` also the stack step under ``torch.compile`` (inductor) after its compilation.

    SAGEA_PROGRESS=0 python benchmarks/sae_grid_step.py --threads 1 --widths 16 32 64 [--compile]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sagea.models.sae import SAE
from sagea.models.sae_grid import PreparedData, _Stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--compile", action="store_true", help="also time the stack step under torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((16, args.dim))
    x = centres[rng.integers(0, 16, 4096)] + 0.3 * rng.standard_normal((4096, args.dim))
    batches = list(torch.as_tensor(x, dtype=torch.float32).split(1024))
    # the stack reads its batches prepared once for the whole training set, as fit_stack does
    prepared = PreparedData(torch.as_tensor(x, dtype=torch.float32), torch.device("cpu"))
    rows = [np.arange(i, i + 1024) for i in range(0, 4096, 1024)]

    def per_step(step, first: int, n: int) -> float:
        tic = time.perf_counter()
        for s in range(first, first + n):
            step(s)
        return (time.perf_counter() - tic) / n * 1000

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, d {args.dim}, batch 1024")
    for h in args.widths:
        models = [SAE(args.dim, h, k=k, reconstruction_loss=loss, seed=0) for k in (8, 4, 2) for loss in ("l2", "cosine")]
        stack = _Stack(models, [1e-3] * len(models), torch.device("cpu"))

        def stack_step(s):
            stack.train_step(None, None, s, 0.9, 0.99, False, prepared.batch(rows[s % len(rows)]))

        per_step(stack_step, 1, args.warmup)
        stacked = per_step(stack_step, args.warmup + 1, args.steps)
        alone_model = SAE(args.dim, h, k=4, seed=0)
        optimizer = torch.optim.Adam(alone_model.parameters(), lr=1e-3, betas=(0.9, 0.99))

        def alone_step(s):
            alone_model.train_step(optimizer, batches[s % len(batches)])

        per_step(alone_step, 0, args.warmup)
        alone = per_step(alone_step, args.warmup, args.steps)
        line = (f"width {h}: stack of {len(models)} {stacked:.2f} ms, one alone {alone:.2f} ms, "
                f"ratio {len(models) * alone / stacked:.2f}x, dead latents {int(stack.dead().sum())}")  # fmt: skip
        if args.compile:
            stack.fast_gradients = torch.compile(stack.fast_gradients, dynamic=False)
            first = 2 * args.warmup + args.steps
            tic = time.perf_counter()
            per_step(stack_step, first, 10)
            compiling = time.perf_counter() - tic
            compiled = per_step(stack_step, first + 10, args.steps)
            line += f"; compiled: {compiling:.1f} s for its first 10 steps, then {compiled:.2f} ms"
        print(line, flush=True)


if __name__ == "__main__":
    main()
