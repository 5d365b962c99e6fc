"""Plain functions behind `triage keys create|list|revoke|rotate` and `triage audit`: settings in, results out
(the CLI prints them). Each call opens the configured store, creates missing tables, and closes it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.engine import Engine

from stores.api_keys import ApiKeyStore, KeyInfo, Role
from stores.audit_log import AuditEntry, AuditLog
from stores.records import TimeWindow, utc_now
from triage.settings import TriageSettings

T = TypeVar("T")


@contextmanager
def _engine(settings: TriageSettings) -> Iterator[Engine]:
    from stores.engine import make_engine
    from stores.migrate import upgrade

    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def _with_store(settings: TriageSettings, action: Callable[[ApiKeyStore], T]) -> T:
    from serving.auth import pepper_of

    with _engine(settings) as engine:
        return action(ApiKeyStore(engine, pepper=pepper_of(settings)))


def create_key(settings: TriageSettings, role: str, name: str) -> tuple[str, str]:
    """A new key: ``(key_id, secret)``. Print the secret once; it cannot be shown again."""
    return _with_store(settings, lambda store: store.create(Role(role), name))


def list_keys(settings: TriageSettings, include_revoked: bool = True) -> list[KeyInfo]:
    return _with_store(settings, lambda store: store.list(include_revoked=include_revoked))


def revoke_key(settings: TriageSettings, key_id: str) -> int:
    """Revoke every secret of the key; running services refuse it within their cache TTL (5 s)."""
    return _with_store(settings, lambda store: store.revoke(key_id))


def rotate_key(settings: TriageSettings, key_id: str, grace: timedelta = timedelta(0)) -> str:
    """A new secret for the key; the old one keeps working for ``grace``. Returns the new secret."""
    return _with_store(settings, lambda store: store.rotate(key_id, grace))


def query_audit(
    settings: TriageSettings,
    *,
    since: timedelta = timedelta(days=1),
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Audit entries in ``[until - since, until)``, newest first, optionally by actor (key id), action
    (``scored``, ``decided``, ``reloaded``, ``promoted``, ...) or target."""
    end = until or utc_now()
    window = TimeWindow(end - since, end)
    with _engine(settings) as engine:
        return AuditLog(engine).query(window=window, actor=actor, action=action, target=target, limit=limit)
