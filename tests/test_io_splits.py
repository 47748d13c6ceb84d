"""Atomic writers, embedding I/O and the seeded evaluation splits."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sagea import io
from sagea.data import splits


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out" / "table.parquet"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []
    io.write_parquet(pd.DataFrame({"a": [1, 2]}), target)
    assert io.read_parquet(target)["a"].tolist() == [1, 2]
    assert [p.name for p in target.parent.iterdir()] == ["table.parquet"]


def test_json_handles_numpy_and_nan(tmp_path):
    path = tmp_path / "m.json"
    io.write_json({"x": np.float32(0.5), "n": np.int64(3), "bad": float("nan"), "v": np.arange(2)}, path)
    assert io.read_json(path) == {"x": 0.5, "n": 3, "bad": None, "v": [0, 1]}


def test_embeddings_round_trip(tmp_path):
    m = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    io.write_embeddings(m, "user", tmp_path / "e.parquet")
    np.testing.assert_array_equal(io.read_embeddings(tmp_path / "e.parquet"), m)
    frame = pd.read_parquet(tmp_path / "e.parquet")
    assert frame.columns.tolist() == ["user", "embedding"]


def test_user_split_counts_and_partition():
    rng = np.random.default_rng(1)
    dense = (rng.random((50, 40)) < 0.3).astype(np.float32)
    dense[0] = 0
    dense[0, :3] = 1  # 3 items -> ceil(0.6) = 1 target
    rows = sp.csr_matrix(dense)
    inputs, targets = splits.user_input_target_split(rows, 0.2, seed=5)
    n = dense.sum(axis=1)
    assert np.array_equal(np.asarray(targets.sum(axis=1)).ravel(), [math.ceil(0.2 * v) for v in n])
    assert (inputs.multiply(targets)).nnz == 0
    np.testing.assert_array_equal((inputs + targets).toarray(), dense)
    again = splits.user_input_target_split(rows, 0.2, seed=5)[1]
    assert (again != targets).nnz == 0
    other = splits.user_input_target_split(rows, 0.2, seed=6)[1]
    assert (other != targets).nnz > 0


def test_group_masks_depend_on_member_set_and_seed():
    groups = np.array([[3, 1, 2], [2, 3, 1], [4, 5, 6]])
    masks = splits.group_target_masks(groups, 100, 0.5, seed=1)
    assert masks.sum(axis=1).tolist() == [50, 50, 50]
    assert np.array_equal(masks[0], masks[1])  # same members, any order
    assert not np.array_equal(masks[0], masks[2])
    shared = splits.group_target_masks(groups, 100, 0.5, seed=1, shared_mask=True)
    assert (shared == shared[0]).all()


def _masks_one_group_at_a_time(groups, n_items, target_ratio, seed):
    """The original per-group loop: one generator seeded by (seed, sorted members) per group."""
    n_target = int(round(target_ratio * n_items))
    masks = np.zeros((len(groups), n_items), dtype=bool)
    for g, members in enumerate(groups):
        rng = np.random.default_rng([seed, *sorted(int(m) for m in members)])
        masks[g, rng.permutation(n_items)[:n_target]] = True
    return masks


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
@pytest.mark.parametrize(("n_items", "ratio"), [(97, 0.5), (40, 0.0), (40, 1.0), (1, 0.5), (300, 0.33)])
def test_group_masks_equal_the_per_group_loop(dtype, n_items, ratio):
    groups = np.random.default_rng(3).integers(0, 2**31 - 1, (25, 4)).astype(dtype)
    groups[5] = groups[4][::-1]  # same set, other order
    expected = _masks_one_group_at_a_time(groups, n_items, ratio, 9)
    np.testing.assert_array_equal(splits.group_target_masks(groups, n_items, ratio, 9), expected)
    np.testing.assert_array_equal(splits.group_target_masks(groups[:0], n_items, ratio, 9), expected[:0])


def test_group_split_by_hand():
    rows = sp.csr_matrix(np.array([[1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 1, 1]], dtype=np.float32))
    groups = np.array([[0, 1]])
    masks = np.array([[True, False, False, True]])
    inputs, targets = splits.group_split(rows, groups, masks)
    assert targets[0].astype(int).tolist() == [[1, 0, 0, 1], [1, 0, 0, 1]]
    assert inputs[0].astype(int).tolist() == [[0, 1, 0, 0], [0, 0, 1, 0]]
    assert splits.common_targets(targets)[0].astype(int).tolist() == [1, 0, 0, 1]
