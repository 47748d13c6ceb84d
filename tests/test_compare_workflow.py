"""The compare rules end to end through snakemake, on fixture files in the contract formats."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from compare_fixtures import validated_config, write_compare_fixtures  # noqa: E402

from sagea.analysis.compare import DENSE_MEASURES, DICTIONARY_MEASURES, RESULT_COLUMNS  # noqa: E402

COMPARE_RULES = ["compare_elsa", "compare_sae", "compare_table", "compare_sae_pairs_figure"]


@pytest.mark.workflow
def test_compare_rules_on_fixtures(tmp_path, repo, python):
    config_path = tmp_path / "config.yaml"
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    config["mlflow"] = {"enabled": False}
    # SAE grid also on the seed rerun of the main ELSA run: exercises the Procrustes alignment and
    # gives the SAE comparison a noise floor (pairs differing only in elsa_seed).
    config["compare"] = {**config.get("compare", {}), "elsa": True, "sae": True, "sae_elsa_runs": ["f64-s43"]}
    config_path.write_text(yaml.safe_dump(config))
    valid = validated_config(config_path)
    workdir = tmp_path / "wf"
    write_compare_fixtures(workdir, valid, "synthetic", n_items=150, n_users=120)

    out = workdir / "results" / "synthetic" / "s42" / "compare"
    targets = [f"results/synthetic/s42/compare/{name}" for name in ("elsa.md", "elsa.png", "sae.md", "sae.png", "sae_pairs.png")]
    cmd = [
        python, "-m", "snakemake", *targets, "-s", str(repo / "Snakefile"), "-d", str(workdir),
        "--configfile", str(config_path), "--cores", "2", "--allowed-rules", *COMPARE_RULES,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]

    elsa = pd.read_parquet(out / "elsa.parquet")
    assert list(elsa.columns) == ["dataset", *RESULT_COLUMNS]
    comp = elsa[elsa["kind"] == "compared"]
    assert set(comp["b"]) == {"f32-s42", "f64-s43"} and set(comp["measure"]) == set(DENSE_MEASURES)
    assert comp["noise_floor"].notna().all()  # the default config carries a seed rerun
    assert set(elsa.loc[elsa["kind"] == "seed", "b"]) == {"f64-s43"}

    sae = pd.read_parquet(out / "sae.parquet")
    comp = sae[sae["kind"] == "compared"]
    assert set(comp["measure"]) == set(DICTIONARY_MEASURES)
    assert comp["a"].nunique() == 7  # 8 dictionaries (2 ELSA runs x 2x2 grid): 28 pairs
    assert len(comp) == 28 * len(DICTIONARY_MEASURES)
    assert (sae["kind"] == "seed").sum() == 4 * len(DICTIONARY_MEASURES)
    assert comp["noise_floor"].notna().all() and comp["value"].between(-1, 1).all()
    for name in ("elsa.csv", "sae.csv", "elsa.png", "sae.png", "sae_pairs.png"):
        assert (out / name).stat().st_size > 0
    assert "noise floor" in (out / "sae.md").read_text()
