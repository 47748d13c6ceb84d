"""MLflow logging: one run per output folder, with provenance, readable by the researchers' notebooks.

A whole run is logged in one call at the end of a job (params, per-step metrics, final metrics,
artifacts) with the job's real start and end times. Each run carries a key tag
(``sagea.output``: the output folder relative to ``results/``); logging the same key again
replaces the earlier run(s) of that experiment, so after any sequence of killed and forced
reruns the store holds exactly one run per output. A job that logs many runs (an evaluation job,
one per strategy folder) collects them with :func:`deferred_logging` and logs them as one batch.
With config ``mlflow.deferred`` the jobs write their runs to spool files instead (no MLflow
import in the job) and one job of the workflow logs them all (:func:`log_spooled`).
Runs of a study are children (``mlflow.parentRunId``) of one parent run per study in the
experiment ``Studies``.

Writes to a local sqlite store are serialised with a file lock next to the database, because
parallel Snakemake jobs would otherwise race on sqlite's single writer. Artifacts of a store
given by a relative path (the default ``sqlite:///results/mlflow.db``) go to the relative folder
``results/mlartifacts/<experiment>``, so the store and its artifacts can be copied together.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

log = logging.getLogger(__name__)

#: Tag holding a run's key: the output folder relative to ``results/``.
OUTPUT_TAG = "sagea.output"
#: Tag of a study's parent run (value: the study name) in :data:`STUDY_EXPERIMENT`.
PARENT_TAG = "sagea.study_parent"
STUDY_EXPERIMENT = "Studies"

#: Default ``note`` of SAGEA evaluation runs (config ``mlflow.note``): unique per pool, ELSA run,
#: SAE variant (variant, width, k, loss, non-default coefficients such as contrastive) and
#: SAGEA option (TopK at inference, member normalisation).
DEFAULT_NOTE = "{user_set}/{elsa_run}/{sae_run}/{option}"
#: Default ``note`` of baseline evaluation runs (config ``mlflow.baseline_note``).
DEFAULT_BASELINE_NOTE = "{user_set}/{elsa_run}/baselines"
#: The thesis notebooks' notes (``sizes_L2_with_acts_normalized``), e.g. for ``mlflow.note``.
RESEARCH_NOTE = "sizes_{loss}_{acts}{normalized}"

#: Fields a note template may use (SAGEA runs; baseline runs have the first six and ``strategy``).
NOTE_FIELDS = {
    "dataset": "synthetic", "study": "default", "user_set": "test", "group_set": "similar_3",
    "elsa_run": "f256-s42", "strategy": "SAGEA", "sae_run": "topk-h2048-k64-l2", "option": "ti1-nu0",
    "variant": "topk", "width": 2048, "k": 64, "loss": "L2", "loss_id": "l2", "contrastive": 0.0,
    "topk_inference": True, "normalize_users_embeddings": False, "acts": "with_acts", "normalized": "",
}  # fmt: skip
BASELINE_NOTE_FIELDS = ("dataset", "study", "user_set", "group_set", "elsa_run", "strategy")

# MLflow's log_batch limits per request
_MAX_PARAMS, _MAX_TAGS, _MAX_ENTITIES = 100, 100, 1000


@dataclass(frozen=True, eq=False)  # eq=False: hashable although it holds dicts
class Provenance:
    """What every run of one workflow invocation shares: study, code, config, note templates.

    Rules pass it as a ``params:`` value. Being no builtin type, Snakemake leaves it out of its
    params rerun trigger, so a new commit or a change of an unrelated config key does not rerun
    finished jobs; the runs those jobs log still record the commit and config that made them.
    """

    study: str = ""
    git_commit: str | None = None
    git_dirty: bool | None = None
    config_digest: str | None = None
    config: Mapping[str, Any] | None = None
    note: str = DEFAULT_NOTE
    baseline_note: str = DEFAULT_BASELINE_NOTE
    group_params: Mapping[str, Any] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        out = {"sagea.study": self.study, "sagea.git_commit": self.git_commit or "unknown"}
        if self.git_commit:
            out["mlflow.source.git.commit"] = self.git_commit
        if self.git_dirty is not None:
            out["sagea.git_dirty"] = str(self.git_dirty).lower()
        if self.config_digest:
            out["sagea.config_digest"] = self.config_digest
        return out


# ----------------------------------------------------------------------------- provenance helpers
def canonical_json(obj: Any) -> str:
    """Key-sorted compact JSON (non-JSON values as ``str``): the same config gives the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def config_digest(config: Mapping[str, Any]) -> str:
    """sha256 (hex) of :func:`canonical_json` of the validated config."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def file_digest(path: str | os.PathLike) -> str | None:
    """sha256 (hex) of a file's bytes, or None when it does not exist (e.g. a dataset card)."""
    path = Path(path)
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_state(repo: str | os.PathLike) -> dict[str, Any]:
    """``git_commit`` (HEAD) and ``git_dirty`` of the checkout at ``repo``; both None when it is none."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {"git_commit": None, "git_dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def flat_params(section: Mapping[str, Any], prefix: str, skip: Iterable[str] = ()) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"<prefix>.a.b": 1}`` (lists kept as values), without ``skip`` keys."""
    out: dict[str, Any] = {}
    for key, value in section.items():
        if key in skip:
            continue
        if isinstance(value, Mapping):
            out.update(flat_params(value, f"{prefix}.{key}"))
        else:
            out[f"{prefix}.{key}"] = value
    return out


