"""Seed-scoped outputs and multi-seed studies: every seed-dependent output lives in its replicate
folder (results/<dataset>/s<seed>/), so runs with different seeds coexist; `seeds: [...]` runs the
whole chain per seed and reports the overall table across seeds (mean ± 95% CI)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

sys.path.insert(0, str(Path(__file__).parent))
import report_fixtures  # noqa: E402

from sagea import plan  # noqa: E402
from sagea.reports import build, paper_tables  # noqa: E402
from sagea.reports.options import ReportOptions  # noqa: E402
from sagea.reports.table_data import Table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
#: Student t quantile t_{0.975, 2} (three seeds), from a t table.
T_975_2 = 4.302652729911275


def replicate(config: dict, seed: int) -> dict:
    rep = plan.replicate_config(config, seed)
    validate(rep, SCHEMA)
    return rep


def default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_replicate_tags_carry_every_seed_that_is_not_in_a_run_id():
    config = default_config()
    assert plan.rep_tag(replicate(config, 42), "synthetic") == "s42"
    assert plan.rep_tag(replicate(config, 7), "synthetic") == "s7"
    pinned = {**config, "groups": {**config["groups"], "seed": 5}}
    pinned["datasets"] = {"synthetic": {**config["datasets"]["synthetic"], "split": {"seed": 1}}}
    assert plan.rep_tag(replicate(pinned, 7), "synthetic") == "s7-sp1-g5"
    # the ELSA seed follows the replicate too, so its run id changes with it
    assert plan.main_elsa(replicate(config, 7), "synthetic") == "f64-s7"
    assert plan.replicate_seeds({"seed": 3}) == [3] and plan.replicate_seeds({"seeds": [1, 2, 1]}) == [1, 2]
    assert plan.data_dir(replicate(config, 7), "synthetic") == "results/synthetic/s7/data"


def test_seeds_table_is_the_mean_with_a_t_interval_over_seeds():
    index = pd.Index(["SAE-Avg", "ADD"], name="approach")
    columns = pd.MultiIndex.from_tuples([("sim", "com")], names=["kind", "NDCG"])
    values = {42: [0.5, 0.40], 43: [0.6, 0.40], 44: [0.7, 0.46]}
    per_seed = {s: Table("overall-d", "t", pd.DataFrame(np.array(v)[:, None], index=index, columns=columns))
                for s, v in values.items()}  # fmt: skip
    t = build.seeds_table(per_seed, "overall-d")
    assert t.data.loc["SAE-Avg", ("sim", "com", "mean")] == pytest.approx(0.6)
    # sample sd of (0.5, 0.6, 0.7) is 0.1: half-width t_{0.975,2} * 0.1 / sqrt(3)
    assert t.data.loc["SAE-Avg", ("sim", "com", "±95% CI")] == pytest.approx(T_975_2 * 0.1 / math.sqrt(3))
    sd_add = math.sqrt(((0.4 - 0.42) ** 2 * 2 + (0.46 - 0.42) ** 2) / 2)
    assert t.data.loc["ADD", ("sim", "com", "mean")] == pytest.approx(0.42)
    assert t.data.loc["ADD", ("sim", "com", "±95% CI")] == pytest.approx(T_975_2 * sd_add / math.sqrt(3))
    assert t.marks.loc["SAE-Avg", ("sim", "com", "mean")] == "best"
    one = build.seeds_table({42: per_seed[42]}, "overall-d")  # one seed: no interval
    assert np.isnan(one.data.loc["SAE-Avg", ("sim", "com", "±95% CI")])


def _snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(REPO / "config" / "config.yaml"), "--cores", "2", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.workflow
def test_two_seeds_coexist_on_disk(tmp_path):
    first = _snakemake(tmp_path, "--config", "seeds=[42,43]", "--", "data")
    assert first.returncode == 0, first.stderr[-3000:]
    single = _snakemake(tmp_path, "--config", "seed=7", "--", "data")
    assert single.returncode == 0, single.stderr[-3000:]
    splits = {s: pd.read_parquet(tmp_path / f"results/synthetic/s{s}/split.parquet") for s in (42, 43, 7)}
    users = {s: pd.read_parquet(tmp_path / f"results/synthetic/s{s}/data/users.parquet") for s in (42, 43, 7)}
    assert not users[42].equals(users[43])  # the synthetic data follows the seed
    for s, split in splits.items():
        assert set(split["split"]) == {"train", "valid", "test"} and len(split) == len(users[s])
    # rerunning seed 42 after seed 7 has nothing to do: seed 7 overwrote nothing
    again = _snakemake(tmp_path, "--config", "seed=42", "-n", "--", "data")
    assert "Nothing to be done" in again.stdout + again.stderr
    # the whole multi-seed study plans one chain per seed and the tables across seeds
    dry = _snakemake(tmp_path, "--config", "seeds=[42,43]", "-n", "--forceall")
    text = dry.stdout + dry.stderr
    assert dry.returncode == 0, text[-3000:]
    for seed in (42, 43):
        assert f"results/synthetic/s{seed}/eval/test/similar_3/f64-s{seed}/baselines/ADD/per_group.parquet" in text
        assert f"results/default/s{seed}/tables/overall-synthetic.csv" in text
    assert "results/default/seeds/tables/overall-synthetic.html" in text


@pytest.mark.workflow
def test_seeds_table_rule_on_fixture_results(tmp_path):
    config = default_config()
    seeds = [42, 43, 44]
    per_seed = {}
    for i, seed in enumerate(seeds):
        rep = replicate(config, seed)
        report_fixtures.write_results(rep, tmp_path, n_groups=8, seed=i)
    target = "results/default/seeds/tables/overall-synthetic.csv"
    run = _snakemake(tmp_path, "--config", "seeds=[42,43,44]", "--allowed-rules", "report_collect",
                     "report_seeds_table", "--", target)  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    for seed in seeds:
        collected = pd.read_parquet(tmp_path / f"results/default/s{seed}/collected/per_group.parquet")
        opts = ReportOptions(**{**_options(replicate(config, seed))})
        per_seed[seed] = paper_tables.overall_table(collected, "synthetic", opts).data
    got = pd.read_csv(tmp_path / target).set_index("approach")
    for approach in per_seed[42].index:
        values = np.array([per_seed[s].loc[approach, ("sim", "com")] for s in seeds])
        assert got.loc[approach, "sim/com/mean"] == pytest.approx(values.mean())
        assert got.loc[approach, "sim/com/±95% CI"] == pytest.approx(T_975_2 * values.std(ddof=1) / math.sqrt(3))
    html = (tmp_path / target.replace(".csv", ".html")).read_text()
    assert "mean over seeds 42, 43, 44" in html


def _options(config: dict) -> dict:
    from sagea import plan_report

    return plan_report.options_from_config(config)
