"""Research mode, data side: index order, user split, single-user targets and group mask equal the
research code's streams bit for bit, on real MovieLens ratings.

The reference below is written the way the research code works (plain pandas/Python in place of
polars, NumPy's global legacy RNG): ids cast to text, duplicates dropped, pairs sorted by (user
text, item text), one filter pass, users and items numbered by first appearance; then
``np.random.seed`` + ``np.random.permutation`` for the user split, per-row
``np.random.permutation`` of a True/False array for the targets, ``np.random.random(n) < 0.5``
for the group mask. Our code must give the same indices, rows, targets and mask; the defaults
must stay what they were (checked against a straightforward version of our own protocol).
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
import yaml
from snakemake.utils import validate

from sagea import plan
from sagea.data.matrix import load_interactions, load_split, pool_users
from sagea.data.prepare import prepare_dataset, prepare_interactions
from sagea.data.raw import DataError, RawData
from sagea.data.splits import group_target_masks, split_users, user_input_target_split
from sagea.evaluation.sae_metrics import reconstruction_metrics
from sagea.evaluation.single_user import evaluate_scorer, single_user_split
from sagea.groups.filters import count_common_targets
from sagea.io import read_json, write_parquet
from sagea.models.elsa import ELSA
from sagea.recommenders.user_baselines import pop_scorer
from sagea.stages.elsa import single_user_baselines, train_elsa
from sagea.stages.sae import build_model

MIN_USER, MIN_ITEM, SEED = 20, 5, 42
N_LINES = 15000  # ratings of the first ~100 users of ml-latest-small


# ----------------------------------------------------------------------------- the reference
@pytest.fixture(autouse=True)
def keep_global_rng():
    """The reference uses NumPy's global RNG, as the research code; leave it as found."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


def research_prepare(ratings: pd.DataFrame, min_user: int, min_item: int):
    """Index maps ``{id text: index}`` and the CSR of the research loader (MovieLens: rating >= 4)."""
    pairs = ratings.loc[ratings["rating"] >= 4.0, ["userId", "movieId"]].astype(str).drop_duplicates()
    pairs = pairs.sort_values(["userId", "movieId"])  # text order, as the polars String sort
    pairs = pairs[pairs["userId"].map(pairs["userId"].value_counts()) >= min_user]
    pairs = pairs[pairs["movieId"].map(pairs["movieId"].value_counts()) >= min_item]
    user_index: dict[str, int] = {}
    item_index: dict[str, int] = {}
    rows, cols = [], []
    for user, item in zip(pairs["userId"], pairs["movieId"]):  # categorical codes: first appearance
        rows.append(user_index.setdefault(user, len(user_index)))
        cols.append(item_index.setdefault(item, len(item_index)))
    csr = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(user_index), len(item_index))
    )
    return user_index, item_index, csr


def research_split(n_users: int, seed: int = SEED, val_ratio: float = 0.1, test_ratio: float = 0.1):
    np.random.seed(seed)
    p = np.random.permutation(n_users)
    val_count, test_count = int(n_users * val_ratio), int(n_users * test_ratio)
    return {"train": p[val_count + test_count :], "valid": p[:val_count], "test": p[val_count : val_count + test_count]}


def research_targets(csr: sp.csr_matrix, ratio: float = 0.2, seed: int = SEED):
    np.random.seed(seed)
    mask = np.concatenate(
        [
            np.random.permutation(np.array([True] * int(np.ceil(n * ratio)) + [False] * int(n - np.ceil(n * ratio))))
            for n in np.diff(csr.indptr)
        ]
    )
    inputs, targets = csr.copy(), csr.copy()
    inputs.data *= ~mask
    targets.data *= mask
    inputs.eliminate_zeros()
    targets.eliminate_zeros()
    return inputs, targets


def research_group_mask(n_items: int, ratio: float = 0.5, seed: int = SEED) -> np.ndarray:
    np.random.seed(seed)
    return np.random.random(n_items) < ratio


