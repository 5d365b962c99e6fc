"""Which model version held which alias (champion, challenger, ...) when."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from stores.records import ModelAlias, require_aware_utc, require_text, utc_now
from stores.schema import ID_LENGTH, NAME_LENGTH, NOTE_LENGTH, SHORT_TEXT_LENGTH, VERSION_LENGTH, alias_history


@dataclass(frozen=True, slots=True)
class AliasChange:
    """``alias`` of ``model_name`` pointed at ``version`` from ``set_at`` (``version=None``: removed)."""

    model_name: str
    alias: str
    version: str | None
    set_at: datetime
    set_by: str
    reason: str

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> AliasChange:
        return cls(
            model_name=row["model_name"],
            alias=row["alias"],
            version=row["version"],
            set_at=row["set_at"],
            set_by=row["set_by"],
            reason=row["reason"],
        )


@dataclass(frozen=True, slots=True)
class AliasPeriod:
    """``alias`` pointed at ``version`` from ``start`` until ``end`` (None: it still does)."""

    alias: str
    version: str
    start: datetime
    end: datetime | None
    set_by: str
    reason: str


def alias_periods(changes: Sequence[AliasChange], alias: str | None = None) -> list[AliasPeriod]:
    """The periods during which each alias held a version, from the moves (oldest first)."""
    out: list[AliasPeriod] = []
    aliases = sorted({c.alias for c in changes}) if alias is None else [alias]
    for name in aliases:
        moves = [c for c in changes if c.alias == name]
        for move, after in zip(moves, [*moves[1:], None], strict=True):
            if move.version is not None:
                out.append(AliasPeriod(name, move.version, move.set_at, None if after is None else after.set_at,
                                       move.set_by, move.reason))
    return out


class AliasHistory:
    """Append-only record of alias moves; the registry says where an alias points now, this says when."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    def record(
        self,
        model_name: str,
        alias: str,
        version: str | None,
        *,
        set_by: str,
        reason: str,
        set_at: datetime | None = None,
    ) -> AliasChange:
        """Append an alias move (``version=None`` records the alias being removed)."""
        change = AliasChange(
            model_name=require_text(model_name, "model_name", NAME_LENGTH),
            alias=require_text(alias, "alias", SHORT_TEXT_LENGTH),
            version=None if version is None else require_text(version, "version", VERSION_LENGTH),
            set_at=require_aware_utc(set_at if set_at is not None else self._clock(), "set_at"),
            set_by=require_text(set_by, "set_by", ID_LENGTH),
            reason=require_text(reason, "reason", NOTE_LENGTH),
        )
        with self._engine.begin() as connection:
            connection.execute(
                alias_history.insert().values(
                    model_name=change.model_name,
                    alias=change.alias,
                    version=change.version,
                    set_at=change.set_at,
                    set_by=change.set_by,
                    reason=change.reason,
                )
            )
        return change

    def version_at(self, model_name: str, alias: str, when: datetime) -> str | None:
        """The version ``alias`` pointed at, at ``when`` (None if unset or removed by then)."""
        query = (
            sa.select(alias_history.c.version)
            .where(
                alias_history.c.model_name == model_name,
                alias_history.c.alias == alias,
                alias_history.c.set_at <= require_aware_utc(when, "when"),
            )
            # Later insert wins when two moves share a timestamp.
            .order_by(alias_history.c.set_at.desc(), alias_history.c.id.desc())
            .limit(1)
        )
        with self._engine.connect() as connection:
            return connection.execute(query).scalar_one_or_none()

    def champion_at(self, model_name: str, when: datetime) -> str | None:
        return self.version_at(model_name, ModelAlias.CHAMPION.value, when)

    def history(self, model_name: str, alias: str | None = None) -> list[AliasChange]:
        """All moves for ``model_name`` (optionally one alias), oldest first."""
        query = (
            sa.select(alias_history)
            .where(alias_history.c.model_name == model_name)
            .order_by(alias_history.c.set_at, alias_history.c.id)
        )
        if alias is not None:
            query = query.where(alias_history.c.alias == alias)
        with self._engine.connect() as connection:
            return [AliasChange.from_row(row) for row in connection.execute(query).mappings()]

    def periods(self, model_name: str, alias: str | None = None) -> list[AliasPeriod]:
        """Which version held each alias of ``model_name`` when (the answer to "which version was champion
        when"; MLflow only knows where an alias points now)."""
        return alias_periods(self.history(model_name, alias), alias)
