"""Are two runs' outputs the same? Every file of one `results/` folder against another's.

For checking that a speed-up changed no output (BENCHMARKS.md, "Per-job overhead"): run the
workflow before and after, then

    .venv/bin/python benchmarks/overhead_identity.py BEFORE/results AFTER/results

- Parquet: equal content (columns, dtypes, values; NaN equal to NaN), except timing columns
  (`Time_*`, `seconds`); `recommendations.parquet` must be byte for byte identical.
- JSON: equal after dropping timing keys (`Time_*`, `seconds`, anything with `time`/`Time` in the
  key) at any depth.
- Everything else byte for byte, except the MLflow store (`mlflow.db*`, `mlartifacts/`: run ids
  and times differ by nature) and the files listed as timing-dependent below, which are reported
  but do not fail the check.

Exit status 1 when a file is missing on either side or differs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

#: Outputs that show measured times (tables/figures of the timing report, the collected table of
#: per-group rows with their Time_* columns is compared as Parquet). Reported, never a failure.
TIMING_FILES = re.compile(r"(^|/)(timing[^/]*|training[^/]*\.(png|svg)|report/front\.rst)$")
SKIP = re.compile(r"(^|/)(mlflow\.db[^/]*|mlartifacts(/.*)?)$")
TIME_KEY = re.compile(r"^Time|time|^seconds$", re.IGNORECASE)


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not TIME_KEY.search(str(k).split("/")[0])}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def same_parquet(a: Path, b: Path) -> str | None:
    import pandas as pd

    if a.name == "recommendations.parquet":
        return None if a.read_bytes() == b.read_bytes() else "recommendations differ byte for byte"
    da, db = pd.read_parquet(a), pd.read_parquet(b)
    drop = [c for c in da.columns if str(c).startswith("Time") or c == "seconds"]
    da, db = da.drop(columns=drop), db.drop(columns=[c for c in drop if c in db.columns])
    try:
        pd.testing.assert_frame_equal(da, db, check_exact=True)
    except AssertionError as error:
        return str(error).splitlines()[0][:200]
    return None


def same_json(a: Path, b: Path) -> str | None:
    ja, jb = _strip(json.loads(a.read_text())), _strip(json.loads(b.read_text()))
    return None if ja == jb else "JSON differs (timing keys ignored)"


def compare(before: Path, after: Path) -> int:
    files_a = {p.relative_to(before).as_posix() for p in before.rglob("*") if p.is_file()}
    files_b = {p.relative_to(after).as_posix() for p in after.rglob("*") if p.is_file()}
    files_a = {f for f in files_a if not SKIP.search(f)}
    files_b = {f for f in files_b if not SKIP.search(f)}
    failures, timing, checked = [], [], 0
    for name in sorted(files_a - files_b):
        failures.append(f"missing after: {name}")
    for name in sorted(files_b - files_a):
        failures.append(f"new after: {name}")
    for name in sorted(files_a & files_b):
        a, b = before / name, after / name
        checked += 1
        if a.suffix == ".parquet":
            why = same_parquet(a, b)
        elif a.suffix == ".json":
            why = same_json(a, b)
        else:
            why = None if a.read_bytes() == b.read_bytes() else "bytes differ"
        if why:
            (timing if TIMING_FILES.search(name) else failures).append(f"{name}: {why}")
    recs = sum(1 for f in files_a & files_b if f.endswith("recommendations.parquet"))
    print(f"{checked} files compared ({recs} recommendations.parquet byte for byte), {len(failures)} differ")
    for line in timing:
        print(f"  timing-dependent (allowed): {line}")
    for line in failures:
        print(f"  DIFFERS: {line}")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="results/ of the run before the change")
    parser.add_argument("after", type=Path, help="results/ of the run after it")
    args = parser.parse_args()
    sys.exit(compare(args.before, args.after))


if __name__ == "__main__":
    main()