def output_key(folder: str | os.PathLike) -> str:
    """The key of an output folder: its path relative to the (last) ``results`` folder above it."""
    parts = Path(os.path.abspath(folder)).parts
    if "results" in parts:
        i = len(parts) - 1 - parts[::-1].index("results")
        if i < len(parts) - 1:
            return "/".join(parts[i + 1 :])
    return Path(os.path.abspath(folder)).as_posix()


def render_note(template: str, fields: Mapping[str, Any], config_key: str = "mlflow.note") -> str:
    """``template.format(**fields)`` with an error naming the config key and the known fields."""
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(
            f"config {config_key}: cannot fill the note template {template!r} ({error!r}); "
            f"use only the fields {sorted(fields)} in braces, e.g. {DEFAULT_NOTE!r}"
        ) from None


def check_note_templates(note: str, baseline_note: str) -> None:
    """Fail early (at workflow start) on a note template with an unknown field."""
    render_note(note, NOTE_FIELDS, "mlflow.note")
    render_note(baseline_note, {k: NOTE_FIELDS[k] for k in BASELINE_NOTE_FIELDS}, "mlflow.baseline_note")


# ----------------------------------------------------------------------------- store
def _sqlite_db(tracking_uri: str) -> str | None:
    return tracking_uri[len("sqlite:///") :] if tracking_uri.startswith("sqlite:///") else None


def _lock_path(tracking_uri: str) -> Path | None:
    db = _sqlite_db(tracking_uri)
    if db is not None:
        Path(db).parent.mkdir(parents=True, exist_ok=True)
        return Path(db).with_suffix(Path(db).suffix + ".lock")
    if tracking_uri.startswith("file:") or "://" not in tracking_uri:
        root = Path(tracking_uri.removeprefix("file://").removeprefix("file:"))
        root.mkdir(parents=True, exist_ok=True)
        return root / ".lock"
    return None


@contextlib.contextmanager
def _store_lock(tracking_uri: str):
    lock = _lock_path(tracking_uri)
    if lock is None:
        yield
        return
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def default_artifact_root(tracking_uri: str) -> str | None:
    """Artifacts of a sqlite store live next to the database (``<db dir>/mlartifacts``).

    Relative when the database path is relative (``sqlite:///results/mlflow.db`` ->
    ``results/mlartifacts``): like the store path, it is then resolved against the working
    directory of whoever reads it, so a copied ``results/`` folder keeps its artifacts.
    """
    db = _sqlite_db(tracking_uri)
    if db is None:
        return None
    root = Path(db).parent / "mlartifacts"
    return root.as_posix() if not root.is_absolute() else root.resolve().as_uri()


def _experiment_id(client, tracking_uri: str, experiment: str) -> str:
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        return exp.experiment_id
    root = default_artifact_root(tracking_uri)
    location = f"{root}/{experiment}" if root else None
    exp_id = client.create_experiment(experiment, artifact_location=location)
    if location and not location.startswith("file:"):
        # MLflow stores local locations as absolute paths; keep ours relative (see default_artifact_root)
        import sqlite3

        with contextlib.closing(sqlite3.connect(_sqlite_db(tracking_uri), timeout=60)) as con:
            con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?", (location, int(exp_id)))
            con.commit()
    return exp_id