# ----------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def ratings_file(ml_small, tmp_path_factory) -> Path:
    """The first lines of ml-latest-small with rows shuffled and a few repeated (so neither the raw
    row order nor duplicates can leak into the indices)."""
    ratings = pd.read_csv(ml_small / "ratings.csv", nrows=N_LINES)
    rng = np.random.default_rng(0)
    ratings = pd.concat([ratings, ratings.iloc[rng.choice(len(ratings), 50)]]).iloc[rng.permutation(len(ratings) + 50)]
    path = tmp_path_factory.mktemp("ml") / "ratings.csv"
    ratings.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def reference(ratings_file):
    return research_prepare(pd.read_csv(ratings_file), MIN_USER, MIN_ITEM)


def spec(**extra) -> dict:
    flt = {"min_user_interactions": MIN_USER, "min_item_interactions": MIN_ITEM}
    return {"source": "movielens", "release": "ml-latest-small", "filter": flt, **extra}


@pytest.fixture(scope="module")
def research_data(ratings_file, tmp_path_factory) -> Path:
    """Our prepare + split with the research switches, written as the workflow writes them."""
    out = tmp_path_factory.mktemp("research")
    prepare_dataset("ml", spec(index_order="appearance"), ratings_file, out)
    n_users = len(pd.read_parquet(out / "users.parquet"))
    write_parquet(split_users(n_users, 0.1, 0.1, SEED, method="research"), out / "split.parquet")
    return out


def test_index_order_equals_the_research_categorical_codes(research_data, reference):
    user_index, item_index, csr = reference
    users = pd.read_parquet(research_data / "users.parquet")
    items = pd.read_parquet(research_data / "items.parquet")
    assert users["original_id"].tolist() == list(user_index)
    assert items["original_id"].tolist() == list(item_index)
    # the research order is neither numeric nor the raw order: the check can fail
    assert users["original_id"].astype(int).tolist() != sorted(users["original_id"].astype(int))
    assert items["original_id"].astype(int).tolist() != sorted(items["original_id"].astype(int))
    matrix = load_interactions(research_data)
    assert matrix.shape == csr.shape and (matrix != csr).nnz == 0
    inter = pd.read_parquet(research_data / "interactions.parquet")
    assert inter.equals(inter.sort_values(["user", "item"]).reset_index(drop=True))  # contract kept
    assert users["n_interactions"].tolist() == np.diff(csr.indptr).tolist()
    assert items["n_interactions"].tolist() == np.asarray(csr.sum(axis=0)).ravel().astype(int).tolist()
    assert read_json(research_data / "card.json")["index_order"] == "appearance"


def test_user_split_keeps_the_research_permuted_rows(research_data, reference):
    expected = research_split(reference[2].shape[0])
    got = load_split(research_data / "split.parquet")
    for name in ("train", "valid", "test"):
        np.testing.assert_array_equal(got[name], expected[name])  # same users, same row order
    assert np.array_equal(pool_users(got, "test"), np.sort(expected["test"]))  # pools are sets


@pytest.mark.parametrize("part", ["valid", "test"])
def test_single_user_targets_equal_the_research_stream(research_data, reference, part):
    csr = reference[2]
    ref_inputs, ref_targets = research_targets(csr[research_split(csr.shape[0])[part]])
    matrix = load_interactions(research_data)
    inputs, targets = single_user_split(matrix, load_split(research_data / "split.parquet")[part], 0.2, SEED, "research")
    assert (inputs != ref_inputs).nnz == 0 and (targets != ref_targets).nnz == 0
    assert targets.nnz == ref_targets.nnz > 0
    ours = single_user_split(matrix, load_split(research_data / "split.parquet")[part], 0.2, SEED)[1]
    assert (ours != targets).nnz > 0  # the default stream is another one


def test_target_count_is_the_float_ceil_of_the_research_code():
    """50 interactions, ratio 0.14: 50 * 0.14 = 7.000000000000001, so the research code holds out
    8 (ours, with its tolerance, 7)."""
    rows = sp.csr_matrix(np.ones((1, 50), dtype=np.float32))
    assert user_input_target_split(rows, 0.14, 1, "research")[1].nnz == 8
    assert user_input_target_split(rows, 0.14, 1)[1].nnz == 7
    assert research_targets(rows, 0.14, 1)[1].nnz == 8


