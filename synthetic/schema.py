"""Column names and pandas dtypes of the generated files (see docs/data-contract.md)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# 1.1: truth carries harm_class, harm, harm_if_violation (and item_kind for listings)
SCHEMA_VERSION = "1.1"

STR = "str"
TIMESTAMP = "datetime64[us, UTC]"
FLOAT = "float64"
INT = "int64"
BOOL = "bool"

ACCOUNT_COLUMNS: Mapping[str, str] = MappingProxyType({
    "account_id": STR,
    "account_type": STR,
    "created_at": TIMESTAMP,
    "observed_at": TIMESTAMP,
    "country": STR,
    "verification": STR,
    "category_focus": STR,
    "gmv_90d": FLOAT,
    "orders_90d": INT,
    "refunds_90d": INT,
    "chargebacks_90d": INT,
    "disputes_90d": INT,
    "late_shipments_90d": INT,
    "prior_violations": INT,
    "followers": INT,
    "engagement_rate": FLOAT,
    "listings_count": INT,
})

IDENTIFIER_COLUMNS: Mapping[str, str] = MappingProxyType({
    "account_id": STR,
    "identifier_type": STR,
    "identifier": STR,
})

LISTING_COLUMNS: Mapping[str, str] = MappingProxyType({
    "listing_id": STR,
    "seller_id": STR,
    "created_at": TIMESTAMP,
    "title": STR,
    "description": STR,
    "category": STR,
    "brand": STR,
    "price": FLOAT,
    "reference_price": FLOAT,
    "discount_pct": FLOAT,
    "stock": INT,
    "shipping_origin": STR,
    "image_hash": STR,
})

_TRUTH_COMMON: Mapping[str, str] = MappingProxyType({
    "true_prob": FLOAT,
    "is_violation": BOOL,
    "risk_type": STR,
    "loss_if_missed": FLOAT,
    "exposure_if_violation": FLOAT,
    "label": INT,
    "label_available_at": TIMESTAMP,
    "pattern": STR,
    "harm_class": STR,
    "harm": FLOAT,
    "harm_if_violation": FLOAT,
})

ACCOUNT_TRUTH_COLUMNS: Mapping[str, str] = MappingProxyType({"account_id": STR, **_TRUTH_COMMON, "ring_id": STR})
LISTING_TRUTH_COLUMNS: Mapping[str, str] = MappingProxyType({"listing_id": STR, **_TRUTH_COMMON, "item_kind": STR})

# file stem -> columns, in the order they are written
TABLES: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "accounts": ACCOUNT_COLUMNS,
    "account_identifiers": IDENTIFIER_COLUMNS,
    "listings": LISTING_COLUMNS,
    "account_truth": ACCOUNT_TRUTH_COLUMNS,
    "listing_truth": LISTING_TRUTH_COLUMNS,
})
TRUTH_TABLES: tuple[str, ...] = ("account_truth", "listing_truth")
