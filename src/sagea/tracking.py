"""MLflow logging so the researchers' notebooks keep working on our runs.

A whole run is logged in one call at the end of a job (params, per-step metrics, final metrics,
artifacts). Writes to a local sqlite store are serialised with a file lock next to the database,
because parallel Snakemake jobs would otherwise race on sqlite's single writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path
from typing import Iterable, Mapping

log = logging.getLogger(__name__)


def _lock_path(tracking_uri: str) -> Path | None:
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///") :])
        db.parent.mkdir(parents=True, exist_ok=True)
        return db.with_suffix(db.suffix + ".lock")
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
    """Artifacts of a sqlite store live next to the database (``<db dir>/mlartifacts``)."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///") :]).resolve()
        return (db.parent / "mlartifacts").as_uri()
    return None


def log_run(
    tracking_uri: str,
    experiment: str,
    run_name: str,
    params: Mapping[str, object],
    metrics: Mapping[str, float] | None = None,
    step_metrics: Mapping[str, Iterable[tuple[int, float]]] | None = None,
    artifacts: Iterable[str | os.PathLike] = (),
    tags: Mapping[str, str] | None = None,
    retries: int = 5,
) -> str:
    """Log one finished run to MLflow; returns its run id.

    ``metrics`` are final values; ``step_metrics`` map a metric name to ``(step, value)`` pairs
    (e.g. per-epoch ``loss/train``). Non-finite metric values are skipped, with a warning.
    """
    import math

    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    last_error: Exception | None = None
    for attempt in range(retries):
        try:
            with _store_lock(tracking_uri):
                client = MlflowClient(tracking_uri=tracking_uri)
                exp = client.get_experiment_by_name(experiment)
                if exp is None:
                    exp_id = client.create_experiment(
                        experiment, artifact_location=_experiment_artifacts(tracking_uri, experiment)
                    )
                else:
                    exp_id = exp.experiment_id
                run = client.create_run(exp_id, run_name=run_name, tags=dict(tags or {}))
                run_id = run.info.run_id
                now = int(time.time() * 1000)
                batch_params = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
                batch_metrics: list[Metric] = []
                for key, value in (metrics or {}).items():
                    if value is None or not math.isfinite(float(value)):
                        log.warning("MLflow: metric %s is %s and was not logged", key, value)
                        continue
                    batch_metrics.append(Metric(key, float(value), now, 0))
                for key, series in (step_metrics or {}).items():
                    for step, value in series:
                        if value is not None and math.isfinite(float(value)):
                            batch_metrics.append(Metric(key, float(value), now, int(step)))
                for start in range(0, max(len(batch_params), len(batch_metrics)), 100):
                    client.log_batch(
                        run_id,
                        metrics=batch_metrics[start : start + 100] if start < len(batch_metrics) else [],
                        params=batch_params[start : start + 100] if start < len(batch_params) else [],
                        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()] if start == 0 else [],
                    )
                for artifact in artifacts:
                    client.log_artifact(run_id, str(artifact))
                client.set_terminated(run_id, "FINISHED")
                return run_id
        except Exception as error:  # sqlite busy, server restarting, ...
            last_error = error
            log.warning("MLflow logging failed (attempt %d/%d): %s", attempt + 1, retries, error)
            time.sleep(1.0 + attempt)
    raise RuntimeError(f"could not log run {run_name!r} to MLflow at {tracking_uri}: {last_error}")


def _experiment_artifacts(tracking_uri: str, experiment: str) -> str | None:
    root = default_artifact_root(tracking_uri)
    return f"{root}/{experiment}" if root else None
