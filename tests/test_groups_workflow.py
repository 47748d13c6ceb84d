"""The sample_groups rule end to end on fixture inputs in the contract's formats."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import yaml

from groups_fixtures import write_stage_inputs
from sagea import plan
from sagea.groups.io import load_groups, load_groups_frame
from sagea.io import read_json


@pytest.mark.workflow
def test_sample_groups_rule(repo, python, tmp_path):
    write_stage_inputs(tmp_path)  # config/config.yaml: dataset synthetic, main ELSA run f64-s42
    out = tmp_path / "results/synthetic/s42/groups/test"
    targets = [
        f"results/synthetic/s42/groups/test/{n}" for n in ("groups_summary.json", "similarity_histograms.png")
    ]
    cmd = [
        python,
        "-m",
        "snakemake",
        "-s",
        str(repo / "Snakefile"),
        "-d",
        str(tmp_path),
        "--configfile",
        str(repo / "config/config.yaml"),
        "--cores",
        "1",
        *targets,
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=repo)
    assert run.returncode == 0, run.stderr[-3000:]
    config = yaml.safe_load((repo / "config/config.yaml").read_text())
    n_groups, min_common = config["groups"]["final_group_count"], config["groups"]["common_interactions"]
    summary = read_json(out / "groups_summary.json")
    assert set(summary["sets"]) == set(plan.group_sets(config)) >= {"similar_3", "random_3", "opposing_2-1"}
    assert summary["thresholds"]["Td"] > summary["thresholds"]["Ts"]
    pool_users = summary["pool"]["pool_users"]
    assert pool_users == 200  # the fixture's test users: 1000 // 5
    for name in summary["sets"]:
        # 3 members x n_groups slots for 200 users: every user sits in several groups
        s = summary["sets"][name]
        assert s["mean_groups_per_user"] == pytest.approx(3 * n_groups / 200)
        assert ("small_pool" in s["flags"]) == (3 * n_groups > 200)
        assert summary["warnings"].get(name, []) == s["warnings"]
        frame_counts = load_groups_frame(out / f"{name}.parquet").groupby("group")["n_common_targets"].first()
        assert s["common_targets"]["median"] == float(np.median(frame_counts))
        assert ("few_common_targets" in s["flags"]) == (np.median(frame_counts) <= 2)
        groups = load_groups(out / f"{name}.parquet")
        assert groups.shape == (n_groups, 3)
        frame = load_groups_frame(out / f"{name}.parquet")
        assert (frame["n_common_targets"] > min_common).all()
        assert (frame["original_id"] == "user" + frame["user"].astype(str)).all()
    opposing = load_groups_frame(out / "opposing_2-1.parquet")
    assert (opposing["subgroup"].to_numpy().reshape(-1, 3) == [0, 0, 1]).all()
    similar = load_groups_frame(out / "similar_3.parquet")["group_similarity"].to_numpy()
    random = load_groups_frame(out / "random_3.parquet")["group_similarity"].to_numpy()
    assert np.mean(similar) > np.mean(random) + 0.05
    assert (out / "opposing_subgroups.png").stat().st_size > 0
