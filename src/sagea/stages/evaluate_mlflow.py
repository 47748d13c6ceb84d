"""MLflow naming of the evaluation runs: the research code's parameters (``group_type``,
``note``, ...) and one run per strategy folder in ``GR_<dataset>``."""

from __future__ import annotations

from typing import Mapping, Sequence


def paper_group_type(groupset: str) -> str:
    """The research code's ``group_type``: sim / div / random / outlier (opposing 2-1) / opposing_a-b."""
    from sagea.plan import PAPER_GROUP_NAMES, parse_group_set

    if groupset in PAPER_GROUP_NAMES:
        return PAPER_GROUP_NAMES[groupset]
    kind, sizes = parse_group_set(groupset)
    if kind == "opposing":
        return "outlier" if sizes == [2, 1] else groupset
    return {"similar": "sim", "divergent": "div", "random": "random"}[kind]


def research_note(reconstruction_loss: str, topk_inference: bool, normalize: bool) -> str:
    """The research notebooks' ``note`` (seed 000): ``sizes_L2_with_acts[_normalized]``.

    "with acts" = TopK kept at inference; L2 / Cosine = the SAE's reconstruction loss.
    """
    loss = {"l2": "L2", "cosine": "Cosine"}.get(reconstruction_loss, reconstruction_loss)
    note = f"sizes_{loss}_{'with' if topk_inference else 'without'}_acts"
    return note + ("_normalized" if normalize else "")


def run_params(
    dataset: str,
    strategy: str,
    fusion: str | None,
    pool: str,
    groupset: str,
    group_size: int,
    embedding_dim: int,
    top_k: int | None,
    note: str,
    topk_inference: bool | None = None,
    normalize_users_embeddings: bool | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The research code's MLflow parameters of one evaluation (docs/method.md §5).

    ``group_type`` keeps the research names (``sim``, ``div``, ``random``, ``outlier``), which do
    not say the size; ``group_set`` (``similar_5``), ``group_kind`` and ``group_size`` do.
    """
    from sagea.plan import parse_group_set

    kind, sizes = parse_group_set(groupset)
    params: dict[str, object] = {
        "dataset": dataset,
        "recommender_strategy": strategy,
        "SAE_fusion_strategy": fusion if fusion is not None else "None",
        "group_type": paper_group_type(groupset),
        "group_size": group_size,
        "embedding_dim": embedding_dim,
        "top_k": top_k if top_k is not None else "None",
        "note": note,
        "topk_inference": topk_inference if topk_inference is not None else "None",
        "normalize_users_embeddings": normalize_users_embeddings if normalize_users_embeddings is not None else "None",
        "group_set": groupset,
        "group_kind": kind,
        "user_set": pool,
    }
    if kind == "opposing":
        params["subgroup_sizes"] = "-".join(map(str, sizes))
    params.update(extra or {})
    return params




def log_summary(
    tracking_uri: str,
    dataset: str,
    run_name: str,
    summary: Mapping,
    artifacts: Sequence = (),
    *,
    key: str | None = None,
    start_time: float | None = None,
    provenance=None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """One MLflow run in ``GR_<dataset>`` with the summary's params (plus the provenance's group
    sampling settings) and metrics; ``key`` replaces an earlier run of the same output folder."""
    from sagea.tracking import log_run

    params = {**summary["params"], **(dict(provenance.group_params) if provenance is not None else {})}
    return log_run(
        tracking_uri, f"GR_{dataset}", run_name, params, summary["metrics"], artifacts=artifacts,
        tags={"sagea.stage": "evaluate", **dict(tags or {})}, key=key, start_time=start_time, provenance=provenance,
    )