def test_shared_group_mask_equals_the_research_stream(reference):
    n_items = reference[2].shape[1]
    groups = np.array([[0, 1, 2], [5, 3, 4], [9, 8, 7]])
    masks = group_target_masks(groups, n_items, 0.5, SEED, shared_mask=True)
    expected = research_group_mask(n_items)
    assert masks.shape == (3, n_items) and (masks == expected).all()
    assert group_target_masks(groups, 1001, 0.5, 3, shared_mask=True)[0].sum() != 500  # random count
    np.testing.assert_array_equal(group_target_masks(groups, 1001, 0.5, 3, True)[0], research_group_mask(1001, 0.5, 3))


def test_group_sampling_filter_counts_with_the_research_mask(research_data, reference):
    """The sampler's common held-out items under the shared mask = the research code's count:
    member rows with the non-target items zeroed, items held by every member."""
    csr = reference[2]
    groups = np.random.default_rng(3).choice(csr.shape[0], size=(40, 3))
    dense = csr.toarray()
    expected = []
    for group in groups:
        targets = dense[group].copy()
        targets[:, ~research_group_mask(csr.shape[1])] = 0
        expected.append(int((targets.sum(axis=0) == len(group)).sum()))
    got = count_common_targets(load_interactions(research_data), groups, 0.5, SEED, True, max_bytes=20_000)
    assert got.tolist() == expected and max(expected) > 0


def test_global_rng_is_left_alone(research_data):
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    split_users(50, method="research")
    user_input_target_split(load_interactions(research_data)[:5], 0.2, 7, "research")
    group_target_masks(np.array([[0, 1]]), 30, 0.5, 7, shared_mask=True)
    assert np.array_equal(np.random.get_state()[1], before)


# ----------------------------------------------------------------------------- defaults unchanged
def test_defaults_are_our_protocol(ratings_file, tmp_path):
    """Without switches: ids in sorted order, Generator split with sorted rows, key-ranked targets."""
    prepare_dataset("ml", spec(), ratings_file, tmp_path)
    users = pd.read_parquet(tmp_path / "users.parquet")
    items = pd.read_parquet(tmp_path / "items.parquet")
    assert users["original_id"].astype(int).is_monotonic_increasing
    assert items["original_id"].astype(int).is_monotonic_increasing
    assert read_json(tmp_path / "card.json")["index_order"] == "sorted"
    n = len(users)
    split = split_users(n, 0.1, 0.1, SEED)
    order = np.random.default_rng(SEED).permutation(n)
    n_valid = n_test = math.floor(0.1 * n)
    expected = {"valid": np.sort(order[:n_valid]), "test": np.sort(order[n_valid : n_valid + n_test]),
                "train": np.sort(order[n_valid + n_test :])}  # fmt: skip
    write_parquet(split, tmp_path / "split.parquet")
    got = load_split(tmp_path / "split.parquet")
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
        assert split.loc[got[name], "position"].tolist() == list(range(len(got[name])))
    # a split file from before the position column: increasing user order
    write_parquet(split[["user", "split"]], tmp_path / "old.parquet")
    assert all(np.array_equal(load_split(tmp_path / "old.parquet")[k], expected[k]) for k in expected)
    rows = load_interactions(tmp_path)[got["valid"]]
    keys = np.random.default_rng(SEED).random(rows.nnz)
    expected_targets = np.zeros((rows.shape[0], rows.shape[1]), dtype=bool)
    for r in range(rows.shape[0]):
        lo, hi = rows.indptr[r], rows.indptr[r + 1]
        n_t = math.ceil(0.2 * (hi - lo) - 1e-9)
        expected_targets[r, rows.indices[lo:hi][np.argsort(keys[lo:hi])[:n_t]]] = True
    targets = single_user_split(load_interactions(tmp_path), got["valid"], 0.2, SEED)[1]
    np.testing.assert_array_equal(targets.toarray() > 0, expected_targets)


