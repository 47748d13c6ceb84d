"""LastFM-1K parser: ``userid-timestamp-artid-artname-traid-traname.tsv`` (tab, no header, no quoting).

User = column 1, item = artist MusicBrainz id (column 3); every (user, artist) pair is positive
(docs/method.md §1). The file has a few damaged lines: any line without exactly six tab-separated
fields is skipped, counted and reported in the card (line numbers of the first ones included),
never hard-coded. Rows without an artist id cannot be used and are counted separately.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from sagea.data.raw import RawData
from sagea.data.readers import dictionary_codes, empty_mask, find_file, read_delimited

FILE_NAME = "userid-timestamp-artid-artname-traid-traname.tsv"
COLUMNS = ["user", "timestamp", "item", "artist", "track_id", "track"]


def read(path: str | os.PathLike) -> RawData:
    """Parse the LastFM-1K listening log (folder or the .tsv itself)."""
    tsv = find_file(path, [FILE_NAME, "*.tsv"], "LastFM-1K listening log")
    table, bad = read_delimited(
        tsv, COLUMNS, "\t", header=False, include=["user", "item", "artist"], bad_lines="skip"
    )
    users = dictionary_codes(table.column("user"))
    items = dictionary_codes(table.column("item"))
    artists = dictionary_codes(table.column("artist"))
    del table
    usable = ~(empty_mask(users) | empty_mask(items))
    interactions = pd.DataFrame({"user": users[usable], "item": items[usable]})
    # artist name of each artist id: first row of each id (vectorised over codes)
    item_codes = items.codes[usable]
    first = np.unique(item_codes, return_index=True)[1]
    meta = pd.DataFrame(
        {
            "original_id": np.asarray(items.categories)[item_codes[first]],
            "artist": np.asarray(artists.categories)[artists.codes[usable][first]],
        }
    )
    stats = {
        "file": str(tsv),
        "rows_read": int(len(users) + bad.count),
        **bad.as_stats(),
        "rows_without_user_or_artist_id": int((~usable).sum()),
    }
    return RawData("lastfm1k", interactions, items=meta, stats=stats)
