"""API keys with roles, stored hashed: create, verify, rotate (with a grace period), revoke, list.

A key looks like ``tk_<key_id>_<token>``: ``key_id`` (12 hex characters) is public and names the key in
listings, logs and the audit trail; ``token`` is 32 random bytes (url-safe base64). Only a hash of the
whole key is stored. Keys are high-entropy, so a fast hash is enough (no dictionary to attack, unlike a
password): sha256, or HMAC-sha256 with a server-side pepper when one is configured, so a stolen copy of
the table alone cannot even confirm a leaked key. The secret is returned once, by ``create``/``rotate``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from stores.records import require_text, utc_now
from stores.schema import NAME_LENGTH, api_keys

KEY_PREFIX = "tk_"
# Far above any key we issue (~60 characters); longer input is rejected before hashing.
MAX_SECRET_LENGTH = 256


class Role(StrEnum):
    SCORER = "scorer"
    REVIEWER = "reviewer"
    ADMIN = "admin"

    def allows(self, required: Role) -> bool:
        """Admin may call everything; other roles only their own endpoints."""
        return self is Role.ADMIN or self is required


class UnknownKey(LookupError):
    """No key with this id (or no secret of it that is still valid)."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as the service and the CLI see it; never carries the secret or its hash."""

    key_id: str
    name: str
    role: Role
    created_at: datetime  # when the key (its first secret) was created
    revoked_at: datetime | None
    # verify(): when the presented secret stops working (set on a rotated-out secret); list(): None
    expires_at: datetime | None = None
    active_secrets: int = 1


def _row_info(row: Mapping[Any, Any]) -> KeyInfo:
    return KeyInfo(
        key_id=row["key_id"], name=row["name"], role=Role(row["role"]), created_at=row["created_at"],
        revoked_at=row["revoked_at"], expires_at=row["expires_at"],
    )


def new_secret(key_id: str) -> str:
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(secret: str) -> str | None:
    """The public id inside a key, or None when it is not one of ours (for messages, never for trust)."""
    if not secret.startswith(KEY_PREFIX):
        return None
    key_id, sep, _token = secret[len(KEY_PREFIX):].partition("_")
    return key_id if sep and key_id else None


class ApiKeyStore:
    """Reads and writes the ``api_keys`` table (created by ``stores.migrate.upgrade``)."""

    def __init__(
        self, engine: Engine, *, pepper: bytes | None = None, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._engine = engine
        self._pepper = pepper
        self._clock = clock

    def hash_secret(self, secret: str) -> str:
        data = secret.encode("utf-8", "surrogatepass")
        if self._pepper:
            return hmac.new(self._pepper, data, hashlib.sha256).hexdigest()
        return hashlib.sha256(data).hexdigest()

    def create(self, role: Role | str, name: str) -> tuple[str, str]:
        """A new key; returns ``(key_id, secret)``. The secret is not stored and cannot be shown again."""
        role = Role(role)
        require_text(name, "name", NAME_LENGTH)
        key_id = secrets.token_hex(6)
        secret = new_secret(key_id)
        with self._engine.begin() as connection:
            connection.execute(api_keys.insert().values(
                key_id=key_id, name=name, role=role.value, secret_hash=self.hash_secret(secret),
                created_at=self._clock(), expires_at=None, revoked_at=None,
            ))
        return key_id, secret

    def verify(self, secret: str) -> KeyInfo | None:
        """The key this secret belongs to, if the secret is valid now (not revoked, not past its grace)."""
        if not secret or len(secret) > MAX_SECRET_LENGTH or not secret.startswith(KEY_PREFIX):
            return None
        query = sa.select(api_keys).where(api_keys.c.secret_hash == self.hash_secret(secret))
        with self._engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        if row is None or row["revoked_at"] is not None:
            return None
        if row["expires_at"] is not None and row["expires_at"] <= self._clock():
            return None
        # the hash matched, so the id inside the secret is this row's; checked anyway as a cheap invariant
        if key_id_of(secret) != row["key_id"]:
            return None
        return _row_info(row)

    def revoke(self, key_id: str) -> int:
        """Revoke every secret of the key, at once; returns how many were still valid. Idempotent."""
        now = self._clock()
        with self._engine.begin() as connection:
            if connection.execute(sa.select(sa.func.count()).where(api_keys.c.key_id == key_id)).scalar_one() == 0:
                raise UnknownKey(f"no API key with id {json.dumps(key_id)}")
            result = connection.execute(
                api_keys.update().where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return int(result.rowcount or 0)

    def rotate(self, key_id: str, grace: timedelta = timedelta(0)) -> str:
        """A new secret for the key (same id, name and role). The previous secrets stay valid for ``grace``
        (so clients can be redeployed), or stop at once when ``grace`` is zero. Returns the new secret."""
        if grace < timedelta(0):
            raise ValueError("grace must not be negative")
        now = self._clock()
        secret = new_secret(key_id)
        with self._engine.begin() as connection:
            rows = connection.execute(
                sa.select(api_keys).where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .order_by(api_keys.c.created_at.desc(), api_keys.c.id.desc())
            ).mappings().all()
            live = [r for r in rows if r["expires_at"] is None or r["expires_at"] > now]
            if not live:
                raise UnknownKey(f"no valid API key with id {json.dumps(key_id)} (unknown, revoked or expired)")
            for row in live:
                if grace > timedelta(0):
                    # a secret already in an earlier grace keeps the earlier end
                    end = now + grace if row["expires_at"] is None else min(row["expires_at"], now + grace)
                    change: dict[str, Any] = {"expires_at": end}
                else:
                    change = {"revoked_at": now}
                connection.execute(api_keys.update().where(api_keys.c.id == row["id"]).values(change))
            newest = live[0]
            connection.execute(api_keys.insert().values(
                key_id=key_id, name=newest["name"], role=newest["role"], secret_hash=self.hash_secret(secret),
                created_at=now, expires_at=None, revoked_at=None,
            ))
        return secret

    def list(self, *, include_revoked: bool = True) -> list[KeyInfo]:
        """One entry per key, oldest first, with how many of its secrets are valid now."""
        now = self._clock()
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
            ).mappings().all()
        by_key: dict[str, list[Mapping[Any, Any]]] = {}
        for row in rows:
            by_key.setdefault(row["key_id"], []).append(row)
        keys: list[KeyInfo] = []
        for key_id, key_rows in by_key.items():
            newest = key_rows[-1]
            active = sum(r["revoked_at"] is None and (r["expires_at"] is None or r["expires_at"] > now)
                         for r in key_rows)
            revoked = [r["revoked_at"] for r in key_rows if r["revoked_at"] is not None]
            revoked_at = max(revoked) if active == 0 and revoked else None
            if revoked_at is not None and not include_revoked:
                continue
            keys.append(KeyInfo(
                key_id=key_id, name=newest["name"], role=Role(newest["role"]),
                created_at=key_rows[0]["created_at"], revoked_at=revoked_at, active_secrets=active,
            ))
        return keys