def test_bad_switch_values_name_the_key():
    with pytest.raises(ValueError, match=r"split\.method"):
        split_users(10, method="legacy")
    with pytest.raises(ValueError, match=r"split\.target_method"):
        user_input_target_split(sp.csr_matrix(np.ones((1, 3))), method="legacy")
    raw = RawData("custom", pd.DataFrame({"user": [1, 1], "item": ["a", "b"]}))
    with pytest.raises(DataError, match=r"datasets\.x\.index_order"):
        prepare_interactions(raw, 0, 0, name="x", index_order="legacy")
    mixed = RawData("custom", pd.DataFrame({"user": [1, "1"], "item": ["a", "b"]}))
    with pytest.raises(DataError, match="same text '1'"):
        prepare_interactions(mixed, 0, 0, name="x", index_order="appearance")


def test_research_mode_implies_the_data_switches(repo):
    cfg = {"research_mode": True, "datasets": {"a": {"source": "synthetic"}, "b": {"source": "synthetic",
           "split": {"target_method": "ours"}}}}  # fmt: skip
    plan.apply_research_mode(cfg)
    assert cfg["datasets"]["a"]["index_order"] == "appearance"
    assert cfg["datasets"]["a"]["split"] == {"method": "research", "target_method": "research"}
    assert cfg["datasets"]["b"]["split"] == {"method": "research", "target_method": "ours"}
    assert cfg["groups"]["split"]["shared_mask"] is True
    validate(cfg, str(repo / "workflow" / "schemas" / "config.schema.yaml"))  # the schema knows the switches
    assert cfg["datasets"]["b"]["index_order"] == "appearance" and cfg["datasets"]["a"]["split"]["seed"] == 42
    defaults = {"datasets": {"a": {"source": "synthetic", "index_order": "sorted",
                "split": {"valid_fraction": 0.1, "test_fraction": 0.1, "seed": 1, "method": "ours", "target_method": "ours"}}}}  # fmt: skip
    # at their defaults the switches stay out of rule params (older results need no rerun)
    assert "index_order" not in plan.prepare_params(defaults, "a")
    assert plan.split_params(defaults, "a") == {"valid_fraction": 0.1, "test_fraction": 0.1, "seed": 1}
    assert "target_method" not in plan.split_settings(defaults, "a")
    assert plan.split_params(cfg, "a")["method"] == "research"
    assert plan.split_settings(cfg, "a")["target_method"] == "research"


# ----------------------------------------------------------------------------- consumers
def test_elsa_and_baselines_stages_use_the_research_targets(research_data, reference, tmp_path):
    """The stages draw the targets of the split's rows in its order: their metrics equal the
    metrics on the reference inputs/targets."""
    csr = reference[2]
    parts = research_split(csr.shape[0])
    ref = {part: research_targets(csr[parts[part]]) for part in ("valid", "test")}
    split_path = research_data / "split.parquet"
    out = single_user_baselines(research_data, split_path, tmp_path / "b.json", k=5, split_seed=SEED,
                                target_method="research", device="cpu")  # fmt: skip
    pop = pop_scorer(csr[parts["train"]])
    for part in ("valid", "test"):
        assert out["POP"][part] == pytest.approx(evaluate_scorer(pop, *ref[part], k=5), abs=1e-12)
    hp = {"factors": 8, "lr": 0.01, "beta1": 0.9, "beta2": 0.99, "batch_size": 32, "epochs": 1, "patience": 1, "seed": 1}
    metrics = train_elsa(research_data, split_path, tmp_path / "m.pt", tmp_path / "m.json", tmp_path / "h.parquet", hp,
                         k=5, split_seed=SEED, target_method="research", device="cpu")  # fmt: skip
    model = ELSA.load(tmp_path / "m.pt")
    expected = evaluate_scorer(model.scores, *ref["test"], k=5)
    assert metrics["test"] == pytest.approx(expected, abs=1e-12)
    # drawn over the same users in increasing order, the targets differ: the row order matters
    in_user_order = research_targets(csr[np.sort(parts["test"])])[1]
    assert (in_user_order != ref["test"][1][np.argsort(parts["test"])]).nnz > 0


