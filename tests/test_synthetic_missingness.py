"""Realistic missing values: per-source rates for listings, per-field rates and a history block for accounts,
real nulls in Parquet, mildly informative and never a giveaway."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from synthetic.config import GeneratorConfig
from synthetic.generator import MarketplaceData, generate_marketplace
from synthetic.io import write_dataset
from synthetic.schema import (
    ACCOUNT_HISTORY_FIELDS,
    NULLABLE,
    OPTIONAL_ACCOUNT_FIELDS,
    OPTIONAL_LISTING_FIELDS,
    TABLES,
)

CONFIG = GeneratorConfig(seed=13, n_accounts=6000, n_listings=80000)
MISSING = CONFIG.missingness


@pytest.fixture(scope="module")
def data() -> MarketplaceData:
    return generate_marketplace(CONFIG)


def _close(observed: float, expected: float, n: int, slack: float) -> bool:
    """Within four binomial standard errors, plus ``slack`` (relative) for the mildly informative part."""
    se = np.sqrt(max(expected * (1 - expected), 1e-4) / n)
    return abs(observed - expected) <= 4 * se + slack * expected + 1e-3


def test_listing_missing_rates_follow_the_source(data: MarketplaceData) -> None:
    listings = data.listings
    assert set(listings["source"]) == set(MISSING.listing_sources)
    for source, spec in MISSING.listing_sources.items():
        rows = listings[listings["source"] == source]
        # sellers keep to their main channel, so shares vary more than independent draws would
        assert abs(len(rows) / len(listings) - spec.share) < 0.06, source
        for field in OPTIONAL_LISTING_FIELDS:
            expected = spec.missing.get(field, 0.0)
            observed = float(rows[field].isna().mean())
            assert _close(observed, expected, len(rows), slack=0.1), (source, field, observed, expected)
    def rate(source: str, field: str) -> float:
        return float(listings.loc[listings["source"] == source, field].isna().mean())

    assert rate("bulk_feed", "description") > 5 * rate("web", "description")
    assert rate("bulk_feed", "stock") > 4 * rate("web", "stock")
    assert rate("app", "reference_price") > 2 * rate("web", "reference_price")


def test_required_fields_are_never_missing(data: MarketplaceData) -> None:
    for name, frame in data.tables().items():
        for column in TABLES[name]:
            if column not in NULLABLE[name]:
                assert frame[column].notna().all(), (name, column)


def test_account_missing_rates(data: MarketplaceData) -> None:
    accounts = data.accounts
    for field in OPTIONAL_ACCOUNT_FIELDS:
        if field in ACCOUNT_HISTORY_FIELDS:
            continue
        expected = MISSING.account_missing.get(field, 0.0)
        observed = float(accounts[field].isna().mean())
        assert _close(observed, expected, len(accounts), slack=0.1), (field, observed, expected)
    # the 90-day history goes missing as a block, more often for new accounts
    orders_missing = accounts["orders_90d"].isna()
    for field in ACCOUNT_HISTORY_FIELDS:
        assert accounts.loc[orders_missing, field].isna().mean() > 0.6, field
        assert accounts.loc[~orders_missing, field].isna().mean() < 0.15, field
    age = (accounts["observed_at"] - accounts["created_at"]).dt.days
    young = age < MISSING.new_account_days
    assert orders_missing[young].mean() > 3 * orders_missing[~young].mean()


def test_missing_values_are_nulls_in_parquet(data: MarketplaceData, tmp_path: Path) -> None:
    write_dataset(data, tmp_path)
    for name in ("listings", "accounts"):
        table = pq.read_table(tmp_path / f"{name}.parquet")
        frame = getattr(data, name)
        for column in NULLABLE[name]:
            assert table.column(column).null_count == frame[column].isna().sum() > 0, (name, column)
    # a plain pandas reader sees NaN in the counts, not a sentinel
    stock = pd.read_parquet(tmp_path / "listings.parquet")["stock"]
    assert stock.isna().sum() == data.listings["stock"].isna().sum()


def test_missingness_is_mildly_informative_never_a_giveaway(data: MarketplaceData) -> None:
    listings, truth = data.listings, data.listing_truth
    n_missing = listings[list(OPTIONAL_LISTING_FIELDS)].isna().sum(axis=1)
    auc = roc_auc_score(truth["is_violation"], n_missing)
    assert 0.5 < auc < 0.6
    no_description = listings["description"].isna()
    ratio = truth["is_violation"][no_description].mean() / truth["is_violation"][~no_description].mean()
    assert 1.0 < ratio < 2.0
    accounts, account_truth = data.accounts, data.account_truth
    account_missing = accounts[list(OPTIONAL_ACCOUNT_FIELDS)].isna().sum(axis=1)
    assert roc_auc_score(account_truth["is_violation"], account_missing) < 0.65


def test_switching_missingness_off_only_removes_the_nulls(data: MarketplaceData) -> None:
    switched_off = MISSING.model_copy(update={"enabled": False})
    complete = generate_marketplace(CONFIG.model_copy(update={"missingness": switched_off}))
    for name in ("listings", "accounts"):
        full, sparse = getattr(complete, name), getattr(data, name)
        assert full.notna().all().all(), name
        for column in full.columns:
            present = sparse[column].notna()
            expected = full.loc[present, column].astype(sparse[column].dtype)
            pd.testing.assert_series_equal(sparse.loc[present, column], expected)
    for name in ("listing_truth", "account_truth"):
        pd.testing.assert_frame_equal(getattr(complete, name), getattr(data, name))
    assert complete.manifest["missingness"]["enabled"] is False


def test_manifest_records_the_observed_rates(data: MarketplaceData) -> None:
    recorded = data.manifest["missingness"]
    assert recorded["enabled"] is True
    for source, entry in recorded["listings_by_source"].items():
        rows = data.listings[data.listings["source"] == source]
        assert entry["missing"]["description"] == pytest.approx(rows["description"].isna().mean(), abs=1e-4)
    assert recorded["accounts"]["country"] == pytest.approx(data.accounts["country"].isna().mean(), abs=1e-4)
    assert data.manifest["config"]["missingness"]["listing_sources"]["bulk_feed"]["missing"]["description"] == 0.55
