"""Prometheus gauges the service adds to BentoML's `/metrics`: the scoring log's health (backlog, spool,
drops) and the latest drift figures written by `triage monitor`."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bentoml.metrics import Gauge

from stores.scoring_log import ScoringLogMetrics

log = logging.getLogger(__name__)


class ServiceGauges:
    def __init__(self, gauges_dir: Path, scoring_log: Callable[[], ScoringLogMetrics], interval: float = 5.0):
        self._dir = gauges_dir
        self._scoring_log = scoring_log
        self._interval = interval
        self._stop = threading.Event()
        # BentoML exports metrics in Prometheus multi-process mode: say how workers' values combine
        self.log_rows = Gauge(name="triage_scoring_log_rows", documentation="Scoring log rows by state",
                              labelnames=["state"], multiprocess_mode="livesum")
        self.store_up = Gauge(name="triage_scoring_log_store_up", documentation="1 when the store accepts writes",
                              multiprocess_mode="livemin")
        self.feature_psi = Gauge(name="triage_feature_psi", documentation="PSI of a feature, latest `triage monitor`",
                                 labelnames=["entity", "feature"], multiprocess_mode="livemostrecent")
        self.score_psi = Gauge(name="triage_score_psi", documentation="PSI of the score, latest `triage monitor`",
                               labelnames=["entity"], multiprocess_mode="livemostrecent")
        self._thread = threading.Thread(target=self._run, name="gauges", daemon=True)

    def start(self) -> None:
        self.refresh()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.refresh()

    def refresh(self) -> None:
        metrics = self._scoring_log()
        for state in ("backlog", "in_flight", "spooled", "written", "dropped", "rejected"):
            self.log_rows.labels(state=state).set(float(getattr(metrics, state)))
        self.store_up.set(1.0 if metrics.store_up else 0.0)
        for path in sorted(self._dir.glob("*-gauges.json")):
            try:
                payload: dict[str, Any] = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:  # a half-written file: keep the previous values
                log.warning("cannot read drift gauges %s: %s", path, exc)
                continue
            entity = str(payload.get("entity", path.stem.removesuffix("-gauges")))
            for feature, psi in payload.get("feature_psi", {}).items():
                self.feature_psi.labels(entity=entity, feature=feature).set(float(psi))
            if payload.get("score_psi") is not None:
                self.score_psi.labels(entity=entity).set(float(payload["score_psi"]))
