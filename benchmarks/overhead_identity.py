"""Are two runs' outputs the same? Every file of one `results/` folder against another's.

For checking that a speed-up changed no output (BENCHMARKS.md, "Per-job overhead"): run the
workflow before and after, then

    .venv/bin/python benchmarks/overhead_identity.py BEFORE/results AFTER/results

- Parquet: equal content (columns, dtypes, values; NaN equal to NaN), except timing columns
  (`Time*`, `seconds`); `recommendations.parquet` must be byte for byte identical.
- JSON: equal after dropping timing keys (`Time*`, anything with `time` or `seconds` in the key,
  e.g. `train_seconds`, `history[i].seconds`) at any depth.
- Checkpoints (`.pt`): equal tensors and values (`torch.save` names the archive after the file it
  first wrote, a temporary name, so the bytes differ from run to run).
- SVG: equal after dropping matplotlib's `<dc:date>`, renaming its random clip-path, marker and image ids
  in order of appearance and comparing embedded PNG images by their pixel chunks only.
- Everything else byte for byte, except the MLflow store (`mlflow.db*`, `mlartifacts/`: run ids
  and times differ by nature) and the tables of measured times (`tables/timing.*`), which are
  reported but do not fail the check.

Files only the "after" run has can be allowed by pattern (``--new``), e.g. the MLflow spool
files of ``mlflow.deferred``. ``--mlflow`` also compares the two MLflow stores (``mlflow.db`` in
each folder): the same runs by experiment and key (tag ``sagea.output``) with the same run name,
params, metrics (timing ones aside), tags (ids, commit, config digest and the spool record aside)
and artifact names.

Exit status 1 when a file is missing on either side or differs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

#: Outputs that show measured times (the timing table; the collected per-group rows with their
#: Time* columns are compared as Parquet). Reported, never a failure.
TIMING_FILES = re.compile(r"(^|/)tables/timing\.[a-z]+$")
SKIP = re.compile(r"(^|/)(mlflow\.db[^/]*|mlartifacts(/.*)?)$")
TIME_KEY = re.compile(r"time|seconds", re.IGNORECASE)
SVG_DATE = re.compile(rb"<dc:date>[^<]*</dc:date>")
SVG_ID = re.compile(rb"\b(?:p|m|image)[0-9a-f]{10}\b")
SVG_PNG = re.compile(rb"data:image/png;base64,([A-Za-z0-9+/=\s]+)")


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


def same_checkpoint(a: Path, b: Path) -> str | None:
    import torch

    def equal(x, y) -> bool:
        if isinstance(x, torch.Tensor):
            return isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
        if isinstance(x, dict):
            return isinstance(y, dict) and x.keys() == y.keys() and all(equal(x[k], y[k]) for k in x)
        if isinstance(x, (list, tuple)):
            return type(x) is type(y) and len(x) == len(y) and all(equal(u, v) for u, v in zip(x, y))
        return x == y

    ok = equal(torch.load(a, weights_only=True), torch.load(b, weights_only=True))
    return None if ok else "checkpoint content differs"


def _png_pixels(png: bytes) -> bytes:
    """The image chunks of a PNG (header, palette, data), without text/time metadata chunks."""
    out, pos = [], 8
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        kind = png[pos + 4 : pos + 8]
        if kind in (b"IHDR", b"PLTE", b"IDAT", b"tRNS"):
            out.append(png[pos + 4 : pos + 8 + length])
        pos += 12 + length
    return b"".join(out)


def _svg(data: bytes) -> bytes:
    import base64
    import hashlib

    ids: dict[bytes, bytes] = {}
    data = SVG_DATE.sub(b"", data)
    data = SVG_PNG.sub(
        lambda m: hashlib.sha256(_png_pixels(base64.b64decode(b"".join(m.group(1).split())))).hexdigest().encode(), data
    )
    return SVG_ID.sub(lambda m: ids.setdefault(m.group(0), b"p%d" % len(ids)), data)


def same_svg(a: Path, b: Path) -> str | None:
    return None if _svg(a.read_bytes()) == _svg(b.read_bytes()) else "SVG differs (date and random ids ignored)"


def compare(before: Path, after: Path, allowed_new: list[re.Pattern] = ()) -> int:
    files_a = {p.relative_to(before).as_posix() for p in before.rglob("*") if p.is_file()}
    files_b = {p.relative_to(after).as_posix() for p in after.rglob("*") if p.is_file()}
    files_a = {f for f in files_a if not SKIP.search(f)}
    files_b = {f for f in files_b if not SKIP.search(f)}
    failures, timing, checked = [], [], 0
    for name in sorted(files_a - files_b):
        failures.append(f"missing after: {name}")
    new = sorted(files_b - files_a)
    allowed = [name for name in new if any(p.search(name) for p in allowed_new)]
    failures += [f"new after: {name}" for name in new if name not in allowed]
    if allowed:
        print(f"{len(allowed)} new files allowed by --new")
    for name in sorted(files_a & files_b):
        a, b = before / name, after / name
        checked += 1
        if a.suffix == ".parquet":
            why = same_parquet(a, b)
        elif a.suffix == ".json":
            why = same_json(a, b)
        elif a.suffix == ".pt":
            why = same_checkpoint(a, b)
        elif a.suffix == ".svg":
            why = same_svg(a, b)
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


#: Tags that differ between two runs of the same code and config by nature.
RUN_SPECIFIC_TAGS = {"mlflow.parentRunId", "sagea.record", "sagea.git_dirty", "sagea.git_commit",
                     "mlflow.source.git.commit", "sagea.config_digest"}  # fmt: skip


def mlflow_runs(results: Path) -> dict:
    """(experiment, key) -> what a notebook reads of the run, from ``results/mlflow.db``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{results.resolve()}/mlflow.db")
    out = {}
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id], max_results=50000):
            key = run.data.tags.get("sagea.output", run.info.run_name)
            out[(exp.name, key)] = (
                run.info.run_name, run.data.params,
                {m: v for m, v in run.data.metrics.items() if not TIME_KEY.search(m)},
                {t: v for t, v in run.data.tags.items() if t not in RUN_SPECIFIC_TAGS},
                sorted(a.path for a in client.list_artifacts(run.info.run_id)),
            )  # fmt: skip
    return out


def compare_mlflow(before: Path, after: Path) -> int:
    a, b = mlflow_runs(before), mlflow_runs(after)
    missing, extra = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    differ = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    print(f"MLflow: {len(a)} runs before, {len(b)} after; {len(missing)} missing, {len(extra)} new, {len(differ)} differ")
    for key in (missing + extra + differ)[:10]:
        print(f"  DIFFERS: run {key}")
    return 1 if missing or extra or differ else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="results/ of the run before the change")
    parser.add_argument("after", type=Path, help="results/ of the run after it")
    parser.add_argument("--new", action="append", default=[], metavar="REGEX",
                        help="files only 'after' has that are allowed (regex on the path below results/)")
    parser.add_argument("--mlflow", action="store_true", help="also compare the MLflow stores")
    args = parser.parse_args()
    status = compare(args.before, args.after, [re.compile(p) for p in args.new])
    if args.mlflow:
        status |= compare_mlflow(args.before, args.after)
    sys.exit(status)


if __name__ == "__main__":
    main()
