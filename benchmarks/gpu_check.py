"""Run the GPU paths of the stages on the embedded default's real outputs and compare with CPU.

Input: a folder holding a finished default run's `results/synthetic/{data,elsa,sae,groups,eval}`
(copy them with `--pack` on the CPU machine). On the GPU machine: trains ELSA and one SAE on
CUDA (checks they learn: test NDCG@20 / cosine), then evaluates every SAGEA fusion and every
baseline of one group set on CUDA with the CPU-trained models and compares the recommendation
lists with the CPU evaluation's. Prints a JSON summary.

    python benchmarks/gpu_check.py --pack /tmp/lead-e2e/results/synthetic .gpu_check   # here
    PYTHONPATH=src python3 benchmarks/gpu_check.py --run .gpu_check                      # GPU host
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

ELSA, SAE, POOL, GROUPSET, OPTION = "f64-s42", "topk-h128-k8-l2", "test", "similar_3", "ti1-nu0"


def pack(results: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(results / "data", out / "data", dirs_exist_ok=True)
    for name in ("model.pt", "user_embeddings.parquet", "item_embeddings.parquet"):
        (out / "elsa").mkdir(exist_ok=True)
        shutil.copy(results / "elsa" / ELSA / name, out / "elsa" / name)
    (out / "sae").mkdir(exist_ok=True)
    shutil.copy(results / "sae" / ELSA / SAE / "model.pt", out / "sae" / "model.pt")
    shutil.copy(results / "groups" / POOL / f"{GROUPSET}.parquet", out / "groups.parquet")
    cpu = results / "eval" / POOL / GROUPSET / ELSA
    for folder in list((cpu / SAE / OPTION).iterdir()) + list((cpu / "baselines").iterdir()):
        dest = out / "cpu_eval" / folder.name
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / "recommendations.parquet", dest / "recommendations.parquet")
        shutil.copy(folder / "summary.json", dest / "summary.json")


def run(folder: Path) -> dict:
    import pandas as pd
    import torch

    from sagea.stages.elsa import train_elsa
    from sagea.stages import evaluate as E
    from sagea.stages.sae import train_sae

    assert torch.cuda.is_available(), "no CUDA device"
    out: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    data, split = folder / "data", folder / "data" / "split.parquet"
    tmp = Path(tempfile.mkdtemp())
    hp = dict(factors=64, lr=0.01, beta1=0.9, beta2=0.99, batch_size=256, epochs=25, patience=5, seed=42)
    t0 = time.perf_counter()
    m = train_elsa(data, split, tmp / "e.pt", tmp / "e.json", tmp / "e.parquet", hp, device="cuda")
    out["elsa_cuda"] = {"test_NDCG20": m["test"]["NDCG20"], "seconds": time.perf_counter() - t0}
    sae_hp = dict(variant="topk", width=128, k=8, reconstruction_loss="l2", l1_coef=3e-4, aux_coef=1 / 32,
                  contrastive_coef=0.0, normalize=False, lr=3e-3, beta1=0.9, beta2=0.99, batch_size=256,
                  epochs=150, validate_every=10, patience=5, early_stop_unit="validations", dead_after=5,
                  aux_k=512, train_path="embeddings", max_train_users=None, seed=42)  # fmt: skip
    t0 = time.perf_counter()
    s = train_sae(folder / "elsa" / "user_embeddings.parquet", folder / "elsa" / "model.pt", data, split,
                  tmp / "s.pt", tmp / "s.json", tmp / "s.parquet", sae_hp, device="cuda")  # fmt: skip
    out["sae_cuda"] = {"test_CosineSim": s["test"]["CosineSim"], "test_NDCG20": s["test"]["NDCG20"],
                       "seconds": time.perf_counter() - t0}  # fmt: skip
    settings = dict(k=20, batch_groups=256, target_ratio=0.5, split_seed=42, shared_mask=False,
                    hit_rate_needs_two=False, m=1, top_n=20)  # fmt: skip
    fusions = ["average", "square_average", "topk", "max", "min", "common_features",
               "at_least_2_common_features", "wcom"]  # fmt: skip
    baselines = ["ELSA", "ELSA_INT", "ADD", "MUL", "LMS", "MPL", "GFAR", "EPFuzzDA", "POPULAR"]
    paths = dict(data_dir=data, split_path=split, groups_path=folder / "groups.parquet",
                 elsa_path=folder / "elsa" / "model.pt",
                 item_embeddings_path=folder / "elsa" / "item_embeddings.parquet")  # fmt: skip
    scope = E.EvalScope("synthetic", POOL, GROUPSET, ELSA)
    eval_settings = E.group_eval_settings(settings, "cuda")
    t0 = time.perf_counter()
    E.evaluate_sagea_job(E.EvalInputs(**paths, sae_path=folder / "sae" / "model.pt"), {f: tmp / f for f in fusions},
                         scope, E.SageaSettings(SAE, {"width": 128, "k": 8, "reconstruction_loss": "l2"},
                                                True, False, "relax"), eval_settings)  # fmt: skip
    E.evaluate_baselines_job(E.EvalInputs(**paths), {b: tmp / b for b in baselines}, scope, eval_settings)
    out["eval_cuda_seconds"] = time.perf_counter() - t0
    agreement = {}
    for name in fusions + baselines:
        gpu = pd.read_parquet(tmp / name / "recommendations.parquet")
        cpu = pd.read_parquet(folder / "cpu_eval" / name / "recommendations.parquet")
        merged = gpu.merge(cpu, on=["group", "rank"], suffixes=("_gpu", "_cpu"))
        gpu_ndcg = json.loads((tmp / name / "summary.json").read_text())["metrics"]["CommonItemsNDCG20/mean"]
        cpu_ndcg = json.loads((folder / "cpu_eval" / name / "summary.json").read_text())["metrics"]["CommonItemsNDCG20/mean"]
        agreement[name] = {
            "same_item_at_rank": round(float((merged.item_gpu == merged.item_cpu).mean()), 4),
            "NDCG_com_gpu": round(gpu_ndcg, 4), "NDCG_com_cpu": round(cpu_ndcg, 4),
        }  # fmt: skip
    out["agreement"] = agreement
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", nargs=2, metavar=("RESULTS_DATASET_DIR", "OUT"))
    parser.add_argument("--run", metavar="FOLDER")
    args = parser.parse_args()
    if args.pack:
        pack(Path(args.pack[0]), Path(args.pack[1]))
    if args.run:
        print(json.dumps(run(Path(args.run)), indent=2))
