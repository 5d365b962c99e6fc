"""Sustained mixed load on loopback: 8 clients score listings and accounts and post decisions for 60 s; zero
errors allowed. Prints requests, errors and latency percentiles; never asserts on time."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest

from features.account import ACCOUNT_FEATURE_SET
from features.listing import LISTING_FEATURE_SET
from serving.client import records_for_api
from stores.api_keys import Role
from tests.conftest import RunningServer, TrainedStore, stop_server
from tests.test_auth import auth_headers, make_keys, start_authed_server
from training.datasets import load_entities

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLIENTS = 8
DURATION_S = 60.0
BATCH = 20


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latencies.setdefault(kind, []).append(seconds)
            if error is not None:
                self.errors.append(f"{kind}: {error}")


@pytest.fixture(scope="module")
def load_server(trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[RunningServer, dict[Role, str]]]:
    home = tmp_path_factory.mktemp("load-home")
    keys = make_keys(f"sqlite:///{(home / 'triage.db').resolve()}")
    env = {"TRIAGE_HOME": str(home), "TRIAGE_MLFLOW_TRACKING_URI": trained_store.settings.tracking_uri}
    server = start_authed_server(env, home / "serve.log")
    try:
        yield server, keys
    finally:
        stop_server(server.process)


def client_loop(index: int, url: str, keys: dict[Role, str], work: dict[str, list[dict[str, Any]]],
                tally: Tally, stop_at: float) -> None:
    scorer, reviewer = auth_headers(keys[Role.SCORER]), auth_headers(keys[Role.REVIEWER])
    with httpx.Client(base_url=url, timeout=30) as client:
        i = 0
        while time.monotonic() < stop_at:
            kind = ("listings", "accounts", "feedback")[(i + index) % 3]
            if kind == "feedback":
                record = work["listings"][(i * 7 + index) % len(work["listings"])]
                body: dict[str, Any] = {"decision": {
                    "decision_id": uuid.uuid4().hex, "case_id": f"listing:{record['listing_id']}",
                    "entity_type": "listing", "entity_id": record["listing_id"], "outcome": "no_violation",
                    "reviewer_id": f"load-{index}", "decided_at": datetime.now(UTC).isoformat()}}
                path, headers, ok = "/feedback", reviewer, {201}
            else:
                start = (i * BATCH) % (len(work[kind]) - BATCH)
                body = {kind: work[kind][start:start + BATCH], "reasons": "queued"}
                path, headers, ok = f"/score_{kind}", scorer, {200}
            began = time.perf_counter()
            try:
                response = client.post(path, json=body, headers=headers)
                error = None if response.status_code in ok else f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                error = repr(exc)
            tally.add(kind, time.perf_counter() - began, error)
            i += 1


def test_sustained_mixed_load_has_no_errors(load_server: tuple[RunningServer, dict[Role, str]],
                                            trained_store: TrainedStore) -> None:
    server, keys = load_server
    work = {
        "listings": records_for_api(load_entities(trained_store.dataset, "listing").frame.tail(2000),
                                    LISTING_FEATURE_SET),
        "accounts": records_for_api(load_entities(trained_store.dataset, "account").frame.tail(1000),
                                    ACCOUNT_FEATURE_SET),
    }
    tally = Tally()
    stop_at = time.monotonic() + DURATION_S
    threads = [threading.Thread(target=client_loop, args=(i, server.url, keys, work, tally, stop_at))
               for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DURATION_S + 120)
    status = httpx.post(f"{server.url}/status", headers=auth_headers(keys[Role.ADMIN]), timeout=30).json()
    total = sum(len(v) for v in tally.latencies.values())
    print(f"\nload: {CLIENTS} clients × {DURATION_S:.0f} s: {total} requests, {len(tally.errors)} errors")
    for kind, values in sorted(tally.latencies.items()):
        ms = np.array(values) * 1000
        print(f"  {kind:9s} n={len(ms):6d}  p50={np.percentile(ms, 50):7.1f} ms  p99={np.percentile(ms, 99):7.1f} ms"
              f"  max={ms.max():7.1f} ms")
    print(f"  scoring log after the run: {status['scoring_log']}")
    assert not any(t.is_alive() for t in threads)
    assert tally.errors == [], tally.errors[:10]
    assert total > 0 and set(tally.latencies) == {"listings", "accounts", "feedback"}
    assert status["scoring_log"]["dropped"] == 0
