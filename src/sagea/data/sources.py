"""Source registry: turn one ``config['datasets']`` entry into :class:`~sagea.data.raw.RawData`.

Each source has its own parser module (``movielens``, ``lastfm``, ``echonest``, ``custom``,
``synthetic``); this module only dispatches and applies per-source defaults.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from sagea.data.raw import DataError, RawData

SOURCES = ("movielens", "lastfm1k", "echonest", "custom", "synthetic")


def synthetic_raw(options: dict[str, Any]) -> RawData:
    """Generate the synthetic dataset; ground truth goes into the user/item metadata."""
    from sagea.data.synthetic import generate

    data = generate(**options)
    n_users = len(data.user_main_cluster)
    users = pd.DataFrame(
        {
            "original_id": np.arange(n_users, dtype=np.int64),
            "clusters": pd.Series([c.astype(np.int32) for c in data.user_clusters], dtype=object),
            "main_cluster": data.user_main_cluster.astype(np.int32),
        }
    )
    items = pd.DataFrame(
        {"original_id": np.arange(len(data.item_cluster), dtype=np.int64), "cluster": data.item_cluster}
    )
    stats = {"generator": "sagea.data.synthetic.generate", **{k: v for k, v in options.items()}}
    return RawData("synthetic", data.interactions, items=items, users=users, stats=stats)


def load_raw(name: str, spec: dict[str, Any], raw_path: str | os.PathLike | None) -> RawData:
    """Parse dataset ``name`` described by ``spec`` from ``raw_path`` (a file or folder)."""
    source = spec["source"]
    if source == "synthetic":
        return synthetic_raw(spec.get("synthetic") or {})
    if raw_path is None:
        raise DataError(
            f"datasets.{name}: source {source!r} needs raw files (set datasets.{name}.path or let the download rule fetch them)"
        )
    if not os.path.exists(raw_path):
        raise DataError(f"datasets.{name}: raw path {raw_path} does not exist")
    threshold = spec.get("threshold")
    if source == "movielens":
        from sagea.data import movielens

        return movielens.read(
            raw_path, release=spec.get("release", "ml-32m"), threshold=4.0 if threshold is None else threshold
        )
    if source == "lastfm1k":
        from sagea.data import lastfm

        return lastfm.read(raw_path)
    if source == "echonest":
        from sagea.data import echonest

        return echonest.read(raw_path, threshold=threshold)
    if source == "custom":
        from sagea.data import custom

        return custom.read(raw_path, spec.get("custom") or {}, threshold=threshold, name=name)
    raise DataError(f"datasets.{name}.source: unknown source {source!r}; allowed: {', '.join(SOURCES)}")