def _quoted(value: str) -> str:
    if "'" in value:
        raise ValueError(f"MLflow run key {value!r} must not contain a single quote")
    return f"'{value}'"


def runs_with_key(client, experiment_ids: list[str], key: str) -> list:
    """Active runs of the experiments whose ``sagea.output`` tag is ``key``, oldest first."""
    return client.search_runs(
        experiment_ids, filter_string=f"tags.`{OUTPUT_TAG}` = {_quoted(key)}", max_results=1000,
        order_by=["attributes.start_time ASC"],
    )  # fmt: skip


def _remove_local_artifacts(run) -> None:
    """Delete a replaced run's artifact folder when it is local (``mlflow gc`` would do it later)."""
    from mlflow.utils.uri import is_local_uri
    from mlflow.utils.file_utils import local_file_uri_to_path

    uri = run.info.artifact_uri
    if not uri or not is_local_uri(uri):
        return
    folder = Path(local_file_uri_to_path(uri))
    if folder.name == "artifacts" and folder.parent.name == run.info.run_id:
        shutil.rmtree(folder.parent, ignore_errors=True)


_PARENTS: dict[tuple[str, str, str | None], str] = {}  # (store, study, config digest) -> parent run id


def _study_parent(client, tracking_uri: str, provenance: Provenance, when_ms: int) -> str:
    """The run id of the study's parent run, created on first use (race-safe without a lock)."""
    cache = (tracking_uri, provenance.study, provenance.config_digest)
    if cache in _PARENTS:  # a job logging several runs looks it up once
        return _PARENTS[cache]
    exp_id = _experiment_id(client, tracking_uri, STUDY_EXPERIMENT)
    query = f"tags.`{PARENT_TAG}` = {_quoted(provenance.study)}"
    order = ["attributes.start_time ASC", "attributes.run_id ASC"]
    found = client.search_runs([exp_id], filter_string=query, order_by=order, max_results=10)
    if not found:
        mine = client.create_run(exp_id, start_time=when_ms, run_name=provenance.study,
                                 tags={PARENT_TAG: provenance.study, "sagea.study": provenance.study})  # fmt: skip
        client.set_terminated(mine.info.run_id, "FINISHED", end_time=when_ms)
        # a concurrent job (MLflow server, no lock) may have created one too: all keep the oldest
        found = client.search_runs([exp_id], filter_string=query, order_by=order, max_results=10)
        found.sort(key=lambda r: (r.info.start_time, r.info.run_id))
        if found[0].info.run_id != mine.info.run_id:
            client.delete_run(mine.info.run_id)
    parent = found[0]
    if provenance.config is not None and provenance.config_digest:
        name = f"configs/{provenance.config_digest}.json"
        if name not in {a.path for a in client.list_artifacts(parent.info.run_id, "configs")}:
            client.log_text(parent.info.run_id, canonical_json(provenance.config), name)
    _PARENTS[cache] = parent.info.run_id
    return parent.info.run_id


def _batches(params: list, metrics: list, tags: list):
    """Split into log_batch requests within MLflow's limits (100 params, 100 tags, 1000 entities)."""
    params, metrics, tags = list(params), list(metrics), list(tags)
    while params or metrics or tags:
        p, params = params[:_MAX_PARAMS], params[_MAX_PARAMS:]
        t, tags = tags[:_MAX_TAGS], tags[_MAX_TAGS:]
        room = _MAX_ENTITIES - len(p) - len(t)
        m, metrics = metrics[:room], metrics[room:]
        yield p, m, t


def _finite(key: str, value: Any) -> bool:
    ok = value is not None and math.isfinite(float(value))
    if not ok:
        log.warning("MLflow: metric %s is %s and was not logged", key, value)
    return ok


