"""Our ELSA vs the official implementation (PyPI ``elsarec``, module ``elsa``), side by side.

Same data, split, factors, batch size, epochs and learning rate; each trains without early
stopping. Reports seconds per training epoch (median wall and CPU time, evaluation excluded), the final held-out (valid + test users) NDCG@20 / Recall@20
and the best held-out NDCG@20 over the epochs (the quality each reaches, whatever its speed) of both, evaluated by the same ``sagea.evaluation.single_user.evaluate_scorer``.

    pip install --no-deps elsarec==0.1.4      # benchmark only; not a project dependency
    python benchmarks/elsa_vs_elsarec.py --data ml-small --factors 64 --batch-size 64 --epochs 15 --lr 0.01
    python benchmarks/elsa_vs_elsarec.py --data synthetic --users 20000 --items 4000 --epochs 5

Differences of the official code that remain: Xavier init, NAdam, rows normalised inside
``forward`` (gradient through the normalisation) instead of tangent projection + re-normalisation,
MSE averaged over items instead of summed (Adam is scale-invariant, so the same lr is comparable),
and no ReLU on the prediction in the loss: ``sagea-noReLU`` is our model trained that way, to
show that the ReLU (a choice of the SAGEA research code, docs/method.md §2) explains any gap.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from sagea.evaluation.single_user import evaluate_scorer, single_user_split
from sagea.models.elsa import ELSA, fit
from sagea.runtime import select_device

log = logging.getLogger("bench")
ML_SMALL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-latest-small"


def ml_small(min_user: int = 20, min_item: int = 10) -> sp.csr_matrix:
    ratings = pd.read_csv(ML_SMALL / "ratings.csv")
    pos = ratings[ratings["rating"] >= 4.0][["userId", "movieId"]].drop_duplicates()
    vc = pos["userId"].value_counts()
    pos = pos[pos["userId"].isin(vc[vc >= min_user].index)]
    vc = pos["movieId"].value_counts()
    pos = pos[pos["movieId"].isin(vc[vc >= min_item].index)]
    u = pd.factorize(pos["userId"], sort=True)[0]
    i = pd.factorize(pos["movieId"], sort=True)[0]
    return sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(u.max() + 1, i.max() + 1))


def synthetic(n_users: int, n_items: int, per_user: int, n_clusters: int = 20, seed: int = 0) -> sp.csr_matrix:
    """Users pick ``per_user`` items: 80% from their taste cluster (Zipf inside), 20% anywhere."""
    rng = np.random.default_rng(seed)
    cluster_of_item = rng.integers(n_clusters, size=n_items)
    user_cluster = rng.integers(n_clusters, size=n_users)
    ranks = rng.permutation(n_items) + 1.0
    pop = ranks**-0.8
    members = [np.flatnonzero(cluster_of_item == c) for c in range(n_clusters)]
    probs = [pop[m] / pop[m].sum() for m in members]
    rows, cols = [], []
    n_in = int(0.8 * per_user)
    for c in range(n_clusters):
        users = np.flatnonzero(user_cluster == c)
        inside = rng.choice(members[c], size=(len(users), n_in), p=probs[c])
        outside = rng.choice(n_items, size=(len(users), per_user - n_in), p=pop / pop.sum())
        rows.append(np.repeat(users, per_user))
        cols.append(np.concatenate([inside, outside], axis=1).reshape(-1))
    mat = sp.csr_matrix(
        (np.ones(sum(map(len, rows)), np.float32), (np.concatenate(rows), np.concatenate(cols))), shape=(n_users, n_items)
    )
    mat.data[:] = 1.0
    return mat


def split_users(n: int, seed: int = 42) -> dict[str, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    nv = nt = int(round(0.1 * n))
    return {"valid": np.sort(perm[:nv]), "test": np.sort(perm[nv : nv + nt]), "train": np.sort(perm[nv + nt :])}


def run_ours(train, test, n_items, args, device, relu: bool = True) -> dict:
    model = ELSA(n_items, args.factors, seed=args.seed, relu=relu)
    curve: list[float] = []
    cpu = [time.process_time()]  # CPU time between callbacks = one epoch (less sensitive to machine load)

    def after_epoch(record: dict) -> None:
        cpu[-1] = time.process_time() - cpu[-1]
        curve.append(evaluate_scorer(model.scores, *test, device=device)["NDCG20"])
        cpu.append(time.process_time())

    res = fit(model, train, None, lr=args.lr, batch_size=args.batch_size, epochs=args.epochs, seed=args.seed,
              device=device, callback=after_epoch)  # fmt: skip
    per_epoch = [h["train_seconds"] for h in res.history]
    final = evaluate_scorer(model.scores, *test, device=device)  # (fit restored the lowest-loss epoch: the last here)
    return {"seconds_per_epoch": float(np.median(per_epoch)), "epochs_seconds": per_epoch,
            "cpu_per_epoch": float(np.median(cpu[:-1])), "epochs_cpu": cpu[:-1], "curve": curve, **final}  # fmt: skip


def run_official(train, test, n_items, args, device) -> dict:
    from elsa import ELSA as OfficialELSA

    torch.manual_seed(args.seed)
    model = OfficialELSA(n_items, args.factors, device=device, lr=args.lr)
    per_epoch, cpu, curve = [], [], []
    for _ in range(args.epochs):  # one fit() call per epoch to time epochs; the optimiser persists
        tic, cpu_tic = time.perf_counter(), time.process_time()
        model.fit(train, epochs=1, batch_size=args.batch_size, shuffle=True, verbose=False)
        per_epoch.append(time.perf_counter() - tic)
        cpu.append(time.process_time() - cpu_tic)
        with torch.no_grad():
            curve.append(evaluate_scorer(lambda x: model(x), *test, device=device)["NDCG20"])
    with torch.no_grad():
        metrics = evaluate_scorer(lambda x: model(x), *test, device=device)
    return {"seconds_per_epoch": float(np.median(per_epoch)), "epochs_seconds": per_epoch,
            "cpu_per_epoch": float(np.median(cpu)), "epochs_cpu": cpu, "curve": curve, **metrics}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=["ml-small", "synthetic"], default="ml-small")
    p.add_argument("--users", type=int, default=20000)
    p.add_argument("--items", type=int, default=4000)
    p.add_argument("--per-user", type=int, default=40)
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    device = select_device(args.device)
    matrix = ml_small() if args.data == "ml-small" else synthetic(args.users, args.items, args.per_user, seed=args.seed)
    split = split_users(matrix.shape[0])
    train = matrix[split["train"]]
    # no early stopping here, so validation and test users together form the held-out set (less noise)
    test = single_user_split(matrix, np.sort(np.concatenate([split["valid"], split["test"]])))
    out = {"data": args.data, "shape": list(matrix.shape), "nnz": int(matrix.nnz), "args": {k: str(v) for k, v in vars(args).items()},
           "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, {device}"}  # fmt: skip
    runners = {
        "sagea": run_ours,  # loss on relu(x A Aᵀ − x), as the research code (docs/method.md §2)
        "sagea-noReLU": lambda *a: run_ours(*a, relu=False),  # loss on x A Aᵀ − x, as elsarec
        "elsarec": run_official,
    }
    for name, runner in runners.items():
        res = runner(train, test, matrix.shape[1], args, device)
        out[name] = {
            k: v
            for k, v in res.items()
            if k in ("seconds_per_epoch", "epochs_seconds", "cpu_per_epoch", "epochs_cpu", "NDCG20", "R20", "curve")
        }
        best = int(np.argmax(res["curve"]))
        print(
            f"{name:12s} {res['seconds_per_epoch']:.3f} s/epoch (CPU {res['cpu_per_epoch']:.3f} s)  final NDCG@20 {res['NDCG20']:.4f}  R@20 {res['R20']:.4f}  "
            f"best NDCG@20 {res['curve'][best]:.4f} (epoch {best + 1})",
            flush=True,
        )
    print(json.dumps({k: out[k] for k in ("data", "shape", "nnz", "machine")}))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
