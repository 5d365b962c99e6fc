"""The investigator queue over HTTP: cases enter from scoring, are ranked by the policy, can be opened,
and leave once a reviewer's decision is durably stored."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest

from features import ACCOUNT_FEATURE_SET, LISTING_FEATURE_SET
from serving.client import ScoringClient, records_for_api
from stores.engine import make_engine
from stores.records import EntityType, TimeWindow
from stores.scoring_log import ScoringLogReader
from tests.conftest import RunningServer, TrainedStore, wait_for_scoring_log
from training.datasets import load_entities
from training.split import TimeSplitConfig, time_split

pytestmark = pytest.mark.e2e


def _newest(store: TrainedStore, entity: str, n: int):  # type: ignore[no-untyped-def]
    data = load_entities(store.dataset, entity)
    return data.subset(time_split(data, TimeSplitConfig()).test).frame.tail(n).reset_index(drop=True)


@pytest.fixture(scope="module")
def seeded(bento_server: RunningServer, trained_store: TrainedStore) -> dict[str, list[dict]]:  # type: ignore[type-arg]
    with ScoringClient(bento_server.url) as client:
        listings = client.score("listing", records_for_api(_newest(trained_store, "listing", 600), LISTING_FEATURE_SET))
        accounts = client.score("account", records_for_api(_newest(trained_store, "account", 200), ACCOUNT_FEATURE_SET))
    wait_for_scoring_log(bento_server)
    return {"listing": listings, "account": accounts}


def _queue(server: RunningServer, **body: object) -> list[dict]:  # type: ignore[type-arg]
    response = httpx.post(f"{server.url}/queue", json={"reviewer_id": "r1", **body}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["cases"]  # type: ignore[no-any-return]


def test_scored_cases_enter_the_queue_in_priority_order(bento_server: RunningServer, seeded: dict) -> None:  # type: ignore[type-arg]
    cases = _queue(bento_server, limit=1000)
    queued_ids = {f"{e}:{r['entity_id']}" for e, rs in seeded.items() for r in rs if r["tier"] != "P3"}
    # every queue-worthy entity is in the queue once: on its own, or as a member of its group's case
    in_cases = [c["case_id"] for c in cases if c["entity_type"] != "group"]
    in_cases += [f"account:{m['entity_id']}" for c in cases if c["entity_type"] == "group" for m in c["members"]]
    assert len(in_cases) == len(set(in_cases))
    assert set(in_cases) == queued_ids
    assert [c["position"] for c in cases] == list(range(1, len(cases) + 1))
    priorities = [c["priority"] for c in cases]
    assert priorities == sorted(priorities, reverse=True)
    for case in cases[:20]:
        assert case["tier"] in {"P0", "P1", "P2", "P3"} and case["position_reason"]
        assert case["top_reasons"] and all(r["contribution"] > 0 for r in case["top_reasons"])
        assert case["sla_due_at"] > case["enqueued_at"]
        assert case["model_version"] == "1"


def test_queue_filters_by_tier_and_risk_type(bento_server: RunningServer, seeded: dict) -> None:  # type: ignore[type-arg]
    everything = _queue(bento_server, limit=1000)
    tier = everything[0]["tier"]
    by_tier = _queue(bento_server, tier=tier, limit=1000)
    assert by_tier and all(c["tier"] == tier for c in by_tier)
    assert len(by_tier) == sum(c["tier"] == tier for c in everything)
    risk = next(c["risk_type"] for c in everything if c["risk_type"])
    by_risk = _queue(bento_server, risk_type=risk, limit=1000)
    assert by_risk and all(c["risk_type"] == risk for c in by_risk)


def test_case_view_and_decision_removes_the_case(bento_server: RunningServer, seeded: dict) -> None:  # type: ignore[type-arg]
    first = _queue(bento_server, limit=5)[0]
    detail = httpx.post(f"{bento_server.url}/case", json={"case_id": first["case_id"]}, timeout=30)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    feature_set = LISTING_FEATURE_SET if first["entity_type"] == "listing" else ACCOUNT_FEATURE_SET
    assert {r["feature"] for r in body["reasons"]} == set(feature_set.feature_names)
    assert [f["name"] for f in body["features"]] == feature_set.feature_names
    assert body["position"] == 1

    decision = {
        "decision_id": str(uuid.uuid4()), "case_id": first["case_id"], "entity_type": first["entity_type"],
        "entity_id": first["entity_id"], "outcome": "violation", "risk_type": "counterfeit",
        "enforcement_action": "remove_listing", "loss_amount": 120.5, "reviewer_id": "r1",
        "decided_at": datetime.now(UTC).isoformat(), "model_name": first["model_name"],
        "model_version": first["model_version"], "note": "brand logo mismatch",
    }
    created = httpx.post(f"{bento_server.url}/feedback", json={"decision": decision}, timeout=30)
    assert created.status_code == 201, created.text
    assert created.json()["created"] is True
    again = httpx.post(f"{bento_server.url}/feedback", json={"decision": decision}, timeout=30)
    assert again.status_code == 200 and again.json()["created"] is False
    conflict = httpx.post(f"{bento_server.url}/feedback", json={"decision": decision | {"outcome": "no_violation"}},
                          timeout=30)
    assert conflict.status_code == 409 and conflict.json()["fields"] == ["outcome"]
    remaining = {c["case_id"] for c in _queue(bento_server, limit=1000)}
    assert first["case_id"] not in remaining
    gone = httpx.post(f"{bento_server.url}/case", json={"case_id": first["case_id"]}, timeout=30)
    assert gone.status_code == 404 and "not an open case" in gone.json()["error"]


@pytest.mark.parametrize(
    ("change", "field"),
    [({"outcome": "maybe"}, "outcome"), ({"loss_amount": -1}, "loss_amount"),
     ({"decided_at": "2026-01-01T00:00:00"}, "decided_at"), ({"reviewer_id": ""}, "reviewer_id")],
)
def test_bad_feedback_gets_400_naming_the_field(bento_server: RunningServer, change: dict, field: str) -> None:  # type: ignore[type-arg]
    decision = {"decision_id": str(uuid.uuid4()), "case_id": "listing:x", "entity_type": "listing",
                "entity_id": "x", "outcome": "violation", "reviewer_id": "r1",
                "decided_at": datetime.now(UTC).isoformat()} | change
    response = httpx.post(f"{bento_server.url}/feedback", json={"decision": decision}, timeout=30)
    assert response.status_code == 400, response.text
    assert any(field in [str(p) for p in d["loc"]] for d in response.json()["detail"])


def test_every_score_is_logged_with_its_feature_vector(
    bento_server: RunningServer, trained_store: TrainedStore, seeded: dict  # type: ignore[type-arg]
) -> None:
    reader = ScoringLogReader(make_engine(trained_store.settings.database_url))
    window = TimeWindow(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(minutes=1))
    deadline = time.monotonic() + 20
    wanted = {r["entity_id"] for r in seeded["listing"]}
    while time.monotonic() < deadline:
        logged = {r.entity_id: r for r in reader.scores_in_window(window, entity_type=EntityType.LISTING, served=True)}
        if wanted <= set(logged):
            break
        time.sleep(0.3)
    assert wanted <= set(logged)
    sample = seeded["listing"][0]
    record = logged[sample["entity_id"]]
    assert record.probability == pytest.approx(sample["probability"], rel=1e-12)
    assert record.model_version == "1" and record.model_alias == "champion"
    assert len(record.feature_vector) == len(LISTING_FEATURE_SET.feature_names)


def test_prioritize_rescores_and_orders_by_expected_loss_and_sla(
    bento_server: RunningServer, trained_store: TrainedStore
) -> None:
    frame = _newest(trained_store, "listing", 300)
    records = records_for_api(frame, LISTING_FEATURE_SET)
    now = datetime.now(UTC)
    body = {"listings": [{"record": r, "enqueued_at": (now - timedelta(hours=i % 50)).isoformat()}
                         for i, r in enumerate(records)], "limit": 300}
    response = httpx.post(f"{bento_server.url}/prioritize", json=body, timeout=60)
    assert response.status_code == 200, response.text
    payload = response.json()
    cases = payload["cases"]
    assert payload["model_versions"]["listing"] == "1" and len(cases) == 300
    priorities = [c["priority"] for c in cases]
    assert priorities == sorted(priorities, reverse=True)
    for c in cases:
        assert c["priority"] >= c["expected_loss"] - 1e-9  # urgency only raises priority
        assert c["sla_due_at"] and c["position_reason"]
    # without urgency the order would be by expected loss; the policy keeps that unless an SLA is near
    losses = np.array([c["expected_loss"] for c in cases])
    assert losses[:10].mean() > np.median(losses)
    empty = httpx.post(f"{bento_server.url}/prioritize", json={}, timeout=30)  # nothing to rank: an empty ranking
    assert empty.status_code == 200 and empty.json()["cases"] == []


def test_status_reports_models_and_the_scoring_log(bento_server: RunningServer) -> None:
    status = httpx.post(f"{bento_server.url}/status", timeout=30).json()
    assert status["status"] == "ok"
    assert status["models"]["listing@champion"] == "1" and status["models"]["account@champion"] == "1"
    assert status["scoring_log"]["store_up"] is True and status["scoring_log"]["dropped"] == 0


def test_metrics_expose_scoring_log_and_drift_gauges(bento_server: RunningServer, seeded: dict) -> None:  # type: ignore[type-arg]
    expected = len(seeded["listing"]) + len(seeded["account"])
    deadline = time.monotonic() + 30  # the gauges refresh every few seconds
    while time.monotonic() < deadline:
        text = httpx.get(f"{bento_server.url}/metrics", timeout=30).text
        if "triage_scoring_log_rows" in text and _gauge(text, "triage_scoring_log_rows", state="written") >= expected:
            break
        time.sleep(0.5)
    assert _gauge(text, "triage_scoring_log_rows", state="written") >= expected
    assert _gauge(text, "triage_scoring_log_store_up") == 1.0


def _gauge(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample, whatever the order of its labels."""
    import re

    for line in text.splitlines():
        match = re.match(rf"^{name}(?:{{(.*)}})? (\S+)$", line)
        if match:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(match.group(2))
    raise AssertionError(f"no sample {name}{labels} in /metrics")