@dataclass
class _Run:
    """One run to log: what :func:`log_run` was given, with its start time fixed (plain values:
    no MLflow import until it is logged, and a spool file can hold it as JSON)."""

    experiment: str
    run_name: str
    params: list  # (key, value)
    metrics: list  # (key, value, timestamp ms, step)
    tags: dict[str, str]
    artifacts: Iterable[str | os.PathLike]  # iterated when the run is logged
    key: str | None
    start_ms: int
    provenance: Provenance | None
    end_ms: int | None = None  # None: when it is logged

    def to_json(self, uri: str) -> dict:
        return {
            "tracking_uri": uri, "experiment": self.experiment, "run_name": self.run_name,
            "params": [list(p) for p in self.params], "metrics": [list(m) for m in self.metrics],
            "tags": dict(self.tags), "artifacts": [str(a) for a in self.artifacts], "key": self.key,
            "start_ms": self.start_ms, "end_ms": self.end_ms,
            "provenance": None if self.provenance is None else _provenance_json(self.provenance),
        }  # fmt: skip

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> tuple[str, "_Run"]:
        prov = record.get("provenance")
        run = cls(
            record["experiment"], record["run_name"], [tuple(p) for p in record["params"]],
            [tuple(m) for m in record["metrics"]], dict(record["tags"]), list(record["artifacts"]), record["key"],
            int(record["start_ms"]), None if prov is None else Provenance(**prov), record.get("end_ms"),
        )  # fmt: skip
        return record["tracking_uri"], run


def _provenance_json(provenance: Provenance) -> dict:
    from dataclasses import asdict

    return json.loads(canonical_json(asdict(provenance)))


#: Runs collected inside :func:`deferred_logging` (None outside it).
_DEFERRED: list[tuple[str, _Run]] | None = None


@contextlib.contextmanager
def deferred_logging(spool: str | os.PathLike | Iterable[str | os.PathLike] | None = None):
    """Collect the :func:`log_run` calls made inside and log them together on a clean exit.

    One lock, one client and one look-up of earlier runs per experiment for the whole batch
    instead of per run: a job that logs many runs (an evaluation job, one run per strategy
    folder) spends a fraction of the time in the store. Each run keeps its own start time (the
    call's ``start_time``) and ends when the batch is logged. On an exception nothing is logged:
    the job failed, its outputs are removed, so no run may point to them. Nested uses join the
    outermost batch.

    ``spool``: instead of logging, write the runs to this JSON file (config ``mlflow.deferred``:
    one later job logs every job's spool with :func:`log_spooled`, so the jobs themselves never
    import MLflow). Several files: each run goes to the one in its output folder (the run's key);
    each file is written, with no runs where none belongs to it. The runs end when the spool is
    written (the job's end).
    """
    global _DEFERRED
    if _DEFERRED is not None:
        yield
        return
    _DEFERRED = []
    try:
        yield
        pending = _DEFERRED
    finally:
        _DEFERRED = None
    if spool is not None:
        _write_spools(spool, pending)
        return
    for uri in dict.fromkeys(u for u, _ in pending):
        _log_runs(uri, [run for u, run in pending if u == uri])


def _write_spools(spool, pending: list[tuple[str, _Run]]) -> None:
    from sagea.io import write_text

    paths = [Path(spool)] if isinstance(spool, (str, os.PathLike)) else [Path(p) for p in spool]
    now_ms = int(time.time() * 1000)
    routed: dict[Path, list] = {path: [] for path in paths}
    by_key = {output_key(path.parent): path for path in paths}
    for uri, run in pending:
        path = paths[0] if len(paths) == 1 else by_key.get(run.key or "")
        if path is None:
            raise ValueError(f"MLflow run {run.run_name!r} (key {run.key!r}) belongs to none of the spool files {paths}")
        run.end_ms = max(now_ms, run.start_ms)
        record = run.to_json(uri)  # artifacts relative to the spool file: results/ may move before logging
        record["artifacts"] = [os.path.relpath(os.path.abspath(a), os.path.abspath(path.parent)) for a in record["artifacts"]]
        routed[path].append(record)
    for path, records in routed.items():
        write_text(canonical_json({"spool_version": 1, "runs": records}) + "\n", path)


