"""Safe loading, self-healing outputs, file modes, names and awkward input files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sagea.io import (
    UnreadableFileError,
    UnsafeCheckpointError,
    atomic_path,
    read_embeddings,
    read_parquet,
    read_torch,
    write_embeddings,
    write_json,
    write_parquet,
    write_torch,
)
from sagea.models.elsa import ELSA
from sagea.models.sae import SAE


class _Payload:
    """Unpickling this object would create ``marker`` (what a crafted checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _crafted(path: Path, marker: Path, state: dict) -> Path:
    torch.save({"model_state_dict": state, "hyperparameters": {"k": 2, "variant": "topk"}, "x": _Payload(marker)}, path)
    return path


def _sae_state() -> dict:
    return {k: v.detach() for k, v in SAE(4, 8, k=2, seed=0).state_dict().items()}


@pytest.mark.parametrize("loader", ["elsa", "sae", "decoder", "read_torch"])
def test_crafted_pickle_checkpoint_is_refused_without_running_code(tmp_path, loader):
    from sagea.stages.compare import load_decoder

    marker = tmp_path / "pwned"
    state = {"encoder": torch.zeros(5, 3)} if loader == "elsa" else _sae_state()
    path = _crafted(tmp_path / "model.pt", marker, state)
    load = {"elsa": ELSA.load, "sae": SAE.load, "decoder": load_decoder, "read_torch": read_torch}[loader]
    with pytest.raises(UnsafeCheckpointError) as info:
        load(path)
    assert str(path) in str(info.value) and "Python objects" in str(info.value)
    assert not marker.exists()
    assert path.exists()  # not ours to move: left in place for the user to look at


def test_crafted_training_state_is_ignored_not_unpickled(tmp_path):
    from sagea.models.training import load_training_state

    marker = tmp_path / "pwned"
    path = _crafted(tmp_path / "train_state.pt", marker, {"w": torch.zeros(2)})
    assert load_training_state(path) is None
    assert not marker.exists() and not path.exists()  # a training state is scratch: removed, training restarts


def test_our_checkpoints_hold_only_plain_values(tmp_path):
    """NumPy scalars and arrays written through write_torch come back as plain values under weights_only."""
    write_torch({"a": np.float64(0.5), "b": [np.int64(3), (np.bool_(True),)], "c": np.arange(3)}, tmp_path / "x.pt")
    back = torch.load(tmp_path / "x.pt", weights_only=True)
    assert back["a"] == 0.5 and type(back["a"]) is float
    assert back["b"] == [3, (True,)] and type(back["b"][0]) is int
    assert torch.equal(back["c"], torch.arange(3))


def test_training_states_load_with_weights_only(tmp_path):
    """ELSA's resumable state (with its FitResult) and the SAE's survive weights_only loading."""
    import scipy.sparse as sp

    from sagea.models import elsa as elsa_model
    from sagea.models.sae import fit
    from sagea.models.sae_data import EmbeddingData
    from sagea.models.training import load_training_state
    from sagea.stages.elsa import validator

    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((40, 12)) < 0.3).astype(np.float32))
    state_file = tmp_path / "elsa_state.pt"
    elsa_model.fit(ELSA(12, 3, seed=0), x, validator((x[:8], x[8:16]), k=5), epochs=2, batch_size=16, k=5,
                   checkpoint_path=state_file)
    saved = load_training_state(state_file)
    assert saved is not None and saved["epoch"] == 2 and saved["result"]["best_epoch"] in (1, 2)
    emb = EmbeddingData(torch.randn(30, 4, generator=torch.Generator().manual_seed(0)))
    sae_state = tmp_path / "sae_state.pt"
    fit(SAE(4, 8, k=2, seed=0), emb, emb, epochs=4, validate_every=2, batch_size=16, checkpoint_path=sae_state,
        stop_after_epochs=2)  # fmt: skip
    assert load_training_state(sae_state)["epoch"] == 2


@pytest.mark.parametrize("damage", ["truncated", "random", "empty"])
def test_unreadable_checkpoint_names_path_and_is_moved_aside(tmp_path, damage):
    path = tmp_path / "model.pt"
    write_torch(SAE(4, 8, k=2, seed=0).checkpoint(), path)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "random": os.urandom(2000), "empty": b""}[damage])
    with pytest.raises(UnreadableFileError) as info:
        SAE.load(path)
    message = str(info.value)
    assert str(path) in message and "run the workflow again" in message
    assert not path.exists() and (tmp_path / "model.pt.corrupt").exists()


def test_unreadable_parquet_and_embeddings_are_moved_aside(tmp_path):
    table, emb = tmp_path / "t.parquet", tmp_path / "e.parquet"
    write_parquet(pd.DataFrame({"a": np.arange(100)}), table)
    write_embeddings(np.ones((50, 4)), "user", emb)
    for path, read in ((table, read_parquet), (emb, read_embeddings)):
        path.write_bytes(path.read_bytes()[:40])
        with pytest.raises(UnreadableFileError, match=str(path)):
            read(path)
        assert not path.exists() and path.with_name(path.name + ".corrupt").exists()


def test_research_import_source_is_never_moved(tmp_path):
    path = tmp_path / "research.ckpt"
    path.write_bytes(b"garbage")
    with pytest.raises(UnreadableFileError, match="research.ckpt"):
        read_torch(path, heal=False)
    assert path.exists()


