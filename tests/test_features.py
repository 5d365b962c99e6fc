from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from features import FeatureEncoder, FeatureKind, columns_from_frame, columns_from_records, feature_set_for
from features.account import ACCOUNT_FEATURE_SET
from features.listing import LISTING_FEATURE_SET
from features.text import COUNTERFEIT_TERMS, MISLEADING_TERMS, count_term_hits
from triage.entities import ENTITIES

LISTING_RECORDS = [
    {
        "listing_id": "L1", "seller_id": "A1", "created_at": datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        "title": "Gucci bag REPLICA 1:1", "description": "mirror quality, ships fast", "category": "fashion",
        "brand": "gucci", "price": 80.0, "reference_price": 1200.0, "discount_pct": 0.7, "stock": 40,
        "shipping_origin": "CN", "image_hash": "abc", "seller_created_at": datetime(2026, 2, 20, tzinfo=UTC),
        "seller_country": "DE", "seller_verification": "none",
    },
    {
        "listing_id": "L2", "seller_id": "A2", "created_at": datetime(2026, 3, 2, tzinfo=UTC),
        "title": "Garden hose 20m", "category": "home", "price": 25.0,
        # optional fields absent: description, brand, reference price, stock, seller context
    },
    {
        "listing_id": "L3", "seller_id": "A3", "created_at": datetime(2026, 3, 3, tzinfo=UTC),
        "title": "Face cream", "description": "Miracle cure, guaranteed!", "category": "brand_new_category",
        "brand": "unbranded", "price": 10.0, "reference_price": 0.0, "stock": 0,
        "seller_created_at": datetime(2020, 1, 1, tzinfo=UTC), "seller_country": "FR", "shipping_origin": "FR",
    },
]


def test_every_feature_is_declared_once_with_reviewer_text() -> None:
    for feature_set in (feature_set_for(e) for e in ENTITIES.scored_names()):
        names = feature_set.feature_names
        assert len(names) == len(set(names))
        for spec in feature_set.features:
            assert spec.description and "{value" in spec.reason, spec.name
            assert set(spec.inputs) <= {f.name for f in feature_set.inputs}


def test_feature_set_lookup_rejects_unknown_entity() -> None:
    assert feature_set_for("listing") is LISTING_FEATURE_SET
    with pytest.raises(ValueError, match="unknown entity 'order'"):
        feature_set_for("order")


def test_keyword_hits_respect_word_boundaries() -> None:
    texts = np.array(["REPLICA watch 1:1 AAA", "secure copyright-free photos", "Miracle CURE", ""], dtype=object)
    # "copy" inside "copyright" is not the word "copy"
    assert count_term_hits(texts, COUNTERFEIT_TERMS).tolist() == [3.0, 0.0, 0.0, 0.0]
    assert count_term_hits(texts, MISLEADING_TERMS).tolist() == [0.0, 0.0, 2.0, 0.0]  # "secure" is not "cure"


def test_listing_features_compute_documented_signals() -> None:
    columns = columns_from_records(LISTING_RECORDS, LISTING_FEATURE_SET)
    values = FeatureEncoder(LISTING_FEATURE_SET).feature_values(columns)
    assert values["price_to_reference"][0] == pytest.approx(80 / 1200)
    assert np.isnan(values["price_to_reference"][1])  # no reference price: unknown, not zero
    assert np.isnan(values["price_to_reference"][2])  # zero reference price: unknown
    assert values["counterfeit_terms"][0] == 3.0
    assert values["misleading_claims"][2] == 3.0  # miracle, cure, guaranteed
    assert values["seller_age_days"][0] == pytest.approx(9.5, abs=1e-3)
    assert values["ships_abroad"].tolist()[0] == 1.0 and values["ships_abroad"][2] == 0.0
    assert np.isnan(values["ships_abroad"][1])


def test_unseen_and_missing_categories_encode_as_missing() -> None:
    columns = columns_from_records(LISTING_RECORDS, LISTING_FEATURE_SET)
    encoder = FeatureEncoder(LISTING_FEATURE_SET).fit(columns_from_records(LISTING_RECORDS[:2], LISTING_FEATURE_SET))
    matrix = encoder.transform(columns)
    j = LISTING_FEATURE_SET.feature_names.index("category")
    assert not np.isnan(matrix[0, j]) and not np.isnan(matrix[1, j])
    assert np.isnan(matrix[2, j])  # "brand_new_category" was never seen in training
    k = LISTING_FEATURE_SET.feature_names.index("brand")
    assert np.isnan(matrix[1, k])  # brand absent: missing, not a category called ""