def log_run(
    tracking_uri: str,
    experiment: str,
    run_name: str,
    params: Mapping[str, object],
    metrics: Mapping[str, float] | None = None,
    step_metrics: Mapping[str, Iterable[tuple[int, float]]] | None = None,
    artifacts: Iterable[str | os.PathLike] = (),
    tags: Mapping[str, str] | None = None,
    *,
    key: str | None = None,
    start_time: float | None = None,
    provenance: Provenance | None = None,
    retries: int = 5,
) -> str | None:
    """Log one finished run to MLflow; returns its run id (None inside :func:`deferred_logging`).

    ``metrics`` are final values (step 0); ``step_metrics`` map a metric name to ``(step, value)``
    pairs (e.g. per-epoch ``history/loss/train``). Non-finite values are skipped, with a warning.
    ``key`` (see :func:`output_key`): earlier runs of the experiment tagged with the same key are
    deleted (with their local artifacts) once this one is logged. ``start_time``: when the job
    started (seconds since the epoch; default now). ``provenance``: study/commit/config tags and
    the link to the study's parent run.
    """
    now_ms = int(time.time() * 1000)
    all_tags = {**(provenance.tags() if provenance else {}), **dict(tags or {})}
    if key is not None:
        all_tags[OUTPUT_TAG] = key
    batch_params = [(str(k), str(v)[:6000]) for k, v in params.items()]
    batch_metrics = [(k, float(v), now_ms, 0) for k, v in (metrics or {}).items() if _finite(k, v)]
    for name, series in (step_metrics or {}).items():
        batch_metrics += [(name, float(v), now_ms, int(s)) for s, v in series if _finite(name, v)]
    run = _Run(
        experiment, run_name, batch_params, batch_metrics, all_tags, artifacts, key,
        int(start_time * 1000) if start_time is not None else now_ms, provenance,
    )  # fmt: skip
    if _DEFERRED is not None:
        _DEFERRED.append((tracking_uri, run))
        return None
    return _log_runs(tracking_uri, [run], retries)[0]


def _earlier_runs(client, exp_id: str, keys: list[str]) -> list:
    """Active runs of the experiment whose key is one of ``keys`` (one query for the whole batch)."""
    if len(keys) == 1:
        return runs_with_key(client, [exp_id], keys[0])
    # LIKE on the keys' common prefix ('_' and '%' in it match more, never less); exact match below
    query = f"tags.`{OUTPUT_TAG}` LIKE {_quoted(os.path.commonprefix(keys) + '%')}"
    found, token = [], None
    while True:
        page = client.search_runs([exp_id], filter_string=query, max_results=1000, page_token=token)
        found += page
        token = page.token
        if not token:
            break
    wanted = set(keys)
    return [r for r in found if r.data.tags.get(OUTPUT_TAG) in wanted]


def _log_runs(tracking_uri: str, runs: list[_Run], retries: int = 5) -> list[str]:
    """Log ``runs`` under one lock and client; then delete earlier runs of their keys."""
    from mlflow.entities import Metric, Param
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    last_error: Exception | None = None
    for attempt in range(retries):
        try:
            with _store_lock(tracking_uri):
                client = MlflowClient(tracking_uri=tracking_uri)
                exp_ids: dict[str, str] = {}
                parents: dict[str, int] = {}  # parent run id -> latest end time of its children
                ids = []
                for run in runs:
                    if run.experiment not in exp_ids:
                        exp_ids[run.experiment] = _experiment_id(client, tracking_uri, run.experiment)
                    run_tags = dict(run.tags)
                    if run.provenance is not None and run.provenance.study:
                        parent_id = _study_parent(client, tracking_uri, run.provenance, run.start_ms)
                        run_tags["mlflow.parentRunId"] = parent_id
                    else:
                        parent_id = None
                    made = client.create_run(exp_ids[run.experiment], start_time=run.start_ms, tags=run_tags,
                                             run_name=run.run_name)  # fmt: skip
                    run_id = made.info.run_id
                    params = [Param(*p) for p in run.params]
                    metrics = [Metric(k, v, ts, step) for k, v, ts, step in run.metrics]
                    for p, m, t in _batches(params, metrics, []):
                        client.log_batch(run_id, metrics=m, params=p, tags=t)
                    repo = None  # the new run's repository (no look-up of the run per file)
                    for artifact in run.artifacts:
                        repo = repo or get_artifact_repository(made.info.artifact_uri, tracking_uri=tracking_uri)
                        repo.log_artifact(str(artifact))
                    end_ms = run.end_ms or max(int(time.time() * 1000), run.start_ms)
                    client.set_terminated(run_id, "FINISHED", end_time=end_ms)
                    ids.append(run_id)
                    if parent_id is not None:
                        parents[parent_id] = max(parents.get(parent_id, 0), end_ms)
                # a key logged twice in one batch keeps its last run
                last = {run.key: i for i, run in enumerate(runs)}
                mine = {ids[i] for i, run in enumerate(runs) if run.key is None or last[run.key] == i}
                for experiment, exp_id in exp_ids.items():
                    keys = sorted({r.key for r in runs if r.experiment == experiment and r.key is not None})
                    if not keys:
                        continue
                    for old in _earlier_runs(client, exp_id, keys):
                        if old.info.run_id not in mine:
                            client.delete_run(old.info.run_id)
                            _remove_local_artifacts(old)
                for parent_id, end_ms in parents.items():
                    parent = client.get_run(parent_id)
                    if (parent.info.end_time or 0) < end_ms:
                        client.set_terminated(parent_id, "FINISHED", end_time=end_ms)
                return ids
        except Exception as error:  # sqlite busy, server restarting, ...
            last_error = error
            log.warning("MLflow logging failed (attempt %d/%d): %s", attempt + 1, retries, error)
            time.sleep(1.0 + attempt)
    names = ", ".join(repr(r.run_name) for r in runs[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
    raise RuntimeError(f"could not log run {names} to MLflow at {tracking_uri}: {last_error}")


#: Tag of a run logged from a spool file: the digest of its record. Logging the spool files again
#: skips the records whose run (same key, same digest) is already in the store.
RECORD_TAG = "sagea.record"


def read_spool(path: str | os.PathLike) -> list[tuple[str, "_Run", str]]:
    """The runs of a spool file as ``(tracking_uri, run, record digest)``; a clear error when it is unreadable."""
    try:
        data = json.loads(Path(path).read_text())
        records = data["runs"]
        out = []
        for record in records:
            uri, run = _Run.from_json(record)
            run.artifacts = [os.path.normpath(Path(path).parent / a) for a in run.artifacts]
            out.append((uri, run, hashlib.sha256(canonical_json(record).encode("utf-8")).hexdigest()))
        return out
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path}: not a readable MLflow spool file ({type(error).__name__}: {error}); it is written by the job "
            "that made the runs: delete it and rerun `snakemake` so that job writes it again"
        ) from error