# ----------------------------------------------------------------------------- temporaries and modes
def test_atomic_writer_removes_its_temporary_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_of_a_killed_job_are_removed_at_next_write(tmp_path):
    stale = [tmp_path / ".out.json.abc123.tmp", tmp_path / ".out.json.zz.tmp"]
    other = tmp_path / ".other.json.abc.tmp"  # another file's temporary: untouched
    for path in stale + [other]:
        path.write_text("partial")
    write_json({"a": 1}, tmp_path / "out.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.json.abc.tmp", "out.json"]


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        write_json({"a": 1}, tmp_path / "a.json")
        write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "a.parquet")
        write_torch({"a": torch.zeros(1)}, tmp_path / "a.pt")
    finally:
        os.umask(old)
    for name in ("a.json", "a.parquet", "a.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name


# ----------------------------------------------------------------------------- names
@pytest.mark.parametrize("name", [".", "..", ".hidden", "a/b"])
def test_dataset_and_study_names_that_are_not_folders_are_refused(name):
    from sagea import plan

    with pytest.raises(ValueError, match="config datasets: name") as info:
        plan.check_names({"study": "ok", "datasets": {name: {"source": "synthetic"}}})
    assert repr(name) in str(info.value)
    with pytest.raises(ValueError, match="config study"):
        plan.check_names({"study": name, "datasets": {"ok": {}}})


def test_schema_refuses_dot_names(repo):
    import jsonschema
    import yaml

    schema = yaml.safe_load((repo / "workflow" / "schemas" / "config.schema.yaml").read_text())
    for good in ("ml-32m", "lastfm1k", "a.b", "_x"):
        jsonschema.validate({"datasets": {good: {"source": "synthetic"}}, "study": good}, schema)
    for bad in (".", "..", ".x"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"datasets": {bad: {"source": "synthetic"}}}, schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"study": bad}, schema)
    import re

    from sagea import plan

    assert re.fullmatch(plan.WILDCARD_CONSTRAINTS["dataset"], "..") is None
    assert re.fullmatch(plan.WILDCARD_CONSTRAINTS["dataset"], "ml-32m")


# ----------------------------------------------------------------------------- awkward input files
BOM = b"\xef\xbb\xbf"


def test_bom_is_ignored_by_every_text_reader(tmp_path):
    from sagea.data import custom, echonest, lastfm, movielens

    ml = tmp_path / "ratings.csv"
    ml.write_bytes(BOM + b"userId,movieId,rating,timestamp\n1,10,4.5,0\n2,10,3.0,0\n2,11,5.0,0\n")
    raw = movielens.read(ml, threshold=4.0)
    assert raw.interactions[["user", "item"]].values.tolist() == [[1, 10], [2, 11]]
    (tmp_path / "movies.dat").write_bytes(BOM + b"10::Ten (1990)::Drama\n11::Eleven (1991)::Comedy\n")
    dat = tmp_path / "ratings.dat"
    dat.write_bytes(BOM + b"1::10::5::0\n")
    assert movielens.read(dat).items["title"].tolist() == ["Ten (1990)", "Eleven (1991)"]
    assert movielens.read(dat).interactions[["user", "item"]].values.tolist() == [[1, 10]]
    for fmt, text in (("csv", b"user,item\nu1,i1\nu2,i2\n"), ("tsv", b"user\titem\nu1\ti1\nu2\ti2\n"),
                      ("jsonl", b'{"user": "u1", "item": "i1"}\n{"user": "u2", "item": "i2"}\n')):  # fmt: skip
        path = tmp_path / f"own.{fmt}"
        path.write_bytes(BOM + text)
        raw = custom.read(path, {"format": fmt})
        assert raw.interactions.astype(str).values.tolist() == [["u1", "i1"], ["u2", "i2"]], fmt
    lfm = tmp_path / "listen.tsv"
    lfm.write_bytes(BOM + b"u1\t2009-05-04\ta1\tArtist\tt1\tTrack\n")
    assert lastfm.read(lfm).interactions.astype(str).values.tolist() == [["u1", "a1"]]
    en = tmp_path / "train_triplets.txt"
    en.write_bytes(BOM + b"u1\ts1\t3\n")
    assert echonest.read(en).interactions[["user", "item"]].astype(str).values.tolist() == [["u1", "s1"]]


@pytest.mark.parametrize("content, expected", [(b"", "is empty"), (BOM + b"\n", "is empty"),
                                               (b"userId,movieId,rating,timestamp\n", "only a header line")])  # fmt: skip
def test_empty_and_header_only_movielens(tmp_path, content, expected):
    from sagea.data import movielens
    from sagea.data.raw import DataError

    path = tmp_path / "ratings.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=expected) as info:
        movielens.read(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("fmt, header_line", [("csv", b"user,item\n"), ("tsv", b"user\titem\n"), ("jsonl", None)])
def test_empty_and_header_only_custom(tmp_path, fmt, header_line):
    from sagea.data import custom
    from sagea.data.raw import DataError

    path = tmp_path / f"own.{fmt}"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=f"{path}.* is empty"):
        custom.read(path, {"format": fmt})
    if header_line is not None:
        path.write_bytes(header_line)
        with pytest.raises(DataError, match=f"{path}.* has only a header line"):
            custom.read(path, {"format": fmt})


def test_empty_headerless_sources(tmp_path):
    from sagea.data import echonest, lastfm
    from sagea.data.raw import DataError

    for module, name in ((lastfm, "listen.tsv"), (echonest, "train_triplets.txt")):
        path = tmp_path / name
        path.write_bytes(b"\n\n")
        with pytest.raises(DataError, match="is empty"):
            module.read(path)


def test_extracted_raw_folder_follows_the_umask(tmp_path):
    from sagea.data.download import extract

    source = tmp_path / "ratings.csv"
    source.write_text("userId,movieId,rating,timestamp\n1,1,5,0\n")
    old = os.umask(0o022)
    try:
        out = extract(source, tmp_path / "files")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