def test_frame_and_record_paths_give_identical_matrices() -> None:
    frame = pd.DataFrame(LISTING_RECORDS)
    for col in ("created_at", "seller_created_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    encoder = FeatureEncoder(LISTING_FEATURE_SET).fit(columns_from_frame(frame, LISTING_FEATURE_SET))
    from_frame = encoder.transform_frame(frame)
    from_records = np.vstack([encoder.transform_records([r]) for r in LISTING_RECORDS])
    np.testing.assert_array_equal(from_frame, from_records)


def test_encoder_round_trip_and_schema_mismatch() -> None:
    columns = columns_from_records(LISTING_RECORDS, LISTING_FEATURE_SET)
    encoder = FeatureEncoder(LISTING_FEATURE_SET).fit(columns)
    again = FeatureEncoder.from_dict(encoder.to_dict(), LISTING_FEATURE_SET)
    np.testing.assert_array_equal(encoder.transform(columns), again.transform(columns))
    with pytest.raises(ValueError, match="trained on features"):
        FeatureEncoder.from_dict(encoder.to_dict(), ACCOUNT_FEATURE_SET)


def test_required_frame_field_missing_is_named() -> None:
    frame = pd.DataFrame(LISTING_RECORDS).drop(columns=["price"])
    with pytest.raises(KeyError, match="price"):
        columns_from_frame(frame, LISTING_FEATURE_SET)


def test_account_rates_are_unknown_without_orders() -> None:
    records = [
        {"account_id": "A1", "account_type": "seller", "created_at": datetime(2026, 1, 1, tzinfo=UTC),
         "observed_at": datetime(2026, 1, 11, tzinfo=UTC), "orders_90d": 0, "refunds_90d": 0, "followers": 500},
        {"account_id": "A2", "account_type": "creator", "created_at": datetime(2025, 1, 1, tzinfo=UTC),
         "observed_at": datetime(2026, 1, 1, tzinfo=UTC), "orders_90d": 50, "refunds_90d": 5, "followers": 0},
    ]
    values = FeatureEncoder(ACCOUNT_FEATURE_SET).feature_values(columns_from_records(records, ACCOUNT_FEATURE_SET))
    assert np.isnan(values["refund_rate"][0]) and values["refund_rate"][1] == pytest.approx(0.1)
    assert values["account_age_days"].tolist() == [10.0, 365.0]
    assert values["followers_per_day"][0] == pytest.approx(50.0)
    kinds = {spec.name: spec.kind for spec in ACCOUNT_FEATURE_SET.features}
    assert kinds["verification"] is FeatureKind.CATEGORICAL


def test_exposure_is_declared_with_the_feature_set() -> None:
    columns = columns_from_records(LISTING_RECORDS, LISTING_FEATURE_SET)
    exposure = LISTING_FEATURE_SET.exposure(columns)
    assert exposure.tolist() == [80.0 * 30, 25.0 * 1, 10.0 * 1]  # stock capped at 30; unknown/zero stock = 1 unit


def test_disguised_prohibited_terms_count_like_plain_ones() -> None:
    from features.text import PROHIBITED_TERMS, count_disguised_term_hits, count_term_hits, deobfuscated

    texts = np.array(["Disposable v4pe th-c cart", "0xyc0done tabs, d1screet shipping", "supp.ressor kit",
                      "Disposable vape THC cart", "Wifi signal booster 2.4 GHz", "Replica 1:1 bag"], dtype=object)
    assert deobfuscated(texts)[0] == "disposable vape thc cart"
    assert count_term_hits(texts, PROHIBITED_TERMS).tolist() == [0, 0, 0, 2, 0, 0]
    assert count_disguised_term_hits(texts, PROHIBITED_TERMS).tolist() == [2, 2, 1, 2, 0, 0]
    # a number keeps its digits (only punctuation inside it goes, as inside a word): "80" never reads "8o"
    assert deobfuscated(np.array(["80 lower, 2.4 GHz"], dtype=object))[0] == "80 lower, 24 ghz"
