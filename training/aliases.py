"""Moving a registry alias and remembering it: MLflow keeps only where an alias points now, so every move
is also written to the alias history (which version was champion when) and the audit log."""

from __future__ import annotations

from typing import Any

from mlflow import MlflowClient

from models.registry import alias_version, set_alias
from stores.alias_history import AliasHistory
from stores.audit_log import AuditLog
from stores.engine import make_engine
from stores.schema import create_all
from triage.settings import TriageSettings


def move_alias(
    settings: TriageSettings, client: MlflowClient, model_name: str, alias: str, version: str, *, set_by: str,
    reason: str, detail: dict[str, Any] | None = None,
) -> str | None:
    """Point `alias` at `version`, record the move, and return the version it pointed at before."""
    before = alias_version(client, model_name, alias)
    set_alias(client, model_name, alias, version)
    engine = make_engine(settings.database_url)
    try:
        create_all(engine)
        change = AliasHistory(engine).record(model_name, alias, version, set_by=set_by, reason=reason[:2000])
        AuditLog(engine).record(set_by, "alias_set", model_name, model_version=version, at=change.set_at,
                                detail={"alias": alias, "from": before, "to": version, "reason": reason[:2000],
                                        **(detail or {})})
    finally:
        engine.dispose()
    return before
