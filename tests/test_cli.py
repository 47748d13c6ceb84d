"""The ``sagea`` command on the tiny evaluated study of tests/api_fixtures.py: help texts, JSON that
parses and equals the API's answers, tables, errors that name the unknown id."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from api_fixtures import BASELINES, ELSA_RUN, ODD_SAE_K, ODD_SAE_RUN, SAE_RUN, build_study, saved_lists
from sagea.api import Study
from sagea.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def rep_dir(tmp_path_factory):
    return build_study(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def results(rep_dir) -> str:
    return str(rep_dir.parents[1])


def run_json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("argv", [[], ["runs"], ["recommend"], ["explain"], ["groups"], ["groups", "show"]])
def test_help(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sagea")
    if argv in ([], ["runs"], ["recommend"], ["explain"], ["groups", "show"]):
        assert "examples:" in out and "sagea " in out.split("examples:")[1]


def test_runs_json_and_table(capsys, results, rep_dir):
    payload = run_json(capsys, "runs", results, "--json")
    (rep,) = payload["replicates"]
    assert (rep["dataset"], rep["replicate"]) == ("synthetic", "s42")
    assert {s["sae"]: s["k"] for s in rep["sae"]} == {SAE_RUN: 4, ODD_SAE_RUN: ODD_SAE_K}
    assert rep["group_sets"] == [{"pool": "test", "groupset": "similar_3", "groups": 10, "size": 3}]
    assert main(["runs", str(rep_dir)]) == 0
    table = capsys.readouterr().out
    assert "synthetic/s42: SAE variants" in table and ODD_SAE_RUN in table and "similar_3" in table


def test_recommend_json_matches_api(capsys, results):
    api = Study.open(results)
    payload = run_json(capsys, "recommend", results, "--users", "u3,u5", "--strategy", "sagea:wcom",
                       "--sae", SAE_RUN, "-k", "6", "--json")  # fmt: skip
    expected = api.recommend(users=["u3", "u5"], strategy="sagea:wcom", sae=SAE_RUN, k=6)
    got = pd.DataFrame(payload["recommendations"])
    assert got["original_id"].tolist() == expected["original_id"].tolist()
    assert got["title"].tolist() == expected["title"].tolist() and len(got) == 6
    assert payload["members"]["users"] == ["u3", "u5"]
    # options reach the API: no TopK at inference, member normalisation
    payload = run_json(capsys, "recommend", results, "--users", "u3", "--users", "u5", "--strategy", "sagea:average",
                       "--sae", SAE_RUN, "--no-topk-inference", "--normalize-users-embeddings", "--json")  # fmt: skip
    expected = api.recommend(users=["u3", "u5"], strategy="average", sae=SAE_RUN, topk_inference=False,
                             normalize_users_embeddings=True)  # fmt: skip
    assert [r["item"] for r in payload["recommendations"]] == expected["item"].tolist()


def test_recommend_new_user_and_group_set(capsys, results, rep_dir):
    frame = pd.read_parquet(rep_dir / "data" / "interactions.parquet")
    items = ",".join(f"i{i}" for i in frame.loc[frame["user"] == 5, "item"])
    new = run_json(capsys, "recommend", results, "--items-of-new-user", items, "--strategy", "GFAR", "--json")
    old = run_json(capsys, "recommend", results, "--users", "u5", "--strategy", "GFAR", "--json")
    assert new["recommendations"] == old["recommendations"]
    # a group of the evaluation, from its member inputs: the saved list
    payload = run_json(capsys, "recommend", results, "--group-set", "test/similar_3", "--group", "3",
                       "--strategy", "EPFuzzDA", "-k", "5", "--json")  # fmt: skip
    saved = saved_lists(rep_dir, "baselines/EPFuzzDA")
    assert [r["item"] for r in payload["recommendations"]] == saved.loc[saved["group"] == 3, "item"].tolist()
    members = pd.read_parquet(rep_dir / "groups" / "test" / "similar_3.parquet")
    group3 = members.loc[members["group"] == 3].sort_values("member")
    assert payload["members"]["users"] == group3["original_id"].tolist()


def test_groups_show(capsys, results, rep_dir):
    payload = run_json(capsys, "groups", "show", "test/similar_3", "--group", "2", "--results", results, "--json")
    members = pd.read_parquet(rep_dir / "groups" / "test" / "similar_3.parquet")
    members = members[members["group"] == 2].sort_values("member")
    assert [m["original_id"] for m in payload["members"]] == members["original_id"].tolist()
    lists = pd.DataFrame(payload["recommendations"])
    assert set(lists.loc[lists["sae"].isna(), "strategy"]) == set(BASELINES)
    for strategy, folder in (("GFAR", "baselines/GFAR"), ("sagea:topk", f"{SAE_RUN}/ti0-nu1/topk")):
        saved = saved_lists(rep_dir, folder)
        mine = lists[(lists["strategy"] == strategy) & (lists["option"].isin([None, folder.split("/")[1]]))]
        assert mine["item"].tolist() == saved.loc[saved["group"] == 2, "item"].tolist()
        assert mine["original_id"].tolist() == [f"i{i}" for i in mine["item"]]
    assert main(["groups", "show", "test/similar_3", "--results", results]) == 0
    table = capsys.readouterr().out
    assert "10 groups" in table and ",".join(members["original_id"]) in table
    assert main(["groups", "show", "test/similar_3", "--group", "2", "--results", results, "--strategy", "ADD"]) == 0
    table = capsys.readouterr().out
    saved = saved_lists(rep_dir, "baselines/ADD")
    assert ",".join(f"i{i}" for i in saved.loc[saved["group"] == 2, "item"]) in table


def test_errors_name_the_unknown(capsys, results):
    assert main(["recommend", results, "--users", "u1,ghost", "--strategy", "ADD"]) == 2
    assert "unknown user id(s) ['ghost']" in capsys.readouterr().err
    assert main(["recommend", results, "--users", "u1", "--strategy", "NOPE"]) == 2
    err = capsys.readouterr().err
    assert "unknown strategy 'NOPE'" in err and "sagea:average" in err and "POPULAR" in err
    assert main(["groups", "show", "valid/similar_3", "--results", results]) == 2
    assert "available: test/similar_3" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="name the group's members"):
        main(["recommend", results])


def test_console_entry_point(results):
    """The installed ``sagea`` script where the environment has it, else ``python -m sagea.cli``."""
    script = shutil.which("sagea", path=str(Path(sys.executable).parent))
    cmd = [script] if script else [sys.executable, "-m", "sagea.cli"]
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    argv = ["recommend", results, "--users", "u1,u2", "--strategy", "POPULAR", "-k", "4", "--json"]
    proc = subprocess.run([*cmd, *argv], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = [r["original_id"] for r in json.loads(proc.stdout)["recommendations"]]
    assert got == Study.open(results).recommend(users=["u1", "u2"], strategy="POPULAR", k=4)["original_id"].tolist()
    assert np.all([g.startswith("i") for g in got])


def test_explain_output(capsys, results, monkeypatch):
    """``sagea explain`` prints the explanation's tables, or its ``to_dict()`` as JSON (the
    explanation itself is sagea.explain's; a stand-in records the call)."""
    class Result:
        features = pd.DataFrame({"feature": [3, 1], "label": ["Film 2, Film 7", "Film 5"]})
        items = pd.DataFrame({"rank": [0], "original_id": ["i9"], "features": ["3"]})

        def to_dict(self):
            return {"features": self.features.to_dict("records"), "items": self.items.to_dict("records")}

    seen = {}
    fake = types.ModuleType("sagea.explain")
    fake.explain_group = lambda elsa, sae, inputs, fusion, k_sae, **kw: (
        seen.update(fusion=fusion, m=len(inputs), **kw) or Result()
    )
    monkeypatch.setitem(sys.modules, "sagea.explain", fake)
    payload = run_json(capsys, "explain", results, "--users", "u1,u2,u3", "--strategy", "sagea:min", "--sae", SAE_RUN,
                       "--n-features", "4", "--json")  # fmt: skip
    assert payload["explanation"] == Result().to_dict() and payload["members"]["users"] == ["u1", "u2", "u3"]
    assert (seen["fusion"], seen["m"], seen["n_features"], seen["n"]) == ("min", 3, 4, 20)
    assert main(["explain", results, "--group-set", "test/similar_3", "--group", "1", "--sae", SAE_RUN]) == 0
    out = capsys.readouterr().out
    assert "features of the fused code" in out and "Film 2, Film 7" in out and seen["m"] == 3


def test_explain_with_the_real_explanations(capsys, results):
    """``sagea explain --json`` with sagea.explain itself: the explained items are the API's list,
    and the table form prints the features and the items."""
    payload = run_json(capsys, "explain", results, "--users", "u1,u2,u3", "--strategy", "sagea:average",
                       "--sae", SAE_RUN, "--n-features", "3", "--json")  # fmt: skip
    listed = Study.open(results).recommend(users=["u1", "u2", "u3"], strategy="sagea:average", sae=SAE_RUN)
    assert [row["item"] for row in payload["explanation"]["items"]] == listed["item"].tolist()
    assert 0 < len(payload["explanation"]["features"]) <= 3
    assert main(["explain", str(results), "--users", "u1,u2,u3", "--sae", SAE_RUN]) == 0
    table = capsys.readouterr().out
    assert "feature" in table and listed["original_id"].iloc[0] in table
