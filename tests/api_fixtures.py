"""A tiny evaluated study for the API and CLI tests: the contract-format upstream files of
evaluate_fixtures, item titles/genres, a second SAE whose folder name lies about its k, and the
evaluation stage's own jobs (SAGEA fusions with two options, every baseline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from evaluate_fixtures import FACTORS, N_ITEMS, WIDTH, write_upstream
from sagea.io import read_parquet, write_json, write_parquet, write_torch
from sagea.models.sae import SAE
from sagea.stages.evaluate import (
    EvalInputs,
    EvalScope,
    SageaSettings,
    evaluate_baselines_job,
    evaluate_sagea_job,
    group_eval_settings,
)

ELSA_RUN, SAE_RUN = "f8-s42", "topk-h16-k4-l2"
#: Folder name says k9; the checkpoint's k is 2 (the API must read the checkpoint).
ODD_SAE_RUN, ODD_SAE_K = "topk-h16-k9-l2", 2
FUSIONS = ["average", "common_features", "wcom", "topk"]
BASELINES = ["ELSA", "ELSA_INT", "ADD", "MUL", "LMS", "MPL", "GFAR", "EPFuzzDA", "POPULAR"]
#: Non-default split seed: the API must take it from groups_summary.json to match the evaluation.
SPLIT = {"target_ratio": 0.5, "split_seed": 7, "shared_mask": False}
EVAL_K = 5
GENRES = ["Comedy", "Drama", "Horror", "Sci-Fi"]


def build_study(root: Path) -> Path:
    """Write and evaluate the study under ``root/results``; returns the replicate folder."""
    write_upstream(root, elsa_run=ELSA_RUN, sae_run=SAE_RUN, groupsets={"similar_3": 3}, seed=3)
    rep = root / "results" / "synthetic" / "s42"
    items = read_parquet(rep / "data" / "items.parquet")
    items["title"] = [f"Film {i}" for i in range(N_ITEMS)]
    items["genres"] = [GENRES[i % 4] + "|" + GENRES[(i + 1) % 4] for i in range(N_ITEMS)]
    write_parquet(items, rep / "data" / "items.parquet")
    odd = SAE(FACTORS, WIDTH, k=ODD_SAE_K, seed=5)
    write_torch(odd.checkpoint(), rep / "sae" / ELSA_RUN / ODD_SAE_RUN / "model.pt")
    write_json({"parameters": SPLIT}, rep / "groups" / "test" / "groups_summary.json")
    elsa = rep / "elsa" / ELSA_RUN
    inputs = dict(
        data_dir=rep / "data", split_path=rep / "split.parquet", groups_path=rep / "groups" / "test" / "similar_3.parquet",
        elsa_path=elsa / "model.pt", item_embeddings_path=elsa / "item_embeddings.parquet",
    )  # fmt: skip
    # batch_groups 4: the evaluation chunks its 10 groups, the API recommends them in one batch
    settings = group_eval_settings({"k": EVAL_K, "batch_groups": 4, "top_n": 4, **SPLIT}, device="cpu")
    scope = EvalScope(dataset="synthetic", pool="test", groupset="similar_3", elsa_run=ELSA_RUN)
    out = rep / "eval" / "test" / "similar_3" / ELSA_RUN
    for ti, nu in ((True, False), (False, True)):
        option = f"ti{int(ti)}-nu{int(nu)}"
        sagea = SageaSettings(
            SAE_RUN, {"width": WIDTH, "k": 4, "variant": "topk", "reconstruction_loss": "l2"},
            topk_inference=ti, normalize_users_embeddings=nu, zero_fallback="relax",
        )  # fmt: skip
        evaluate_sagea_job(
            EvalInputs(**inputs, sae_path=rep / "sae" / ELSA_RUN / SAE_RUN / "model.pt"),
            {f: out / SAE_RUN / option / f for f in FUSIONS}, scope, sagea, settings,
        )  # fmt: skip
    evaluate_baselines_job(EvalInputs(**inputs), {b: out / "baselines" / b for b in BASELINES}, scope, settings)
    return rep


def saved_lists(rep: Path, folder: str) -> pd.DataFrame:
    """``recommendations.parquet`` of one strategy folder (relative to the group set's ELSA folder)."""
    path = rep / "eval" / "test" / "similar_3" / ELSA_RUN / folder / "recommendations.parquet"
    return pd.read_parquet(path)[["group", "rank", "item"]].astype(np.int64)
