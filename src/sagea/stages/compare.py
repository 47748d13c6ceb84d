"""Compare stage (docs/compare.md): how much ELSA runs and SAE dictionaries differ, from the
files of the ELSA and SAE stages; one function per rule of workflow/rules/compare.smk."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from sagea.analysis.compare import compare_elsa_runs, compare_sae_dictionaries
from sagea.analysis.compare_report import write_pairs_figure, write_report
from sagea.io import read_embeddings, read_parquet, read_torch, write_parquet

log = logging.getLogger(__name__)


def load_decoder(path: str | os.PathLike) -> np.ndarray:
    """``decoder_w [h, d]`` of an SAE checkpoint (``model_state_dict``, docs/ARCHITECTURE.md)."""
    ckpt = read_torch(path, what="SAE checkpoint")
    state = ckpt.get("model_state_dict", ckpt)
    if "decoder_w" not in state:
        raise KeyError(f"{path}: model_state_dict has no 'decoder_w' (keys: {sorted(state)}); is it an SAE checkpoint?")
    return state["decoder_w"].detach().cpu().numpy().astype(np.float64)


def elsa_comparison_from_files(
    embedding_paths: Mapping[str, str],
    hps: Mapping[str, Mapping[str, Any]],
    k: int = 10,
    seed: int = 42,
    chunk_size: int = 2048,
    knn_queries: int | None = None,
) -> pd.DataFrame:
    """:func:`~sagea.analysis.compare.compare_elsa_runs` on embeddings files (run id ->
    ``*_embeddings.parquet``; first = reference)."""
    embeddings = {run: read_embeddings(path) for run, path in embedding_paths.items()}
    return compare_elsa_runs(embeddings, hps, k=k, seed=seed, chunk_size=chunk_size, knn_queries=knn_queries)


def sae_comparison_from_files(
    model_paths: Mapping[str, str],
    codes_paths: Mapping[str, str],
    hps: Mapping[str, Mapping[str, Any]],
    elsa_of: Mapping[str, str],
    user_embedding_paths: Mapping[str, str] | None = None,
    threshold: float = 0.7,
    seed: int = 42,
) -> pd.DataFrame:
    """:func:`~sagea.analysis.compare.compare_sae_dictionaries` on ``model.pt`` /
    ``codes_topk.parquet`` files and ELSA user embeddings."""
    decoders = {run: load_decoder(path) for run, path in model_paths.items()}
    codes = {run: read_parquet(codes_paths[run], columns=["user", "feature", "value"]) for run in model_paths}
    needed = set(elsa_of.values())
    users = None
    if len(needed) > 1:
        users = {e: read_embeddings(p) for e, p in (user_embedding_paths or {}).items() if e in needed}
    return compare_sae_dictionaries(decoders, codes, hps, elsa_of, users, threshold=threshold, seed=seed)


def compare_elsa(
    dataset: str,
    runs: Mapping[str, Mapping[str, Any]],
    embedding_paths: list[str | os.PathLike],
    out: str | os.PathLike,
    knn_k: int,
    knn_queries: int | None,
    chunk_size: int,
    seed: int,
) -> pd.DataFrame:
    """Rule compare_elsa: every ELSA run of ``dataset`` (``runs``: id -> hyperparameters, first =
    main run; ``embedding_paths`` in the same order) against the main run on item embeddings."""
    scores = elsa_comparison_from_files(
        dict(zip(runs, embedding_paths)), runs, k=knn_k, seed=seed, chunk_size=chunk_size, knn_queries=knn_queries
    )
    scores.insert(0, "dataset", dataset)
    write_parquet(scores, out)
    log.info("wrote %d scores to %s", len(scores), out)
    return scores


def compare_sae(
    dataset: str,
    members: Mapping[str, tuple[str, str, Mapping[str, Any]]],
    model_paths: list[str | os.PathLike],
    codes_paths: list[str | os.PathLike],
    user_embedding_paths: list[str | os.PathLike],
    out: str | os.PathLike,
    match_threshold: float,
    seed: int,
) -> pd.DataFrame:
    """Rule compare_sae: every pair of SAE dictionaries of ``dataset``. ``members``: comparison id
    -> ``(elsa, sae, hyperparameters)`` (:func:`sagea.plan_compare.sae_members`); models and codes
    in the same order, user embeddings one per distinct ELSA run in order of first appearance."""
    ids = list(members)
    elsas = list(dict.fromkeys(elsa for elsa, _, _ in members.values()))
    scores = sae_comparison_from_files(
        dict(zip(ids, model_paths)),
        dict(zip(ids, codes_paths)),
        {run: hp for run, (_, _, hp) in members.items()},
        {run: elsa for run, (elsa, _, _) in members.items()},
        dict(zip(elsas, user_embedding_paths)),
        threshold=match_threshold,
        seed=seed,
    )
    scores.insert(0, "dataset", dataset)
    write_parquet(scores, out)
    log.info("wrote %d scores to %s", len(scores), out)
    return scores


def compare_table(
    scores: str | os.PathLike, csv: str | os.PathLike, md: str | os.PathLike, figure: str | os.PathLike, title: str
) -> None:
    """Rule compare_table: the table (CSV, Markdown) and similarity figure of one comparison."""
    write_report(read_parquet(scores), csv=csv, markdown=md, figure=figure, title=title)
    log.info("wrote %s, %s, %s", csv, md, figure)


def compare_pairs_figure(scores: str | os.PathLike, figure: str | os.PathLike, title: str) -> None:
    """Rule compare_sae_pairs_figure: heat maps of every compared pair of SAE dictionaries."""
    write_pairs_figure(read_parquet(scores), figure, title=title)
    log.info("wrote %s", figure)
