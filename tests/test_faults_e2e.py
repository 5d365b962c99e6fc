"""Faults against the real server, on loopback, each with its own server and store: `kill -9` while decisions
are written (nothing acknowledged is lost), the store and the registry going away under scoring (scoring
continues, /status says degraded, the scoring log spools), and start-up with no model or a corrupt one (a
clear message, never ready)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from mlflow import MlflowClient

from stores.api_keys import Role
from stores.decisions import DecisionStore
from stores.engine import make_engine
from tests.conftest import RunningServer, TrainedStore, stop_server
from tests.conftest_stores import create_postgres_database, drop_postgres_database, postgres_url, random_database_name
from tests.test_auth import auth_headers, make_keys, start_authed_server

pytest_plugins = ["tests.conftest_stores"]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LISTING = {"listing_id": "L1", "seller_id": "A7", "created_at": "2026-04-20T10:15:00Z", "title": "Leather bag",
           "category": "fashion", "brand": "Gucci", "price": 80.0, "reference_price": 1500.0, "stock": 40}
WRITERS = 4


def wait_for(condition: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def decision_body(decision_id: str) -> dict[str, Any]:
    return {"decision": {"decision_id": decision_id, "case_id": "listing:L1", "entity_type": "listing",
                         "entity_id": "L1", "outcome": "violation", "reviewer_id": "kill-test",
                         "decided_at": datetime.now(UTC).isoformat()}}


def copy_registry(trained_store: TrainedStore, home: Path) -> str:
    """A private copy of the MLflow database (the artifacts stay shared, read-only)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(trained_store.settings.home) / "mlflow.db", home / "mlflow.db")
    return f"sqlite:///{home / 'mlflow.db'}"


def kill_9_everything(server: RunningServer) -> None:
    """SIGKILL the server and its workers at once. The workers run in their own sessions (circus setsid()s
    them), so killing the server's process group would leave the worker serving."""
    parent = psutil.Process(server.process.pid)
    processes = [parent, *parent.children(recursive=True)]
    assert len(processes) >= 2, "expected the server and at least one worker"
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(processes, timeout=30)


# -- kill -9 while feedback is written -----------------------------------------------------------------
def test_every_acknowledged_decision_survives_kill_9(trained_store: TrainedStore, tmp_path: Path) -> None:
    home = tmp_path / "home"
    store_url = f"sqlite:///{(home / 'triage.db').resolve()}"
    keys = make_keys(store_url)
    env = {"TRIAGE_HOME": str(home), "TRIAGE_MLFLOW_TRACKING_URI": trained_store.settings.tracking_uri,
           "TRIAGE_RELOAD_POLL_SECONDS": "0"}
    server = start_authed_server(env, tmp_path / "serve.log")
    acknowledged: list[str] = []
    before_kill = 0
    attempted: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer() -> None:
        with httpx.Client(base_url=server.url, timeout=10, headers=auth_headers(keys[Role.REVIEWER])) as client:
            while not stop.is_set():
                decision_id = uuid.uuid4().hex
                with lock:
                    attempted.append(decision_id)
                try:
                    response = client.post("/feedback", json=decision_body(decision_id))
                except httpx.HTTPError:
                    continue  # the server is gone: unacknowledged, may or may not be stored
                if response.status_code in (200, 201):
                    with lock:
                        acknowledged.append(decision_id)

    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    try:
        for thread in threads:
            thread.start()
        assert wait_for(lambda: len(acknowledged) >= 300, timeout=120, interval=0.01)
        with lock:
            before_kill = len(attempted)
        kill_9_everything(server)
        server.process.wait(timeout=30)
        time.sleep(1.0)  # let in-flight client calls fail
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        stop_server(server.process)
    engine = make_engine(store_url)
    try:
        store = DecisionStore(engine)
        missing = [d for d in acknowledged if store.get(d) is None]
        stored = sum(store.get(d) is not None for d in attempted)
    finally:
        engine.dispose()
    print(f"\nkill -9: {before_kill} posted before the kill ({len(attempted)} with the refused ones after it), "
          f"{len(acknowledged)} acknowledged, {stored} stored, {len(missing)} acknowledged but missing")
    assert missing == []
    assert stored >= len(acknowledged)


