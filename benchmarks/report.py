"""Time the report stage at the paper's scale on synthetic per-group files.

ML-32M paper config: 2 pools x 3 group sets x (18 SAEs x 5 fusions + 8 baselines) = 588
per_group.parquet files of 1000 groups. Measures collecting them, every table and the
bootstrap bar chart (the slowest figure).

    SAGEA_PROGRESS=0 .venv/bin/python benchmarks/report.py [--groups 1000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml
from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import report_fixtures  # noqa: E402

from sagea import plan, plan_report  # noqa: E402
from sagea.reports import build, collect, figures  # noqa: E402
from sagea.reports.options import ReportOptions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="config/paper/movielens.yaml")
    parser.add_argument("--groups", type=int, default=1000)
    args = parser.parse_args()
    config = yaml.safe_load((REPO / args.config).read_text())
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        entries = report_fixtures.write_results(config, tmp, n_groups=args.groups)
        print(
            f"fixture: {len(entries['per_group'])} per_group files x {args.groups} groups "
            f"({time.perf_counter() - t0:.1f} s to write)"
        )
        t0 = time.perf_counter()
        collected = {
            "per_group": collect.collect_per_group(entries["per_group"]),
            "single_user": collect.collect_single_user(entries["single_user"]),
            "sae": collect.collect_sae(entries["sae"]),
        }
        print(f"collect: {time.perf_counter() - t0:.2f} s, {len(collected['per_group'])} rows")
        opts = ReportOptions(**plan_report.options_from_config(config))
        for name in plan_report.table_names(plan.datasets(config), opts.comparisons):
            t0 = time.perf_counter()
            build.build_table(name, collected, opts)
            print(f"table {name}: {time.perf_counter() - t0:.2f} s")
        for dataset in plan.datasets(config):
            t0 = time.perf_counter()
            figures.approach_bars(collected["per_group"], dataset, opts)
            print(f"figure bars-{dataset} ({opts.bootstrap} resamples): {time.perf_counter() - t0:.2f} s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
