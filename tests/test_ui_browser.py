"""The reviewer page (`/ui/`) in a real browser against the real BentoML server: queue order, the case view,
a decision recorded with a keyboard shortcut, and an API error shown on the page.

Drives Debian's Chromium (`/usr/bin/chromium`, installed by `scripts/install-browser.sh`) with Playwright;
Playwright never downloads a browser here."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from features.account import ACCOUNT_FEATURE_SET
from features.listing import LISTING_FEATURE_SET
from serving.client import ScoringClient, records_for_api
from tests.conftest import ROOT, RunningServer, TrainedStore
from training.datasets import load_entities
from training.split import TimeSplitConfig, time_split

pytestmark = pytest.mark.e2e

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the Python package `playwright` is not installed (it is in the dev pins)"
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
REVIEWER = "ui-test-reviewer"
VIEWPORT = {"width": 1366, "height": 768}
SLA_TEXT = re.compile(r"^(overdue )?(\d+d \d+h|\d+h \d+m|\d+m)( left)?$")


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        script = ROOT / "scripts" / "install-browser.sh"
        try:
            result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
            why = (result.stderr or result.stdout).strip()[-600:]
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = repr(exc)
        if not CHROMIUM.exists():
            pytest.skip(f"{CHROMIUM} is absent and {script.name} could not install it: {why}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _likely_queued(store: TrainedStore, entity: str, n: int) -> list[dict[str, Any]]:
    data = load_entities(store.dataset, entity)
    test = data.subset(time_split(data, TimeSplitConfig()).test)
    order = np.argsort(-np.asarray(test.label, dtype=float), kind="stable")[:n]  # violations first: they queue
    feature_set = LISTING_FEATURE_SET if entity == "listing" else ACCOUNT_FEATURE_SET
    return records_for_api(test.frame.iloc[np.sort(order)], feature_set)


def _queue(url: str, **filters: Any) -> list[dict[str, Any]]:
    response = httpx.post(f"{url}/queue", json={"reviewer_id": REVIEWER, "limit": 100} | filters, timeout=60)
    assert response.status_code == 200, response.text
    cases: list[dict[str, Any]] = response.json()["cases"]
    return cases


@pytest.fixture(scope="module")
def seeded_queue(bento_server: RunningServer, trained_store: TrainedStore) -> list[dict[str, Any]]:
    """Score listings and accounts: those in P0–P2 become open cases (the log is written off the request path,
    so wait for them)."""
    with ScoringClient(bento_server.url) as client:
        scored = client.score("listing", _likely_queued(trained_store, "listing", 120), reasons="none")
        scored += client.score("account", _likely_queued(trained_store, "account", 60), reasons="none")
    assert any(r["tier"] in {"P0", "P1", "P2"} for r in scored), "seeding scored nothing into the queue"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        cases = _queue(bento_server.url)
        if len(cases) >= 3:
            return cases
        time.sleep(0.5)
    pytest.fail(f"the queue has {len(cases)} cases 60 s after scoring {len(scored)} records")


@pytest.fixture()
def page(browser: Any, bento_server: RunningServer) -> Iterator[Any]:
    ui = httpx.get(f"{bento_server.url}/ui/", timeout=10)
    assert ui.status_code == 200 and "Review queue" in ui.text, (
        f"GET /ui/ answered {ui.status_code}: mount serving.web.ui_app() at /ui on TriageService"
    )
    context = browser.new_context(viewport=VIEWPORT, base_url=bento_server.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _page_case_ids(page: Any) -> list[str]:
    ids: list[str] = page.eval_on_selector_all("#queue-body tr", "rows => rows.map(r => r.dataset.caseId)")
    return ids


def _sign_in(page: Any) -> None:
    page.goto("/ui/")
    page.fill("#reviewer-id", REVIEWER)
    with page.expect_response(lambda r: r.url.endswith("/queue")) as queued:
        page.click("#identity button[type=submit]")
    assert queued.value.status == 200
    page.wait_for_selector("#queue-body tr")


def test_page_is_self_contained(bento_server: RunningServer) -> None:
    html = httpx.get(f"{bento_server.url}/ui/", timeout=10)
    assert html.status_code == 200, f"GET /ui/ answered {html.status_code}: mount serving.web.ui_app() at /ui"
    assert "'self'" in html.headers["content-security-policy"]
    assert not re.search(r"(src|href)=\"(https?:)?//", html.text), "the page must not load anything off-origin"
    for asset in ("app.js", "style.css"):
        assert httpx.get(f"{bento_server.url}/ui/{asset}", timeout=10).status_code == 200


def test_queue_order_case_view_and_decision(
    page: Any, bento_server: RunningServer, seeded_queue: list[dict[str, Any]]
) -> None:
    url = bento_server.url
    _sign_in(page)
    assert page.evaluate("localStorage.getItem('triage.reviewer_id')") == REVIEWER

    # the page shows the queue in the API's order (priorities move with SLA time: re-read on a mismatch)
    reads = 0
    while True:
        reads += 1
        api_ids = [c["case_id"] for c in _queue(url)]
        shown = _page_case_ids(page)
        if shown == api_ids or reads == 3:
            break
        with page.expect_response(lambda r: r.url.endswith("/queue")):
            page.click("#refresh")
        page.wait_for_timeout(100)
    assert shown == api_ids and len(shown) >= 3, f"page and API disagree after {reads} reads"
    api_cases = _queue(url)
    first = api_cases[0]
    row = page.locator("#queue-body tr").first
    assert row.locator(".tier").inner_text() == first["tier"]
    assert row.locator("td").nth(3).inner_text() == f"{first['score']:.1f}"
    assert first["entity_id"] in row.inner_text()
    assert SLA_TEXT.match(row.locator(".sla").inner_text()), row.locator(".sla").inner_text()
    assert "Enter" in page.inner_text(".hints") and "violation" in page.inner_text(".hints")

    # keyboard: move down and back up, open the first case with Enter
    page.keyboard.press("j")
    assert page.get_attribute("#queue-body tr.selected", "data-case-id") == api_ids[1]
    page.keyboard.press("k")
    assert page.get_attribute("#queue-body tr.selected", "data-case-id") == first["case_id"]
    with page.expect_response(lambda r: r.url.endswith("/case")) as opened:
        page.keyboard.press("Enter")
    assert opened.value.status == 200
    page.wait_for_selector("#case-panel:not([hidden])")
    detail = httpx.post(f"{url}/case", json={"case_id": first["case_id"]}, timeout=30).json()
    assert first["entity_id"] in page.inner_text("#case-title")
    reasons = page.locator("#case-reasons li")
    assert reasons.count() == len(detail["reasons"]) > 0
    assert detail["reasons"][0]["text"] in reasons.first.inner_text()
    assert page.locator("#case-reasons .bar.pos").count() == sum(r["contribution"] >= 0 for r in detail["reasons"])
    shown_features = page.eval_on_selector_all("#case-features th[scope=row]", "cells => cells.map(c => c.textContent)")
    assert shown_features == [f["name"] for f in detail["features"]] and shown_features
    if detail.get("members"):
        assert page.locator("#case-members tr").count() == len(detail["members"])

    # an API error is shown from its JSON body, and the case stays
    page.fill("#decision-loss", "1e13")  # above the store's plausible-loss limit: the API answers 400
    page.locator("#decision-loss").blur()
    with page.expect_response(lambda r: r.url.endswith("/feedback")) as rejected:
        page.keyboard.press("v")
    assert rejected.value.status == 400
    page.wait_for_selector("#error:not([hidden])")
    assert "loss_amount" in page.inner_text("#error-text")
    assert first["case_id"] in _page_case_ids(page)

    # a valid decision with the `v` shortcut: stored, confirmed, and the case leaves the page and the queue
    page.fill("#decision-loss", "125.5")
    page.select_option("#decision-enforcement", "warn")
    page.fill("#decision-note", "ui test")
    page.locator("#decision-note").blur()
    with page.expect_request(lambda r: r.url.endswith("/feedback")) as sent:
        page.keyboard.press("v")
    request = sent.value
    response = request.response()
    assert response is not None and response.status == 201, response and response.text()
    payload = request.post_data_json["decision"]
    assert payload["case_id"] == first["case_id"] and payload["outcome"] == "violation"
    assert payload["reviewer_id"] == REVIEWER and payload["loss_amount"] == 125.5
    assert payload["enforcement_action"] == "warn" and payload["note"] == "ui test"
    assert payload["model_version"] == first["model_version"]
    page.wait_for_selector("#status:not([hidden])")
    assert "Recorded" in page.inner_text("#status") and first["entity_id"] in page.inner_text("#status")
    page.wait_for_function(
        "id => ![...document.querySelectorAll('#queue-body tr')].some(r => r.dataset.caseId === id)",
        arg=first["case_id"],
    )
    assert page.locator("#case-panel").is_hidden()
    assert page.locator("#error").is_hidden()

    retry = httpx.post(f"{url}/feedback", json={"decision": payload}, timeout=30)
    assert retry.status_code == 200 and retry.json()["created"] is False, retry.text
    assert first["case_id"] not in [c["case_id"] for c in _queue(url)]


def test_filters_and_help(page: Any, bento_server: RunningServer, seeded_queue: list[dict[str, Any]]) -> None:
    _sign_in(page)
    tier = _queue(bento_server.url)[0]["tier"]
    with page.expect_response(lambda r: r.url.endswith("/queue")) as filtered:
        page.select_option("#filter-tier", tier)
    assert filtered.value.request.post_data_json["tier"] == tier
    page.wait_for_function(
        "t => [...document.querySelectorAll('#queue-body .tier')].every(e => e.textContent === t)", arg=tier
    )
    assert set(page.locator("#queue-body .tier").all_inner_texts()) == {tier}
    assert _page_case_ids(page) == [c["case_id"] for c in _queue(bento_server.url, tier=tier)]

    page.locator("#queue-body tr").first.click()
    page.keyboard.press("?")
    assert page.evaluate("document.getElementById('help').open")
    assert "no violation" in page.inner_text("#help").lower()
    page.keyboard.press("Escape")
    assert not page.evaluate("document.getElementById('help').open")
    # decision keys do nothing without an open case
    page.keyboard.press("n")
    assert page.locator("#case-panel").is_hidden()
    assert "Open a case first" in page.inner_text("#status")
