"""The real BentoML server over HTTP: contract, ranking on the later window, reasons, and bad input."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from features import columns_from_frame
from features.account import ACCOUNT_FEATURE_SET
from features.listing import LISTING_FEATURE_SET
from models.attribution import Attribution
from models.registry import load_scorer
from serving.client import ScoringClient, records_for_api
from serving.schemas import RECORD_MODELS
from tests.conftest import RunningServer, TrainedStore
from training.datasets import load_entities
from training.split import TimeSplitConfig, time_split

pytestmark = pytest.mark.e2e


def _later_window(store: TrainedStore, entity: str, n: int):  # type: ignore[no-untyped-def]
    data = load_entities(store.dataset, entity)
    split = time_split(data, TimeSplitConfig())
    test = data.subset(split.test)
    rng = np.random.default_rng(3)
    idx = np.sort(rng.choice(len(test), size=min(n, len(test)), replace=False))
    return test.subset(np.isin(np.arange(len(test)), idx))


def test_score_listings_contract_and_ranking(bento_server: RunningServer, trained_store: TrainedStore) -> None:
    later = _later_window(trained_store, "listing", 3000)
    records = records_for_api(later.frame, LISTING_FEATURE_SET)
    with ScoringClient(bento_server.url) as client:
        results = client.score("listing", records)
    assert [r["entity_id"] for r in results] == later.frame["listing_id"].tolist()
    for r in results:
        assert set(r) >= {"entity_id", "entity_type", "probability", "score", "tier", "exposure", "expected_loss",
                          "reasons", "model_version"}
        assert 0.0 <= r["probability"] <= 1.0 and r["score"] == pytest.approx(round(100 * r["probability"], 1))
        assert r["tier"] in {"P0", "P1", "P2", "P3"}
        assert r["expected_loss"] == pytest.approx(r["probability"] * r["exposure"])
        assert r["model_version"] == "1"
        # reasons only for the cases that enter the queue (the documented default)
        assert (r["reasons"] is not None) == (r["tier"] != "P3")
    probability = np.array([r["probability"] for r in results])
    assert roc_auc_score(later.label, probability) > 0.75
    top = np.argsort(-probability)[: len(results) // 20]
    assert later.label[top].mean() > 3 * later.label.mean()


def test_http_scores_equal_in_process_scores(bento_server: RunningServer, trained_store: TrainedStore) -> None:
    later = _later_window(trained_store, "account", 400)
    with ScoringClient(bento_server.url) as client:
        results = client.score("account", records_for_api(later.frame, ACCOUNT_FEATURE_SET), reasons="none")
    loaded = load_scorer(MlflowClient(trained_store.settings.tracking_uri), trained_store.account.model_name)
    local = loaded.artifact.score_columns(columns_from_frame(later.frame, ACCOUNT_FEATURE_SET))
    np.testing.assert_allclose([r["probability"] for r in results], local.probability, rtol=1e-12, atol=1e-15)
    assert all(r["reasons"] is None for r in results)


def test_reasons_on_request_are_reviewer_readable(bento_server: RunningServer, trained_store: TrainedStore) -> None:
    later = _later_window(trained_store, "listing", 50)
    listings = records_for_api(later.frame, LISTING_FEATURE_SET)[:5]
    body = {"listings": listings, "reasons": "all", "top_reasons": 4}
    response = httpx.post(f"{bento_server.url}/score_listings", json=body, timeout=30)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["model"]["name"] == trained_store.listing.model_name
    # the shipped default explains by path attribution, and says so; the same reasons as in process
    assert payload["model"]["reasons_attribution"] == "path"
    scorer = load_scorer(MlflowClient(trained_store.settings.tracking_uri), trained_store.listing.model_name,
                         attribution=Attribution.PATH)
    # as the service sees them: validated (timestamps parsed) and dumped
    validated = [RECORD_MODELS["listing"].model_validate(r).model_dump() for r in listings]
    matrix = scorer.artifact.score_records(validated).matrix
    expected = [[(r.feature, r.contribution) for r in row] for row in scorer.reasons(matrix, top_k=4)]
    served = [[(r["feature"], r["contribution"]) for r in result["reasons"]] for result in payload["results"]]
    assert [[f for f, _ in row] for row in served] == [[f for f, _ in row] for row in expected]
    np.testing.assert_allclose([c for row in served for _, c in row], [c for row in expected for _, c in row],
                               rtol=1e-9, atol=1e-12)
    for result in payload["results"]:
        assert result["reasons"] is not None and len(result["reasons"]) <= 4
        contributions = [reason["contribution"] for reason in result["reasons"]]
        assert contributions == sorted(contributions, reverse=True) and all(c > 0 for c in contributions)
        for reason in result["reasons"]:
            assert reason["feature"] in LISTING_FEATURE_SET.feature_names
            assert reason["text"] and "{" not in reason["text"]


def _good_listing(trained_store: TrainedStore) -> dict:  # type: ignore[type-arg]
    later = _later_window(trained_store, "listing", 1)
    return records_for_api(later.frame, LISTING_FEATURE_SET)[0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price": "cheap"}, "price"),
        ({"price": -5}, "price"),
        ({"discount_pct": 3.0}, "discount_pct"),
        ({"created_at": "2026-04-01T10:00:00"}, "created_at"),  # no time zone
        ({"title": None}, "title"),
        ({"unexpected": 1}, "unexpected"),
        ({"title": "x" * 501}, "title"),
    ],
)
def test_malformed_record_gets_400_naming_the_field(
    bento_server: RunningServer, trained_store: TrainedStore, change: dict, field: str  # type: ignore[type-arg]
) -> None:
    record = _good_listing(trained_store) | change
    response = httpx.post(f"{bento_server.url}/score_listings", json={"listings": [record]}, timeout=30)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert any(field in [str(p) for p in d["loc"]] for d in detail), detail


def test_batch_limits_are_enforced(bento_server: RunningServer, trained_store: TrainedStore) -> None:
    record = _good_listing(trained_store)
    for listings in ([], [record] * 1001):
        response = httpx.post(f"{bento_server.url}/score_listings", json={"listings": listings}, timeout=60)
        assert response.status_code == 400
        assert any("listings" in [str(p) for p in d["loc"]] for d in response.json()["detail"])
    ok = httpx.post(f"{bento_server.url}/score_listings", json={"listings": [record] * 1000, "reasons": "none"},
                    timeout=60)
    assert ok.status_code == 200 and len(ok.json()["results"]) == 1000


def test_unseen_category_and_missing_optional_fields_are_scored(
    bento_server: RunningServer, trained_store: TrainedStore
) -> None:
    minimal = {"listing_id": "Lnew", "seller_id": "Anew", "created_at": "2026-04-01T10:00:00Z",
               "title": "Hand-made kite", "category": "kites_never_seen", "price": 30}
    response = httpx.post(f"{bento_server.url}/score_listings", json={"listings": [minimal]}, timeout=30)
    assert response.status_code == 200, response.text
    assert 0 <= response.json()["results"][0]["probability"] <= 1


def test_health_metrics_and_openapi(bento_server: RunningServer) -> None:
    assert httpx.get(f"{bento_server.url}/livez").status_code == 200
    assert httpx.get(f"{bento_server.url}/readyz").status_code == 200
    assert "bentoml_service_request" in httpx.get(f"{bento_server.url}/metrics").text
    spec = httpx.get(f"{bento_server.url}/docs.json").json()
    assert {"/score_listings", "/score_accounts"} <= set(spec["paths"])
