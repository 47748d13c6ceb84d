"""Labels of SAE features: the item metadata most over-represented among a feature's top items.

A feature's top items are the highest-scoring items of its decoded direction (``top_items`` of
``features.parquet``). Every item carries a set of metadata values (genres, tags, an artist, a
planted cluster, ...). For a value ``v`` with ``n_v`` of the feature's ``n`` top items and ``N_v``
of the catalogue's ``I`` items::

    lift(v) = (n_v / n) / (N_v / I)

Values held by at least ``min_count`` top items rank first, by lift, then count, then the rank of
the top items holding them (``Σ 1/(position + 1)``), then name; the label joins the first ``n_labels``. Where no value reaches ``min_count`` (an artist is usually one
item on Last.fm) the values held by one top item follow in the same order, so every feature with
top items gets a label.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

#: Metadata columns of items.parquet, in order of preference, and how their values split.
METADATA_COLUMNS = {"genres": "|", "cluster": None, "artist": None}
NO_GENRES = {"(no genres listed)", ""}


def item_values_from_column(items: pd.DataFrame, column: str, sep: str | None = "|") -> list[list[str]]:
    """Per item (ordered by ``item``) its metadata values of ``column`` (``sep`` splits multi-valued text)."""
    if column not in items:
        raise KeyError(f"items.parquet has no column {column!r} (columns: {list(items.columns)}); check explain.labels.column")
    ordered = items.sort_values("item")[column]
    prefix = "cluster " if column == "cluster" else ""
    out = []
    for value in ordered.tolist():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out.append([])
            continue
        parts = str(value).split(sep) if sep else [str(value)]
        out.append(sorted({prefix + p.strip() for p in parts if p.strip() not in NO_GENRES}))
    return out


def read_tags(path: str | os.PathLike, items: pd.DataFrame) -> list[list[str]]:
    """Per item the distinct lower-cased tags of MovieLens ``tags.csv`` (``userId,movieId,tag,…``)."""
    tags = pd.read_csv(path, usecols=["movieId", "tag"], dtype={"movieId": str, "tag": str})
    tags["tag"] = tags["tag"].fillna("").str.strip().str.lower()
    tags = tags[tags["tag"] != ""].drop_duplicates()
    by_movie = tags.groupby("movieId")["tag"].agg(lambda s: sorted(set(s)))
    ids = items.sort_values("item")["original_id"].astype(str)
    return [list(by_movie.get(i, [])) for i in ids]


def read_metadata_file(path: str | os.PathLike, items: pd.DataFrame, id_col: str, column: str, sep: str = "|") -> list[list[str]]:
    """Per item the values of ``column`` in an item metadata file (CSV, TSV or Parquet) keyed by the
    items' original ids in ``id_col``; items the file does not list get none."""
    path = Path(path)
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, sep="\t" if path.suffix in (".tsv", ".tab") else ",", dtype=str)
    for col, key in ((id_col, "explain.labels.id_col"), (column, "explain.labels.column")):
        if col not in frame:
            raise KeyError(f"{path} has no column {col!r} (columns: {list(frame.columns)}); check {key}")
    keyed = frame.dropna(subset=[id_col]).drop_duplicates(id_col).set_index(frame[id_col].astype(str).rename(None))
    meta = items.sort_values("item")[["item", "original_id"]].copy()
    meta[column] = keyed[column].reindex(meta["original_id"].astype(str)).to_numpy()
    return item_values_from_column(meta, column, sep)


def find_tags_file(raw: str | os.PathLike | None) -> Path | None:
    """``tags.csv`` under the raw dataset folder (searched recursively) or next to a raw file; None if absent."""
    if not raw or not Path(raw).exists():
        return None
    root = Path(raw)
    if root.is_file():
        candidate = root.parent / "tags.csv"
        return candidate if candidate.is_file() else None
    found = sorted(root.rglob("tags.csv"))
    return found[0] if found else None


def item_metadata(
    items: pd.DataFrame,
    column: str | None = None,
    tags_path: str | os.PathLike | None = None,
    metadata_file: str | os.PathLike | None = None,
    id_col: str = "item",
) -> tuple[str, list[list[str]]]:
    """``(source, values per item)``: ``column`` of ``metadata_file`` or of items.parquet if given,
    else genres (plus tags where ``tags_path``), the planted ``cluster``, or ``artist``;
    ``("none", [])`` when the items carry no metadata."""
    if metadata_file is not None:
        if not column:
            raise ValueError("explain.labels.file needs explain.labels.column (the metadata column to label by)")
        return f"{Path(metadata_file).name}:{column}", read_metadata_file(metadata_file, items, id_col, column)
    if column:
        return column, item_values_from_column(items, column, "|")
    for name, sep in METADATA_COLUMNS.items():
        if name in items:
            values = item_values_from_column(items, name, sep)
            if name == "genres" and tags_path is not None:
                tags = read_tags(tags_path, items)
                values = [v + [f"#{t}" for t in extra] for v, extra in zip(values, tags)]
                return "genres+tags", values
            return name, values
    if tags_path is not None:
        return "tags", [[f"#{t}" for t in tags] for tags in read_tags(tags_path, items)]
    return "none", [[] for _ in range(len(items))]


