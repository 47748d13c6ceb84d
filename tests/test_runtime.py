"""sagea.runtime.seed_everything: seeded streams and torch's deterministic kernels, without the
torch.compile stack (its import was 1.5 s of every training job's start-up)."""

from __future__ import annotations

import subprocess
import sys


def test_seed_everything_sets_determinism_without_importing_the_compiler():
    code = (
        "import sys, random, numpy as np, torch\n"
        "from sagea.runtime import seed_everything\n"
        "seed_everything(7)\n"
        "a = (random.random(), float(np.random.rand()), float(torch.rand(1)))\n"
        "seed_everything(7)\n"
        "b = (random.random(), float(np.random.rand()), float(torch.rand(1)))\n"
        "print(a == b, torch.are_deterministic_algorithms_enabled(),\n"
        "      torch.is_deterministic_algorithms_warn_only_enabled(), 'torch._inductor' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True", "True", "False"]
