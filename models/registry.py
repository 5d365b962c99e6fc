"""The scorer's round trip through the MLflow model registry, addressed by alias (`champion`, `challenger`)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models.model import ModelInfo
from sqlalchemy.engine import Engine

from models.artifact import Reason, ScorerArtifact
from models.attribution import Attribution
from models.pyfunc import ARTIFACT_KEY, ScorerPyfunc
from stores.alias_history import AliasChange, AliasHistory
from stores.audit_log import AuditLog
from stores.records import utc_now
from stores.schema import NOTE_LENGTH

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT_NAME = "scorer"
_RUNTIME_PACKAGES = ("lightgbm", "numpy", "pandas", "scikit-learn", "scipy", "pyarrow", "mlflow")


class ModelNotFoundError(LookupError):
    """The registry has no such model, version or alias."""


@dataclass(frozen=True)
class LoadedScorer:
    artifact: ScorerArtifact
    name: str
    version: str
    alias: str | None
    attribution: Attribution = Attribution.TREESHAP
    """How this loaded scorer explains its scores (models/attribution.py); serving's choice, not the model's."""

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def warm(self) -> LoadedScorer:
        """Build what explaining needs now (path attribution's leaf table, ~0.5 s), so that the first request
        asking for reasons does not pay for it."""
        if self.attribution is Attribution.PATH:
            self.artifact.path_attribution  # noqa: B018 - built and cached on first access
        return self

    def reasons(self, matrix: np.ndarray, top_k: int | None = 3) -> list[list[Reason]]:
        # one thread: a request explains a few rows and the other core serves the next request
        return self.artifact.reasons(matrix, top_k=top_k, num_threads=1, method=self.attribution)


def pip_requirements() -> list[str]:
    # Explicit pins: MLflow's requirement inference costs seconds per log_model and guesses.
    return [f"{pkg}=={importlib_metadata.version(pkg)}" for pkg in _RUNTIME_PACKAGES]


def log_scorer(artifact: ScorerArtifact, registered_model_name: str | None) -> ModelInfo:
    """Log the artifact as a pyfunc model in the active run and, if named, register a new version."""
    with tempfile.TemporaryDirectory() as tmp:
        path = artifact.save(Path(tmp) / ARTIFACT_KEY)
        return mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT_NAME,
            python_model=ScorerPyfunc(),
            artifacts={ARTIFACT_KEY: str(path)},
            pip_requirements=pip_requirements(),
            registered_model_name=registered_model_name,
            metadata={"entity": artifact.entity, "feature_names": artifact.encoder.feature_names},
        )


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def set_alias(client: MlflowClient, name: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(name, alias, version)


def record_alias_move(
    engine: Engine, model_name: str, alias: str, version: str | None, *, before: str | None, set_by: str,
    reason: str, action: str | None = None, detail: Mapping[str, Any] | None = None, at: datetime | None = None,
) -> AliasChange:
    """Write an alias move to the alias history and the audit log (one instant for both)."""
    at = at if at is not None else utc_now()
    reason = reason[:NOTE_LENGTH]
    change = AliasHistory(engine).record(model_name, alias, version, set_by=set_by, reason=reason, set_at=at)
    AuditLog(engine).record(set_by, action or ("alias_removed" if version is None else "alias_set"), model_name,
                            model_version=version or before, at=at,
                            detail={"alias": alias, "from": before, "to": version, "reason": reason, **(detail or {})})
    return change


def move_alias(
    client: MlflowClient, engine: Engine, model_name: str, alias: str, version: str | None, *, set_by: str,
    reason: str, detail: Mapping[str, Any] | None = None, at: datetime | None = None,
) -> tuple[str | None, AliasChange]:
    """The one alias move: point `alias` at `version` in the registry (None removes the alias) and record it
    in the alias history and the audit log (MLflow keeps only where an alias points now). Returns the version
    it pointed at before, and the recorded change."""
    before = alias_version(client, model_name, alias)
    if version is None:
        client.delete_registered_model_alias(model_name, alias)
    else:
        set_alias(client, model_name, alias, version)
    change = record_alias_move(engine, model_name, alias, version, before=before, set_by=set_by, reason=reason,
                               detail=detail, at=at)
    return before, change


def load_scorer(
    client: MlflowClient, name: str, alias: str | None = CHAMPION, version: str | None = None,
    attribution: Attribution = Attribution.TREESHAP,
) -> LoadedScorer:
    """Load by alias (resolved to a version first, so a concurrent alias move cannot mix two versions)."""
    if version is None:
        if alias is None:
            raise ValueError("give an alias or a version")
        version = alias_version(client, name, alias)
        if version is None:
            raise ModelNotFoundError(f"registered model {name!r} has no alias {alias!r} (train and promote one first)")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            # the version's own storage location: no dependence on the process-wide registry URI
            source = client.get_model_version_download_uri(name, version)
            # only the scorer folder inside the pyfunc model (artifacts/<key>), not the pickled wrapper
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{source.rstrip('/')}/artifacts/{ARTIFACT_KEY}", dst_path=tmp,
                tracking_uri=client.tracking_uri,
            )
        except MlflowException as exc:
            raise ModelNotFoundError(f"cannot fetch models:/{name}/{version}: {exc.message}") from exc
        artifact = ScorerArtifact.load(Path(local))
    return LoadedScorer(artifact=artifact, name=name, version=version, alias=alias, attribution=attribution)
