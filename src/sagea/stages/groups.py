"""Group stage (docs/ARCHITECTURE.md): every group set of one (dataset, pool) from the files of
the data and ELSA stages, plus ``groups_summary.json`` and the diagnostics figures."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any


from sagea.data.matrix import load_interactions, load_split, pool_users
from sagea.groups.diagnostics import opposing_subgroup_figure, similarity_histograms
from sagea.groups.errors import GroupSamplingError
from sagea.groups.io import group_set_frame, write_groups
from sagea.groups.sampling import sample_group_sets
from sagea.io import check_finite, read_embeddings, read_parquet, save_figure, write_json

log = logging.getLogger(__name__)


def sample_groups(
    embeddings_path: str | os.PathLike,
    data_dir: str | os.PathLike,
    split_path: str | os.PathLike,
    pool: str,
    group_sets: list[str],
    group_paths: list[str | os.PathLike],
    summary_path: str | os.PathLike,
    histogram_path: str | os.PathLike,
    subgroup_path: str | os.PathLike,
    research: dict[str, Any] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Sample ``group_sets`` from the users of ``pool`` and write one Parquet file per set
    (``group_paths`` in the same order), the summary JSON and the two figures.

    ``params`` go to :func:`sagea.groups.sampling.sample_group_sets` (seed, quantiles, filters).
    With ``research`` (config ``datasets.<name>.groups_import``: ``path`` a folder, ``user_sets``
    pool -> research user set, ``research_index``) every set is imported from the research file
    ``<path>/<set>_<user set>.npy`` instead of sampled (:func:`sagea.research.research_group_set`).
    """
    import matplotlib.pyplot as plt

    if len(group_paths) != len(group_sets):
        raise ValueError(f"{len(group_sets)} group sets but {len(group_paths)} output paths")
    embeddings = read_embeddings(embeddings_path)
    rows = load_interactions(data_dir)
    users = pool_users(load_split(split_path), pool)
    original_ids = read_parquet(os.path.join(data_dir, "users.parquet"), columns=["user", "original_id"])
    original_ids = original_ids.sort_values("user")["original_id"].astype(str).to_numpy()
    log.info("pool %s: %d users; embeddings %s from %s", pool, len(users), embeddings.shape, embeddings_path)
    try:
        sets, summary = sample_group_sets(embeddings, users, rows, [] if research else group_sets, **params)
    except GroupSamplingError as err:
        log.error("group sampling of pool %s failed: %s", pool, err)
        raise
    if research:
        from sagea.research import research_file_name, research_group_set

        user_set = (research.get("user_sets") or {}).get(pool, pool)
        for name in group_sets:
            source = Path(research["path"]) / research_file_name(name, user_set)
            sets[name] = research_group_set(
                name, source, Path(data_dir) / "users.parquet", embeddings, rows,
                research_index=research.get("research_index"), target_ratio=params.get("target_ratio", 0.5),
                split_seed=params.get("split_seed", 42), shared_mask=params.get("shared_mask", False),
            )  # fmt: skip
            summary["sets"][name] = sets[name].summary
            log.info("%s: imported %d research groups from %s", name, len(sets[name].members), source)
    summary["pool"]["name"] = pool
    summary["embeddings"] = str(embeddings_path)
    for (name, groups), path in zip(sets.items(), group_paths):
        frame = group_set_frame(groups, original_ids)
        # subgroup similarities are NaN by design outside opposing sets; the group's own never is
        check_finite(frame["group_similarity"], path, "group similarity to write", f"check {embeddings_path}")
        write_groups(frame, path)
        s = groups.summary
        log.info(
            "%s: kept %d of %d generated (acceptance rate %.3f, %d restarts)",
            name,
            s["kept"],
            s["generated"],
            s["acceptance_rate"],
            s["restarts"],
        )
    write_json(summary, summary_path)
    td, ts = summary["thresholds"]["Td"], summary["thresholds"]["Ts"]
    for fig, path in (
        (similarity_histograms(sets, td, ts), histogram_path),
        (opposing_subgroup_figure(sets, td, ts), subgroup_path),
    ):
        save_figure(fig, path)
        plt.close(fig)
    return summary
