"""What a parser hands to the preparation: :class:`RawData`, the :class:`DataError` every reader
raises on bad input, and :func:`sorted_unique` for int64 pair keys (the bottom of ``sagea.data``:
it imports nothing from the package)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


class DataError(ValueError):
    """Bad input data or configuration; the message says where and what to do."""


@dataclass
class RawData:
    """What a parser returns: positive (user, item) rows plus optional metadata and statistics.

    ``interactions`` has columns ``user`` and ``item`` (ints or strings: the original ids);
    duplicates allowed. ``items`` / ``users`` metadata frames have a column ``original_id`` (same
    dtype as the matching interaction column) and any extra columns to carry into the outputs.
    ``stats`` counts what the parser dropped (``rows_read``, ``malformed_lines``, ...).
    """

    source: str
    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    stats: dict[str, Any] = field(default_factory=dict)


def sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values by sort + neighbour compare (much faster than the hash-based
    ``np.unique`` on tens of millions of int64 keys)."""
    keys = np.sort(keys)
    if len(keys) == 0:
        return keys
    keep = np.empty(len(keys), dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]
