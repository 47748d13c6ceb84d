"""From parsed raw interactions to the prepared data of docs/ARCHITECTURE.md.

Steps (docs/method.md §1): the parser has already kept the positives (threshold) → duplicate
(user, item) pairs collapse to one → one filter pass: drop users with fewer than
``min_user_interactions`` pairs, then items with fewer than ``min_item_interactions`` among the
remaining pairs (``iterate`` repeats both until nothing changes) → contiguous indices (``index_order``:
in the order of the sorted original ids, or the research code's order, see :func:`appearance_order`)
→ ``interactions.parquet``, ``users.parquet``, ``items.parquet`` and the dataset card
(``card.json`` + ``card.md``).

Everything works on integer codes (``pd.factorize``) and ``int64`` pair keys
``user_code * n_items + item_code``, so 32M rows take seconds and little memory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sagea.data.raw import DataError, RawData, sorted_unique
from sagea.io import write_json, write_parquet, write_text

log = logging.getLogger(__name__)

#: Per-source filter defaults (docs/method.md §1) used when ``filter`` leaves a value null.
#: synthetic: light (the generator gives every user a few pairs), custom: no filtering.
FILTER_DEFAULTS: dict[str, dict[str, int]] = {
    "movielens": {"min_user_interactions": 50, "min_item_interactions": 20},
    "lastfm1k": {"min_user_interactions": 5, "min_item_interactions": 10},
    "echonest": {"min_user_interactions": 100, "min_item_interactions": 200},
    "synthetic": {"min_user_interactions": 5, "min_item_interactions": 5},
    "custom": {"min_user_interactions": 0, "min_item_interactions": 0},
}


#: How users and items get their contiguous indices (``datasets.<name>.index_order``).
INDEX_ORDERS = ("sorted", "appearance")


@dataclass
class Prepared:
    interactions: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    card: dict[str, Any]


def resolve_filter(source: str, filter_cfg: dict | None) -> tuple[int, int, bool]:
    """``(min_user, min_item, iterate)`` with the source defaults filled in for null values."""
    filter_cfg = filter_cfg or {}
    defaults = FILTER_DEFAULTS[source]
    min_user = filter_cfg.get("min_user_interactions")
    min_item = filter_cfg.get("min_item_interactions")
    return (
        int(defaults["min_user_interactions"] if min_user is None else min_user),
        int(defaults["min_item_interactions"] if min_item is None else min_item),
        bool(filter_cfg.get("iterate", False)),
    )


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts: ``sum_i (2i - n - 1) x_(i) / (n sum x)``, i = 1..n ascending."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * x) / (n * x.sum()))


def _describe(counts: np.ndarray) -> dict[str, float]:
    if len(counts) == 0:
        return {"min": 0, "mean": 0.0, "median": 0.0, "max": 0}
    return {
        "min": int(counts.min()),
        "mean": float(counts.mean()),
        "median": float(np.median(counts)),
        "max": int(counts.max()),
    }


def _meta_for(meta: pd.DataFrame | None, ids: pd.Index) -> pd.DataFrame | None:
    """Metadata rows aligned to ``ids`` (original ids), missing rows as nulls."""
    if meta is None or meta.empty:
        return None
    meta = meta.drop_duplicates("original_id").set_index("original_id")
    try:
        aligned = meta.reindex(ids)
    except (TypeError, ValueError):
        aligned = meta.set_axis(meta.index.astype(str)).reindex(ids.astype(str))
    return aligned.reset_index(drop=True)


def _string_ranks(ids: pd.Index, what: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(order, rank)`` of ``ids`` by their string form (code-point order = UTF-8 byte order)."""
    text = np.asarray(ids.astype(str), dtype=str)
    order = np.argsort(text, kind="stable")
    ordered = text[order]
    clash = np.flatnonzero(ordered[1:] == ordered[:-1])
    if len(clash):
        raise DataError(
            f"{name}: two different {what} ids have the same text {str(ordered[clash[0]])!r}; index_order "
            f"'appearance' needs distinct texts (use datasets.{name}.index_order: sorted)"
        )
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return order, rank