def _incidence(values: list[list[str]]) -> tuple[sp.csr_matrix, np.ndarray]:
    """0/1 item x value CSR and the value names (sorted)."""
    names = np.array(sorted({v for row in values for v in row}), dtype=object)
    lookup = {v: j for j, v in enumerate(names)}
    rows = np.repeat(np.arange(len(values)), [len(r) for r in values])
    cols = np.array([lookup[v] for row in values for v in row], dtype=np.int64)
    matrix = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(values), len(names)))
    return matrix, names


def label_features(
    top_items: Sequence[Sequence[int]],
    values: list[list[str]],
    n_labels: int = 3,
    min_count: int = 2,
) -> pd.DataFrame:
    """One row per feature: ``label`` (text), ``label_values``, ``label_lift``, ``label_count``.

    ``top_items[f]``: the feature's top item indices; ``values[i]``: item i's metadata values.
    """
    n_features = len(top_items)
    n_items = len(values)
    empty = pd.DataFrame({"label": [""] * n_features, "label_values": [[] for _ in range(n_features)],
                          "label_lift": [[] for _ in range(n_features)],
                          "label_count": [[] for _ in range(n_features)]})  # fmt: skip
    if n_features == 0 or n_items == 0 or not any(values):
        return empty
    incidence, names = _incidence(values)
    lengths = np.array([len(t) for t in top_items])
    rows = np.repeat(np.arange(n_features), lengths)
    cols = np.concatenate([np.asarray(t, dtype=np.int64) for t in top_items]) if lengths.sum() else np.zeros(0, np.int64)
    if cols.size and (cols.min() < 0 or cols.max() >= n_items):
        raise ValueError(f"top item index {int(cols.max())} outside the {n_items} items of items.parquet; rerun extract_sae")
    hits = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(n_features, n_items))
    counts = np.asarray((hits @ incidence).todense())  # [features, values]
    # tie-break: values of higher-ranked top items first (weight 1 / (position + 1))
    positions = np.concatenate([np.arange(n) for n in lengths]) if lengths.sum() else np.zeros(0)
    weighted = sp.csr_matrix((1.0 / (positions + 1.0), (rows, cols)), shape=(n_features, n_items))
    rank_weight = np.asarray((weighted @ incidence).todense())
    catalogue = np.asarray(incidence.sum(axis=0)).ravel() / n_items
    share = counts / np.maximum(lengths, 1)[:, None]
    lift = np.where(counts > 0, share / np.where(catalogue > 0, catalogue, 1.0), 0.0)
    # order: enough support first, then lift, then count, then name (lexsort: last key is primary)
    name_rank = np.arange(len(names))[None, :].repeat(n_features, 0)
    order = np.lexsort((name_rank, -rank_weight, -counts, -lift, -(counts >= min_count).astype(int)), axis=1)
    labels, label_values, label_lifts, label_counts = [], [], [], []
    for f in range(n_features):  # n_labels picks per feature; the ranking above is vectorised
        picked = [j for j in order[f, :n_labels] if counts[f, j] > 0]
        label_values.append([str(names[j]) for j in picked])
        label_lifts.append([float(lift[f, j]) for j in picked])
        label_counts.append([int(counts[f, j]) for j in picked])
        labels.append(", ".join(label_values[-1]))
    return pd.DataFrame(
        {"label": labels, "label_values": label_values, "label_lift": label_lifts, "label_count": label_counts}
    )


def feature_labels_table(
    features: pd.DataFrame,
    items: pd.DataFrame,
    column: str | None = None,
    tags_path: str | os.PathLike | None = None,
    n_labels: int = 3,
    min_count: int = 2,
    metadata_file: str | os.PathLike | None = None,
    id_col: str = "item",
) -> pd.DataFrame:
    """``feature_labels.parquet``: per feature of ``features.parquet`` its activity, top items and titles,
    the label source (``label_source``) and :func:`label_features`' columns."""
    source, values = item_metadata(items, column, tags_path, metadata_file, id_col)
    top = [list(map(int, t)) for t in features["top_items"]]
    labels = label_features(top, values, n_labels, min_count)
    out = pd.DataFrame(
        {
            "feature": features["feature"].to_numpy(np.int32),
            "frequency": features["frequency"].to_numpy(np.float32),
            "alive": features["frequency"].to_numpy() > 0,
            "top_items": top,
            "top_titles": [list(t) for t in features["top_titles"]],
            "label_source": source,
        }
    )
    return pd.concat([out, labels], axis=1)