# -- dependencies going away under scoring -----------------------------------------------------------------
def test_scoring_continues_when_the_store_and_then_the_registry_go_away(
    trained_store: TrainedStore, postgres_admin: tuple[str, str], tmp_path: Path
) -> None:
    database = random_database_name()
    create_postgres_database(postgres_admin, database)
    store_url = postgres_url(postgres_admin[0], database)
    keys = make_keys(store_url)
    home = tmp_path / "home"
    tracking_uri = copy_registry(trained_store, home)
    env = {"TRIAGE_HOME": str(home), "TRIAGE_MLFLOW_TRACKING_URI": tracking_uri, "TRIAGE_STORE_URL": store_url,
           "TRIAGE_RELOAD_POLL_SECONDS": "0.5"}
    server = start_authed_server(env, tmp_path / "serve.log")
    scorer, admin = auth_headers(keys[Role.SCORER]), auth_headers(keys[Role.ADMIN])
    try:
        def score() -> httpx.Response:
            return httpx.post(f"{server.url}/score_listings", json={"listings": [LISTING], "reasons": "none"},
                              headers=scorer, timeout=30)

        def status() -> dict[str, Any]:
            response = httpx.post(f"{server.url}/status", headers=admin, timeout=30)
            assert response.status_code == 200, response.text
            return response.json()

        assert score().status_code == 200
        assert (before := status())["status"] == "ok", before
        # the store goes away: the database is dropped with its connections terminated
        drop_postgres_database(postgres_admin, database)
        codes = [score().status_code for _ in range(30)]
        assert codes == [200] * 30
        assert wait_for(lambda: (s := status())["status"] == "degraded" and not s["scoring_log"]["store_up"]
                        and s["scoring_log"]["spooled"] > 0, timeout=60)
        during_store_outage = status()
        assert during_store_outage["registry_poll_error"] is None
        # then the registry: its SQLite file is overwritten in place (the registry's pooled connections keep a
        # renamed or deleted file open and would go on reading it, so only the same inode shows the outage)
        with (home / "mlflow.db").open("r+b") as registry_file:
            registry_file.truncate(0)
            registry_file.write(b"this is not a database" * 100)
        assert wait_for(lambda: status()["registry_poll_error"] is not None, timeout=60)
        codes = [score().status_code for _ in range(30)]
        assert codes == [200] * 30
        final = status()
        print(f"\nstore down: {during_store_outage['scoring_log']}\nregistry down: {final['registry_poll_error']}")
        assert final["status"] == "degraded" and final["models"]["listing@champion"] == "1"
    finally:
        stop_server(server.process)
        drop_postgres_database(postgres_admin, database)


# -- start-up without a usable model ----------------------------------------------------------------------
def assert_never_ready(server: RunningServer, message: str, timeout: float = 120.0) -> str:
    """Waits until the log has `message`; then the server must not be ready. Returns how it ended."""
    try:
        found = wait_for(lambda: message in server.log.read_text(errors="replace"), timeout=timeout, interval=0.5)
        assert found, server.log.read_text(errors="replace")[-3000:]
        time.sleep(3)
        exited = server.process.poll() is not None
        if not exited:
            try:
                ready = httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False
            assert not ready
        return f"exited with {server.process.returncode}" if exited else "running, never ready"
    finally:
        stop_server(server.process)


def test_startup_with_an_empty_registry_fails_with_a_clear_message(tmp_path: Path) -> None:
    home = tmp_path / "empty-home"
    server = start_authed_server({"TRIAGE_HOME": str(home), "TRIAGE_MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db"},
                                 tmp_path / "serve.log", wait_ready=False)
    outcome = assert_never_ready(server, "has no alias 'champion' (train and promote one first)")
    print(f"\nempty registry: {outcome}")


def test_startup_with_a_corrupt_artifact_fails_with_a_clear_message(
    trained_store: TrainedStore, tmp_path: Path
) -> None:
    # a full copy (registry and artifacts) with the registry's paths pointed at the copy, then one file broken
    original = Path(trained_store.settings.home).resolve()
    home = (tmp_path / "corrupt-home").resolve()
    home.mkdir()
    shutil.copy(original / "mlflow.db", home / "mlflow.db")
    shutil.copytree(original / "mlartifacts", home / "mlartifacts")
    with sqlite3.connect(home / "mlflow.db") as db:
        for column in ("source", "storage_location"):
            db.execute(f"UPDATE model_versions SET {column} = replace({column}, ?, ?)", (str(original), str(home)))
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    name = trained_store.settings.model_name("listing")
    source = MlflowClient(tracking_uri).get_model_version_download_uri(name, "1")
    assert str(home) in source
    booster = next(Path(source.removeprefix("file://")).rglob("booster.txt"))
    booster.write_text("tree\nversion=v4\nthis is not a LightGBM model\n")
    server = start_authed_server({"TRIAGE_HOME": str(home), "TRIAGE_MLFLOW_TRACKING_URI": tracking_uri},
                                 tmp_path / "serve.log", wait_ready=False)
    outcome = assert_never_ready(server, "booster")
    log = server.log.read_text(errors="replace")
    print(f"\ncorrupt artifact: {outcome}; last error line: "
          f"{next((line for line in reversed(log.splitlines()) if 'Error' in line), '?')[:300]}")
