"""The real ml-latest-small release through prepare and split, against an independent pandas computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sagea.data.matrix import load_interactions, load_split
from sagea.data.prepare import prepare_dataset
from sagea.data.splits import split_users


def expected_pairs(ratings: pd.DataFrame, min_user: int, min_item: int, iterate: bool) -> pd.DataFrame:
    pos = ratings.loc[ratings["rating"] >= 4.0, ["userId", "movieId"]].drop_duplicates()
    while True:
        n = len(pos)
        users = pos.groupby("userId")["movieId"].transform("size")
        pos = pos[users >= min_user]
        items = pos.groupby("movieId")["userId"].transform("size")
        pos = pos[items >= min_item]
        if not iterate or len(pos) == n:
            return pos.sort_values(["userId", "movieId"]).reset_index(drop=True)


@pytest.mark.parametrize("iterate", [False, True])
def test_ml_latest_small_prepare_and_split(ml_small, tmp_path, iterate):
    ratings = pd.read_csv(ml_small / "ratings.csv")
    expected = expected_pairs(ratings, 50, 20, iterate)
    spec = {
        "source": "movielens",
        "release": "ml-latest-small",
        "threshold": None,
        "filter": {"min_user_interactions": None, "min_item_interactions": None, "iterate": iterate},
    }
    card = prepare_dataset("ml-latest-small", spec, ml_small, tmp_path)
    assert card["raw"]["rows_read"] == len(ratings) == 100836
    assert card["counts"]["interactions"] == len(expected)
    assert card["counts"]["users"] == expected["userId"].nunique()
    assert card["counts"]["items"] == expected["movieId"].nunique()
    if not iterate:  # the single pass, worked out once by hand from the pandas computation above
        assert (card["counts"]["users"], card["counts"]["items"], card["counts"]["interactions"]) == (
            255,
            510,
            20487,
        )

    inter = pd.read_parquet(tmp_path / "interactions.parquet")
    users = pd.read_parquet(tmp_path / "users.parquet")
    items = pd.read_parquet(tmp_path / "items.parquet")
    got = pd.DataFrame(
        {
            "userId": users["original_id"].astype(int).to_numpy()[inter["user"]],
            "movieId": items["original_id"].astype(int).to_numpy()[inter["item"]],
        }
    )
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)
    assert (users["original_id"].astype(int).diff().dropna() > 0).all()  # indices follow sorted ids
    assert users["n_interactions"].tolist() == expected.groupby("userId").size().tolist()
    assert items.loc[items["original_id"] == "1", "title"].item() == "Toy Story (1995)"

    csr = load_interactions(tmp_path)
    assert csr.shape == (len(users), len(items)) and csr.nnz == len(expected)

    split = split_users(len(users), 0.1, 0.1, 42)
    split.to_parquet(tmp_path / "split.parquet")
    parts = load_split(tmp_path / "split.parquet")
    n = len(users)
    assert [len(parts[s]) for s in ("valid", "test")] == [int(np.floor(0.1 * n))] * 2
    assert len(parts["train"]) == n - 2 * int(np.floor(0.1 * n))
    assert len(np.intersect1d(parts["train"], parts["test"])) == 0