def test_drift_figures_from_triage_monitor_become_gauges(
    bento_server: RunningServer, trained_store: TrainedStore
) -> None:
    import json

    folder = trained_store.settings.home / "monitor"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "listing-gauges.json").write_text(json.dumps(
        {"entity": "listing", "feature_psi": {"price_to_reference": 0.42}, "score_psi": 0.07}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = httpx.get(f"{bento_server.url}/metrics", timeout=30).text
        if "triage_feature_psi{" in text:
            break
        time.sleep(0.5)
    assert _gauge(text, "triage_feature_psi", entity="listing", feature="price_to_reference") == 0.42
    assert _gauge(text, "triage_score_psi", entity="listing") == 0.07


def test_linked_accounts_become_one_group_case(bento_server: RunningServer, trained_store: TrainedStore) -> None:
    import pandas as pd

    data = load_entities(trained_store.dataset, "account")
    truth = pd.read_parquet(trained_store.dataset / "account_truth.parquet")
    rings = truth[truth["ring_id"] != ""].groupby("ring_id")["account_id"].apply(list)
    ring = next(ids for ids in rings if len(ids) >= 3)
    loners = truth.loc[truth["ring_id"] == "", "account_id"].head(5).tolist()
    frame = data.frame[data.frame["account_id"].isin(ring + loners)]
    body = {"accounts": [{"record": r} for r in records_for_api(frame, ACCOUNT_FEATURE_SET)], "limit": 100}
    response = httpx.post(f"{bento_server.url}/prioritize", json=body, timeout=60)
    assert response.status_code == 200, response.text
    cases = response.json()["cases"]
    groups = [c for c in cases if c["entity_type"] == "group"]
    in_groups = {m["entity_id"] for g in groups for m in g["members"]}
    assert set(ring) <= in_groups  # the ring is bundled, not split into tickets
    ring_case = next(g for g in groups if set(ring) & {m["entity_id"] for m in g["members"]})
    assert set(ring) <= {m["entity_id"] for m in ring_case["members"]}
    assert ring_case["case_id"] == f"group:{ring_case['entity_id']}" and ring_case["top_reasons"]
    singles = {c["entity_id"] for c in cases if c["entity_type"] == "account"}
    assert not singles & in_groups  # a member never appears as a ticket of its own as well
    assert len(cases) == len(singles) + len(groups)
