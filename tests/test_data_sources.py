"""Every raw format parsed from small fixture files written in that format."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sagea.data import custom, echonest, lastfm, movielens
from sagea.data.prepare import prepare_dataset
from sagea.data.raw import DataError
from sagea.data.sources import load_raw


def pairs(raw) -> set[tuple[str, str]]:
    return {(str(u), str(i)) for u, i in raw.interactions.astype(str).itertuples(index=False)}


# ----------------------------------------------------------------------------- MovieLens
def write_ml_csv(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,10,4.0,1\n1,20,3.5,2\n2,10,5.0,3\n2,30,0.5,4\n3,20,4.5,5\n"
    )
    (folder / "movies.csv").write_text(
        'movieId,title,genres\n10,"Sabrina, the Movie (1995)",Comedy|Romance\n20,Heat (1995),Action\n30,X (2000),Drama\n'
    )


def test_movielens_csv_threshold_and_titles(tmp_path):
    write_ml_csv(tmp_path / "ml-latest-small")
    raw = movielens.read(tmp_path, release="ml-latest-small", threshold=4.0)
    assert pairs(raw) == {("1", "10"), ("2", "10"), ("3", "20")}
    assert raw.stats["rows_read"] == 5 and raw.stats["below_threshold"] == 2
    assert raw.items.set_index("original_id").loc[10, "title"] == "Sabrina, the Movie (1995)"
    card = prepare_dataset(
        "ml",
        {"source": "movielens", "filter": {"min_user_interactions": 0, "min_item_interactions": 0}},
        tmp_path,
        tmp_path / "out",
    )
    assert card["counts"]["interactions"] == 3
    items = pd.read_parquet(tmp_path / "out" / "items.parquet")
    assert items["original_id"].tolist() == ["10", "20"] and items["genres"].tolist() == [
        "Comedy|Romance",
        "Action",
    ]


def test_movielens_1m_dat_latin1(tmp_path):
    (tmp_path / "ratings.dat").write_text(
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
    )
    (tmp_path / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::Am\xe9lie: Le Fabuleux (2001)::Comedy|Romance\n".encode(
            "latin-1"
        )
    )
    raw = movielens.read(tmp_path, release="ml-1m", threshold=4.0)
    assert pairs(raw) == {("1", "1193"), ("2", "1193")}
    titles = raw.items.set_index("original_id")["title"]
    assert titles[661] == "Am\xe9lie: Le Fabuleux (2001)"  # ':' inside a title survives


def test_movielens_malformed_line_names_file_and_line(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,4.0,1\n1,20\n2,10,5.0,3\n")
    with pytest.raises(DataError, match=r"ratings\.csv: line 3 is malformed"):
        movielens.read(tmp_path)


def test_movielens_bad_value_and_missing_column(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,4.0,1\n1,20,good,2\n")
    with pytest.raises(DataError, match=r"rating.*data row 2.*'good'"):
        movielens.read(tmp_path)
    (tmp_path / "ratings.csv").write_text("user,movieId,rating\n1,10,4.0\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['userId'\]"):
        movielens.read(tmp_path)


def test_missing_ratings_file(tmp_path):
    with pytest.raises(DataError, match="ratings.csv or ratings.dat"):
        movielens.read(tmp_path)


# ----------------------------------------------------------------------------- LastFM-1K
LASTFM_ROWS = [
    "user_000001\t2009-05-04T23:08:57Z\tart-a\tDeep Dish\t\tFuck Me Im Famous",
    'user_000001\t2009-05-04T13:54:10Z\tart-b\tCeltic "Frost"\ttr-1\tA "quoted\' track',
    "user_000001\t2009-05-04T13:52:04Z\tart-a\tDeep Dish\ttr-2\tx",
    "user_000002\t2009-05-03T15:48:25Z\tart-b\tCeltic Frost",  # damaged: 4 fields
    "user_000002\t2009-05-03T15:37:56Z\t\tUnknown\ttr-3\ty",  # no artist id
    "user_000002\t2009-05-03T15:37:56Z\tart-c\tC\ttr-4\ty\textra",  # damaged: 7 fields
    "user_000003\t2009-05-03T15:37:56Z\tart-c\tC\ttr-4\ty",
]


def test_lastfm_damaged_lines_counted_and_reported(tmp_path):
    (tmp_path / lastfm.FILE_NAME).write_text("\n".join(LASTFM_ROWS) + "\n")
    raw = lastfm.read(tmp_path)
    assert pairs(raw) == {("user_000001", "art-a"), ("user_000001", "art-b"), ("user_000003", "art-c")}
    assert raw.stats["malformed_lines"] == 2
    assert [e["line"] for e in raw.stats["malformed_examples"]] == [4, 6]
    assert raw.stats["rows_without_user_or_artist_id"] == 1
    assert raw.stats["rows_read"] == 7
    artists = raw.items.set_index("original_id")["artist"]
    assert artists["art-b"] == 'Celtic "Frost"'
    card = prepare_dataset(
        "lfm",
        {"source": "lastfm1k", "filter": {"min_user_interactions": 1, "min_item_interactions": 1}},
        tmp_path,
        tmp_path / "out",
    )
    assert card["raw"]["malformed_lines"] == 2
    assert "malformed lines: 2" in (tmp_path / "out" / "card.md").read_text()


# ----------------------------------------------------------------------------- Echo Nest
def test_echonest_triplets(tmp_path):
    (tmp_path / "train_triplets.txt").write_text("u1\tSOA\t1\nu1\tSOB\t5\nu2\tSOA\t2\nu1\tSOA\t3\n")
    raw = echonest.read(tmp_path)
    assert pairs(raw) == {("u1", "SOA"), ("u1", "SOB"), ("u2", "SOA")}
    assert len(raw.interactions) == 4  # the duplicate collapses in prepare
    assert pairs(echonest.read(tmp_path, threshold=2)) == {("u1", "SOB"), ("u2", "SOA"), ("u1", "SOA")}
    assert len(echonest.read(tmp_path, threshold=2).interactions) == 3
    (tmp_path / "train_triplets.txt").write_text("u1\tSOA\t1\nu1\tSOB\n")
    with pytest.raises(DataError, match="line 2 is malformed"):
        echonest.read(tmp_path)


# ----------------------------------------------------------------------------- custom
def test_custom_csv_value_threshold(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text('who,what,score\nalice,x,5\nalice,y,1\nbob,"x",3\n')
    opts = {"format": "csv", "user_col": "who", "item_col": "what", "value_col": "score"}
    assert pairs(custom.read(f, opts, threshold=3)) == {("alice", "x"), ("bob", "x")}
    assert pairs(custom.read(f, opts)) == {("alice", "x"), ("alice", "y"), ("bob", "x")}  # null: value > 0
    with pytest.raises(DataError, match=r"missing column 'nope'.*datasets\.c\.custom\.user_col"):
        custom.read(f, {**opts, "user_col": "nope"}, name="c")


def test_custom_tsv_without_header_by_position(tmp_path):
    f = tmp_path / "log.tsv"
    f.write_text("1\tx\t0\n2\ty\t1\n2\tx\t2\n")
    opts = {"format": "tsv", "header": False, "user_col": 0, "item_col": 1, "value_col": 2}
    assert pairs(custom.read(f, opts)) == {("2", "y"), ("2", "x")}
    with pytest.raises(DataError, match="must be a 0-based column position"):
        custom.read(f, {**opts, "user_col": "user"})


def test_custom_parquet(tmp_path):
    f = tmp_path / "log.parquet"
    pd.DataFrame({"u": [1, 1, 2], "i": [7, 8, 7]}).to_parquet(f)
    assert pairs(custom.read(f, {"format": "parquet", "user_col": "u", "item_col": "i"})) == {
        ("1", "7"),
        ("1", "8"),
        ("2", "7"),
    }


def test_custom_jsonl_event_weights_summed_per_pair(tmp_path):
    # seed notebook 004: like 1, play 1, skip 0 (and unknown events 0), summed per (user, track)
    events = [
        ("u1", "t1", "play"),
        ("u1", "t1", "skip"),
        ("u1", "t2", "skip"),
        ("u2", "t1", "like"),
        ("u2", "t1", "play"),
        ("u2", "t3", "advert"),
        ("u3", "t2", "play"),
    ]
    f = tmp_path / "sessions.jsonl"
    f.write_text(
        "".join(json.dumps({"user_id": u, "track_id": t, "event_type": e}) + "\n" for u, t, e in events)
    )
    opts = {
        "format": "jsonl",
        "user_col": "user_id",
        "item_col": "track_id",
        "event_col": "event_type",
        "event_weights": {"like": 1, "play": 1, "skip": 0},
    }
    raw = custom.read(f, opts)
    assert pairs(raw) == {("u1", "t1"), ("u2", "t1"), ("u3", "t2")}
    assert raw.stats["unknown_events"] == 1 and raw.stats["pairs"] == 5
    # threshold on the summed score: only u2/t1 has 2
    assert pairs(custom.read(f, opts, threshold=2)) == {("u2", "t1")}
    f.write_text(f.read_text() + "{not json}\n")
    with pytest.raises(DataError, match="line 8 is not a JSON object"):
        custom.read(f, opts)


def test_dispatch_and_missing_raw(tmp_path):
    write_ml_csv(tmp_path)
    assert load_raw("m", {"source": "movielens"}, tmp_path).source == "movielens"
    with pytest.raises(DataError, match="does not exist"):
        load_raw("m", {"source": "movielens"}, tmp_path / "absent")
    syn = load_raw(
        "s",
        {
            "source": "synthetic",
            "synthetic": {"n_users": 50, "n_items": 40, "n_interactions": 500, "n_clusters": 4},
        },
        None,
    )
    assert len(syn.interactions) == 500 and set(syn.users.columns) >= {"clusters", "main_cluster"}


def test_archive_given_as_path_is_explained(tmp_path):
    (tmp_path / "ml-32m.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match="is an archive; extract it"):
        movielens.read(tmp_path / "ml-32m.zip")
