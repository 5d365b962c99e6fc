"""Log a written report to MLflow: into a given run, or the active run, or nowhere."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import mlflow
from mlflow import MlflowClient


def metric_key(name: str) -> str:
    """MLflow metric names allow only alphanumerics, ``_ - . / space``; anything else becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name)


def log_report(
    paths: list[Path],
    *,
    tracking_uri: str | None = None,
    run_id: str | None = None,
    metrics: Mapping[str, float] | None = None,
    artifact_path: str = "reports",
    experiment: str = "triage-reports",
    run_name: str = "report",
) -> str | None:
    """Log ``paths`` (and finite ``metrics``) to MLflow and return the run id, or None if not logged.

    Where: ``run_id`` (on ``tracking_uri``) if given; else the active run; else, when ``tracking_uri`` is
    given, a new run named ``run_name`` in ``experiment``; else nowhere (the report is still on disk:
    tracking is an addition, not a requirement). Uses an ``MlflowClient`` rather than the global
    ``mlflow.set_tracking_uri`` so a report never redirects the caller's own tracking.
    """


    clean = {metric_key(k): float(v) for k, v in (metrics or {}).items() if math.isfinite(v)}
    if run_id is not None:
        client = MlflowClient(tracking_uri)
        for path in paths:
            client.log_artifact(run_id, str(path), artifact_path=artifact_path)
        for key, value in clean.items():
            client.log_metric(run_id, key, value)
        return run_id
    active = mlflow.active_run()
    if active is None:
        if tracking_uri is None:
            return None
        client = MlflowClient(tracking_uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
        run = client.create_run(experiment_id, run_name=run_name, tags={"job": "report"})
        for path in paths:
            client.log_artifact(run.info.run_id, str(path), artifact_path=artifact_path)
        for key, value in clean.items():
            client.log_metric(run.info.run_id, key, value)
        client.set_terminated(run.info.run_id)
        return str(run.info.run_id)
    for path in paths:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)
    if clean:
        mlflow.log_metrics(clean)
    return str(active.info.run_id)