def appearance_order(
    user_ids: pd.Index, item_ids: pd.Index, users: np.ndarray, items: np.ndarray, name: str = "dataset"
) -> tuple[np.ndarray, np.ndarray]:
    """The research code's index order of the kept users and items, as codes into ``user_ids`` / ``item_ids``.

    The research loaders deduplicate the pairs, cast both ids to strings, sort the pairs by
    (user text, item text), filter, and number users and items by their first appearance in that
    frame (polars ``Categorical`` codes). So users come in the order of their id texts
    (``"1" < "10" < "2"``) and items in the order the sorted pairs first mention them.
    ``users``/``items``: codes of the kept (unique) pairs. Returns ``(user_order, item_order)``:
    index ``j`` is the code ``user_order[j]`` (``item_order[j]``).
    """
    u_order, u_rank = _string_ranks(user_ids, "user", name)
    i_order, i_rank = _string_ranks(item_ids, "item", name)
    n_i = len(item_ids)
    key = np.sort(u_rank[users] * n_i + i_rank[items])  # pairs in the research frame's row order
    user_text_ranks = np.unique(key // n_i)  # first appearance of users = text order
    item_text_ranks, first = np.unique(key % n_i, return_index=True)
    item_by_appearance = item_text_ranks[np.argsort(first, kind="stable")]
    return u_order[user_text_ranks], i_order[item_by_appearance]


def prepare_interactions(
    raw: RawData,
    min_user_interactions: int,
    min_item_interactions: int,
    iterate: bool = False,
    name: str = "dataset",
    max_iterations: int = 100,
    index_order: str = "sorted",
) -> Prepared:
    """Dedupe, filter and re-index ``raw`` (see the module docstring); ``name`` is for messages.

    ``index_order``: ``sorted`` numbers users and items in the order of their sorted original ids;
    ``appearance`` in the research code's order (:func:`appearance_order`). Either way
    ``interactions`` is sorted by user, then item index.
    """
    if index_order not in INDEX_ORDERS:
        raise DataError(f"datasets.{name}.index_order is {index_order!r}; expected one of {INDEX_ORDERS}")
    frame = raw.interactions
    for column in ("user", "item"):
        if column not in frame.columns:
            raise DataError(
                f"{name}: the parser produced no {column!r} column (columns: {list(frame.columns)})"
            )
    n_positive = len(frame)
    if n_positive == 0:
        raise DataError(
            f"{name}: no positive interactions in the raw data "
            f"(check datasets.{name}.threshold and the value column)"
        )
    user_codes, user_ids = pd.factorize(frame["user"], sort=True)
    item_codes, item_ids = pd.factorize(frame["item"], sort=True)
    n_u, n_i = len(user_ids), len(item_ids)
    keys = sorted_unique(user_codes.astype(np.int64) * n_i + item_codes)
    del user_codes, item_codes
    n_unique = len(keys)
    users = keys // n_i
    items = keys - users * n_i

    keep_user = np.ones(n_u, dtype=bool)
    keep_item = np.ones(n_i, dtype=bool)
    row_mask = np.ones(n_unique, dtype=bool)
    dropped_users = dropped_items = dropped_user_pairs = dropped_item_pairs = 0
    passes = 0
    while True:
        passes += 1
        ucount = np.bincount(users[row_mask], minlength=n_u)
        low_user = keep_user & (ucount < min_user_interactions)
        dropped_users += int(low_user.sum())
        keep_user &= ~low_user
        new_mask = row_mask & keep_user[users]
        dropped_user_pairs += int(row_mask.sum() - new_mask.sum())
        row_mask = new_mask
        icount = np.bincount(items[row_mask], minlength=n_i)
        low_item = keep_item & (icount < min_item_interactions)
        dropped_items += int(low_item.sum())
        keep_item &= ~low_item
        new_mask = row_mask & keep_item[items]
        dropped_item_pairs += int(row_mask.sum() - new_mask.sum())
        changed = bool(low_user.any() or low_item.any())
        row_mask = new_mask
        if not iterate or not changed or passes >= max_iterations:
            break
    # users/items left without any pair after the item filter disappear as well
    final_ucount = np.bincount(users[row_mask], minlength=n_u)
    final_icount = np.bincount(items[row_mask], minlength=n_i)
    emptied_users = int((keep_user & (final_ucount == 0)).sum())
    keep_user &= final_ucount > 0
    keep_item &= final_icount > 0
    if not row_mask.any():
        raise DataError(
            f"{name}: no interactions left after filtering (min_user_interactions="
            f"{min_user_interactions}, min_item_interactions={min_item_interactions}, "
            f"{n_unique} unique pairs, {n_u} users, {n_i} items before); lower "
            f"datasets.{name}.filter.min_user_interactions / min_item_interactions"
        )

    if index_order == "sorted":
        user_order, item_order = np.flatnonzero(keep_user), np.flatnonzero(keep_item)
    else:
        user_order, item_order = appearance_order(user_ids, item_ids, users[row_mask], items[row_mask], name)
    new_user = np.full(n_u, -1, dtype=np.int64)
    new_user[user_order] = np.arange(len(user_order))
    new_item = np.full(n_i, -1, dtype=np.int64)
    new_item[item_order] = np.arange(len(item_order))
    out_users = new_user[users[row_mask]]
    out_items = new_item[items[row_mask]]
    if index_order != "sorted":  # sorted re-indexing is monotone: the keys' order is kept
        order = np.argsort(out_users * len(item_order) + out_items)
        out_users, out_items = out_users[order], out_items[order]
    interactions = pd.DataFrame({"user": out_users.astype(np.int32), "item": out_items.astype(np.int32)})
    ucount = final_ucount[user_order].astype(np.int32)
    icount = final_icount[item_order].astype(np.int32)

    kept_user_ids = user_ids[user_order]
    kept_item_ids = item_ids[item_order]
    users_df = pd.DataFrame(
        {
            "user": np.arange(len(ucount), dtype=np.int32),
            "original_id": kept_user_ids.astype(str).to_numpy(dtype=object),
            "n_interactions": ucount,
        }
    )
    items_df = pd.DataFrame(
        {
            "item": np.arange(len(icount), dtype=np.int32),
            "original_id": kept_item_ids.astype(str).to_numpy(dtype=object),
            "n_interactions": icount,
        }
    )
    for target, meta, ids in ((users_df, raw.users, kept_user_ids), (items_df, raw.items, kept_item_ids)):
        aligned = _meta_for(meta, ids)
        if aligned is not None:
            for column in aligned.columns:
                target[column] = aligned[column].to_numpy()

    n_users, n_items, n_pairs = len(users_df), len(items_df), len(interactions)
    below_min_after = int((ucount < min_user_interactions).sum())
    card = {
        "name": name,
        "source": raw.source,
        "counts": {
            "users": n_users,
            "items": n_items,
            "interactions": n_pairs,
            "density": n_pairs / (n_users * n_items),
        },
        "per_user": _describe(ucount),
        "per_item": _describe(icount),
        "item_popularity_gini": gini(icount),
        "index_order": index_order,
        "filter": {
            "min_user_interactions": min_user_interactions,
            "min_item_interactions": min_item_interactions,
            "iterate": iterate,
            "passes": passes,
        },
        "raw": dict(raw.stats),
        "dropped": {
            "duplicate_pairs": int(n_positive - n_unique),
            "users_below_min_user_interactions": dropped_users,
            "pairs_of_dropped_users": dropped_user_pairs,
            "items_below_min_item_interactions": dropped_items,
            "pairs_of_dropped_items": dropped_item_pairs,
            "users_left_without_interactions": emptied_users,
        },
        "before_filter": {"users": n_u, "items": n_i, "unique_pairs": n_unique, "positive_rows": n_positive},
        "users_below_min_after_filter": below_min_after,
    }
    log.info(
        "%s: %d users x %d items, %d interactions (density %.4g) after filtering",
        name,
        n_users,
        n_items,
        n_pairs,
        card["counts"]["density"],
    )
    return Prepared(interactions=interactions, users=users_df, items=items_df, card=card)


_INDEX_ORDER_TEXT = {
    "sorted": "users and items numbered in the order of their sorted original ids",
    "appearance": "users and items numbered as the research code does (order of first appearance "
    "in the pairs sorted by id text)",
}


def card_markdown(card: dict[str, Any]) -> str:
    """Human-readable dataset card."""
    c, pu, pi, f, d = card["counts"], card["per_user"], card["per_item"], card["filter"], card["dropped"]
    lines = [
        f"# Dataset card: {card['name']} ({card['source']})",
        "",
        "| | value |",
        "|---|---|",
        f"| users | {c['users']:,} |",
        f"| items | {c['items']:,} |",
        f"| interactions | {c['interactions']:,} |",
        f"| density | {c['density']:.6f} |",
        f"| interactions per user (min / mean / median / max) | {pu['min']} / {pu['mean']:.2f} / {pu['median']:.1f} / {pu['max']} |",
        f"| interactions per item (min / mean / median / max) | {pi['min']} / {pi['mean']:.2f} / {pi['median']:.1f} / {pi['max']} |",
        f"| Gini of item popularity | {card['item_popularity_gini']:.4f} |",
        "",
        "## Raw data",
        "",
    ]
    for key, value in card["raw"].items():
        if key == "malformed_examples":
            lines += [
                f"  - line {e['line']}: {e['fields']} fields instead of {e['expected']}: `{e['text'][:80]}`"
                for e in value
            ]
        else:
            lines.append(f"- {key.replace('_', ' ')}: {value}")
    b = card["before_filter"]
    lines += [
        "",
        "## What was dropped and why",
        "",
        f"- duplicate (user, item) rows collapsed to one: {d['duplicate_pairs']:,}",
        f"- before filtering: {b['users']:,} users, {b['items']:,} items, {b['unique_pairs']:,} unique pairs",
        f"- users with fewer than {f['min_user_interactions']} interactions: {d['users_below_min_user_interactions']:,}"
        f" (their {d['pairs_of_dropped_users']:,} interactions)",
        f"- items with fewer than {f['min_item_interactions']} interactions (after the user filter): "
        f"{d['items_below_min_item_interactions']:,} (their {d['pairs_of_dropped_items']:,} interactions)",
        f"- users left without interactions: {d['users_left_without_interactions']:,}",
        f"- filter passes: {f['passes']} ({'until stable' if f['iterate'] else 'single pass, as the research code'});"
        f" users now below the user minimum: {card['users_below_min_after_filter']:,}",
        f"- indices: {_INDEX_ORDER_TEXT[card.get('index_order', 'sorted')]}",
        "",
    ]
    return "\n".join(lines)


def write_prepared(prepared: Prepared, out_dir: str | os.PathLike) -> None:
    """Write the five data files (each atomically) into ``out_dir``."""
    out = Path(out_dir)
    write_parquet(prepared.interactions, out / "interactions.parquet")
    write_parquet(prepared.users, out / "users.parquet")
    write_parquet(prepared.items, out / "items.parquet")
    write_json(prepared.card, out / "card.json")
    write_text(card_markdown(prepared.card), out / "card.md")


def prepare_dataset(
    name: str,
    spec: dict[str, Any],
    raw_path: str | os.PathLike | None,
    out_dir: str | os.PathLike,
) -> dict[str, Any]:
    """Parse the dataset ``spec`` (one entry of ``config['datasets']``) from ``raw_path``, prepare
    it and write everything to ``out_dir``; returns the card."""
    from sagea.data.sources import load_raw

    raw = load_raw(name, spec, raw_path)
    min_user, min_item, iterate = resolve_filter(spec["source"], spec.get("filter"))
    prepared = prepare_interactions(
        raw, min_user, min_item, iterate, name=name, index_order=spec.get("index_order", "sorted")
    )
    write_prepared(prepared, out_dir)
    return prepared.card
