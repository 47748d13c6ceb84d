"""The data rules through `python -m snakemake`: lint, the embedded default end to end, a dataset
given by `path:`, the download rule against a local HTTP server, and a bad config."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sagea import plan

pytestmark = pytest.mark.workflow


def snakemake(python, repo, workdir, *args, configfile=None):
    # --configfile takes several values: keep it last so targets are not read as config files
    cmd = [
        python,
        "-m",
        "snakemake",
        "-s",
        str(repo / "Snakefile"),
        "-d",
        str(workdir),
        "--cores",
        "2",
        *args,
        "--configfile",
        str(configfile or repo / "config" / "config.yaml"),
    ]
    return subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600)


def test_lint_has_nothing_to_say(python, repo, tmp_path):
    """`snakemake --lint` on the whole workflow: no rule and no rules file draws a lint."""
    out = snakemake(python, repo, tmp_path, "--lint")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "Lints for" not in text, text[-5000:]


def test_embedded_default_data_rules_end_to_end(python, repo, tmp_path):
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    from snakemake.utils import validate

    rep = plan.replicate_config(config, config.get("seed", 42))
    validate(rep, str(repo / "workflow" / "schemas" / "config.schema.yaml"))
    targets = plan.data_files(rep)  # synthetic data lives in the replicate folder (it has a seed)
    out = snakemake(python, repo, tmp_path, *targets)
    assert out.returncode == 0, out.stderr[-4000:]
    data = tmp_path / "results" / "synthetic" / "s42" / "data"
    card = json.loads((data / "card.json").read_text())
    syn = config["datasets"]["synthetic"]["synthetic"]
    assert card["before_filter"]["unique_pairs"] == syn["n_interactions"]
    users = pd.read_parquet(data / "users.parquet")
    inter = pd.read_parquet(data / "interactions.parquet")
    assert card["counts"]["users"] == len(users) and card["counts"]["interactions"] == len(inter)
    assert users["n_interactions"].min() >= config["datasets"]["synthetic"]["filter"]["min_user_interactions"]
    assert {"clusters", "main_cluster"} <= set(users.columns)
    assert "cluster" in pd.read_parquet(data / "items.parquet").columns
    split = pd.read_parquet(data.parent / "split.parquet")
    assert split["split"].value_counts()["valid"] == int(0.1 * len(users))
    assert (tmp_path / "logs" / "synthetic" / "s42" / "generate.log").exists()
    assert (tmp_path / "logs" / "benchmarks" / "synthetic" / "s42" / "generate.tsv").exists()
    again = snakemake(python, repo, tmp_path, "-n", *targets)
    assert "Nothing to be done" in again.stdout + again.stderr


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def test_path_and_download_datasets_through_the_rules(python, repo, tmp_path):
    ratings = "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{m},{4.0 if (u + m) % 3 else 2.0},0\n" for u in range(1, 9) for m in range(1, 7)
    )
    local = tmp_path / "mine"
    local.mkdir()
    (local / "ratings.csv").write_text(ratings)
    serve = tmp_path / "www"
    serve.mkdir()
    (serve / "ml-x.zip").write_bytes(_zip({"ml-x/ratings.csv": ratings}))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(serve)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    flt = {"min_user_interactions": 1, "min_item_interactions": 1}
    cfg = {
        "datasets": {
            "local": {"source": "movielens", "path": str(local), "filter": flt},
            "remote": {
                "source": "movielens",
                "release": "ml-latest-small",
                "url": f"http://127.0.0.1:{httpd.server_address[1]}/ml-x.zip",
                "filter": flt,
            },
        }
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    work = tmp_path / "work"
    try:
        out = snakemake(
            python,
            repo,
            work,
            "results/local/s42/split.parquet",
            "results/remote/s42/split.parquet",
            configfile=tmp_path / "cfg.yaml",
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert out.returncode == 0, out.stderr[-4000:]
    positives = sum(1 for u in range(1, 9) for m in range(1, 7) if (u + m) % 3)
    for name in ("local", "remote"):
        card = json.loads((work / "results" / name / "data" / "card.json").read_text())
        assert card["counts"]["interactions"] == positives
    assert (work / "results" / "remote" / "raw" / "ml-x.zip").exists()
    assert (work / "results" / "remote" / "raw" / "files" / "ml-x" / "ratings.csv").exists()


def test_bad_config_names_key_and_allowed_values(python, repo, tmp_path):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"datasets": {"x": {"source": "netflix"}}}))
    out = snakemake(python, repo, tmp_path, "-n", configfile=tmp_path / "bad.yaml")
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "netflix" in text and "movielens" in text and "source" in text


def test_custom_without_path_fails_at_parse_time(python, repo, tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"datasets": {"mine": {"source": "custom"}}}))
    out = snakemake(python, repo, tmp_path, "-n", configfile=tmp_path / "c.yaml")
    assert out.returncode != 0
    assert "datasets.mine.path is required" in out.stdout + out.stderr


def test_snakefmt_has_nothing_to_change(repo):
    """The Snakefile and every rules file are formatted as `snakefmt` would (dev dependency)."""
    snakefmt = Path(sys.executable).parent / "snakefmt"
    if not snakefmt.exists():
        pytest.skip(f"snakefmt not installed next to {sys.executable} (pip install -e '.[dev]')")
    out = subprocess.run([str(snakefmt), "--check", "Snakefile", "workflow/rules"], cwd=repo,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