def log_spooled(spools: Iterable[str | os.PathLike], retries: int = 5) -> list[dict]:
    """Log the runs of every spool file (see :func:`deferred_logging`), one batch per store.

    Runs already in the store from the same record (same key and :data:`RECORD_TAG` digest) are
    skipped, so logging the spool files of a study again logs only what changed; a changed record
    replaces the earlier runs of its key, as :func:`log_run` does. Returns one row per run:
    ``spool``, ``key``, ``experiment``, ``run_name``, ``run_id``, ``logged`` (``now``/``before``).
    """
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    entries = []  # (spool, uri, run, digest)
    for spool in spools:
        entries += [(str(spool), uri, run, digest) for uri, run, digest in read_spool(spool)]
    rows: list[dict] = []
    for uri in dict.fromkeys(e[1] for e in entries):
        batch = [e for e in entries if e[1] == uri]
        present: dict[tuple[str, str], str] = {}
        client = MlflowClient(tracking_uri=uri)
        for experiment in dict.fromkeys(e[2].experiment for e in batch):
            exp = client.get_experiment_by_name(experiment)
            keys = sorted({e[2].key for e in batch if e[2].experiment == experiment and e[2].key})
            if exp is None or not keys:
                continue
            for old in _earlier_runs(client, exp.experiment_id, keys):
                tags = old.data.tags
                if RECORD_TAG in tags:
                    present[(tags[OUTPUT_TAG], tags[RECORD_TAG])] = old.info.run_id
        todo = [e for e in batch if (e[2].key, e[3]) not in present]
        for _, _, run, digest in todo:
            run.tags[RECORD_TAG] = digest
        new_ids = _log_runs(uri, [e[2] for e in todo], retries) if todo else []
        now = {(e[2].key, e[3]): run_id for e, run_id in zip(todo, new_ids)}
        for spool, _, run, digest in batch:
            record = (run.key, digest)
            rows.append({"spool": spool, "key": run.key, "experiment": run.experiment, "run_name": run.run_name,
                         "run_id": now.get(record) or present[record],
                         "logged": "now" if record in now else "before"})  # fmt: skip
    log.info("MLflow: %d runs from %d spool files, %d logged now", len(rows), len(set(r["spool"] for r in rows)),
             sum(r["logged"] == "now" for r in rows))  # fmt: skip
    return rows
