"""The models a running service scores with, and how they are swapped when an alias moves.

A `ScorerSet` is immutable; a request takes one reference at its start and uses it to the end, so a swap
(one attribute assignment) can never mix two model versions inside a request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from mlflow import MlflowClient

from models.attribution import Attribution
from models.registry import CHALLENGER, LoadedScorer, alias_version, load_scorer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScorerSet:
    champions: dict[str, LoadedScorer]
    challengers: dict[str, LoadedScorer] = field(default_factory=dict)

    def versions(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {f"{e}@champion": s.version for e, s in self.champions.items()}
        out |= {f"{e}@challenger": (s.version if (s := self.challengers.get(e)) else None) for e in self.champions}
        return out


class RegistryWatcher:
    """Loads the serving alias (champion) and, when present, the shadow alias (challenger) for each entity,
    and reloads when the registry points an alias at another version."""

    def __init__(self, client: MlflowClient, model_names: dict[str, str], serving_alias: str, shadow: bool = True,
                 attribution: Attribution = Attribution.TREESHAP):
        self._client = client
        self._attribution = attribution
        self._names = model_names
        self._alias = serving_alias
        self._shadow = shadow
        self._lock = threading.Lock()
        self._aliases = self._wanted()
        self.current = self._load(self._aliases, previous=None)

    def _wanted(self) -> dict[str, str | None]:
        wanted: dict[str, str | None] = {}
        for entity, name in self._names.items():
            wanted[f"{entity}@champion"] = alias_version(self._client, name, self._alias)
            if self._shadow:
                wanted[f"{entity}@challenger"] = alias_version(self._client, name, CHALLENGER)
        return wanted

    def _load(self, wanted: dict[str, str | None], previous: ScorerSet | None) -> ScorerSet:
        def reuse_or_load(entity: str, alias: str, version: str, loaded: LoadedScorer | None) -> LoadedScorer:
            if loaded is not None and loaded.version == version:
                return loaded
            return load_scorer(self._client, self._names[entity], alias=alias, version=version,
                               attribution=self._attribution)

        champions, challengers = {}, {}
        for entity in self._names:
            version = wanted[f"{entity}@champion"]
            before = previous.champions.get(entity) if previous else None
            # load_scorer raises a clear ModelNotFoundError when the serving alias is missing
            champions[entity] = (
                reuse_or_load(entity, self._alias, version, before) if version is not None
                else load_scorer(self._client, self._names[entity], alias=self._alias, attribution=self._attribution)
            )
            shadow_version = wanted.get(f"{entity}@challenger")
            # a challenger equal to the champion would only duplicate work
            if shadow_version is not None and shadow_version != champions[entity].version:
                shadow_before = previous.challengers.get(entity) if previous else None
                challengers[entity] = reuse_or_load(entity, CHALLENGER, shadow_version, shadow_before)
        # only champions explain (challengers are shadow-scored and logged), so only they are warmed
        return ScorerSet(champions={e: s.warm() for e, s in champions.items()}, challengers=challengers)

    def refresh(self, on_change: Callable[[ScorerSet, ScorerSet], None] | None = None) -> bool:
        """Reload if any alias moved; returns whether the set changed. Safe to call from any thread."""
        with self._lock:
            wanted = self._wanted()
            if wanted == self._aliases:
                return False
            before = self.current
            after = self._load(wanted, previous=before)
            self._aliases = wanted
            if after.versions() == before.versions():
                return False
            self.current = after
        log.info("models reloaded: %s -> %s", before.versions(), after.versions())
        if on_change is not None:
            on_change(before, after)
        return True


class PollingReloader:
    """Polls the registry every `interval` seconds on a daemon thread; errors are logged, never fatal, so
    an unreachable registry leaves the loaded models serving."""

    def __init__(self, watcher: RegistryWatcher, interval: float, on_change: Callable[[ScorerSet, ScorerSet], None]):
        self._watcher = watcher
        self._interval = interval
        self._on_change = on_change
        self._stop = threading.Event()
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="registry-poll", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._watcher.refresh(self._on_change)
                self.last_error = None
            except Exception as exc:  # the poll must survive registry outages; the error is surfaced in health
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("registry poll failed: %s", self.last_error)