def test_sae_metrics_use_the_research_targets(research_data, reference):
    csr = reference[2]
    rows = csr[research_split(csr.shape[0])["valid"]]
    elsa = ELSA(csr.shape[1], 8, seed=0)
    hp = {"variant": "topk", "width": 16, "k": 4, "reconstruction_loss": "l2", "l1_coef": 3e-4, "aux_coef": 1 / 32,
          "contrastive_coef": 0.0, "normalize": False, "dead_after": 5, "aux_k": 8, "seed": 0}  # fmt: skip
    sae = build_model(hp, 8)
    got = reconstruction_metrics(sae, elsa, rows, seed=SEED, target_method="research", k=5)
    with torch.no_grad():
        expected = evaluate_scorer(elsa.scores, *research_targets(rows), k=5)
    assert got["NDCG5_base"] == pytest.approx(expected["NDCG5"], abs=1e-12)
    assert got["R5_base"] == pytest.approx(expected["R5"], abs=1e-12)


# ----------------------------------------------------------------------------- the workflow
@pytest.mark.workflow
def test_research_mode_through_the_data_and_training_rules(python, repo, ratings_file, reference, tmp_path):
    """`--config research_mode=True`: prepare, split, ELSA, SAE and the single-user baselines all
    follow the research streams."""
    cfg = {
        "datasets": {"ml": spec(path=str(ratings_file))},
        "mlflow": {"enabled": False},
        "device": "cpu",
        "elsa": {"factors": 8, "epochs": 1, "batch_size": 32},
        "sae": {"base": {"width": 16, "k": 4, "epochs": 2, "validate_every": 1, "patience": 1, "batch_size": 32}},
        "evaluation": {"k": 5},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    run = "f8-s42"
    sae = "topk-h16-k4-l2"
    targets = [f"results/ml/data/{name}" for name in plan.DATA_FILES] + ["results/ml/s42/split.parquet"]
    targets += ["results/ml/s42/baselines/metrics.json", f"results/ml/s42/sae/{run}/{sae}/metrics.json"]
    cmd = [python, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(tmp_path / "w"), "--cores", "2",
           *targets, "--config", "research_mode=True", "--configfile", str(tmp_path / "cfg.yaml")]  # fmt: skip
    out = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    data = tmp_path / "w" / "results" / "ml" / "data"
    user_index, item_index, csr = reference
    assert pd.read_parquet(data / "users.parquet")["original_id"].tolist() == list(user_index)
    assert pd.read_parquet(data / "items.parquet")["original_id"].tolist() == list(item_index)
    parts = research_split(csr.shape[0])
    split = load_split(data.parent / "s42" / "split.parquet")
    assert all(np.array_equal(split[name], parts[name]) for name in parts)
    ref = research_targets(csr[parts["test"]])
    baselines = json.loads((tmp_path / "w" / "results" / "ml" / "s42" / "baselines" / "metrics.json").read_text())
    assert baselines["POP"]["test"] == pytest.approx(evaluate_scorer(pop_scorer(csr[parts["train"]]), *ref, k=5))
    model = ELSA.load(tmp_path / "w" / "results" / "ml" / "s42" / "elsa" / run / "model.pt")
    with torch.no_grad():
        expected = evaluate_scorer(model.scores, *ref, k=5)
    sae_metrics = json.loads((tmp_path / "w" / "results" / "ml" / "s42" / "sae" / run / sae / "metrics.json").read_text())
    assert sae_metrics["test"]["NDCG20_base"] == pytest.approx(
        evaluate_scorer(model.scores, *ref, k=20)["NDCG20"], abs=1e-9
    )
    elsa_metrics = json.loads((tmp_path / "w" / "results" / "ml" / "s42" / "elsa" / run / "metrics.json").read_text())
    assert elsa_metrics["test"]["NDCG5"] == pytest.approx(expected["NDCG5"], abs=1e-9)
