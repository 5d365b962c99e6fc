"""Column names and pandas dtypes of the generated files (see docs/data-contract.md)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# 2.1: truth carries evaded_tell. 2.0: optional fields can be null (nullable integers), listings carry
# `source`. 1.1: truth carries harm_class, harm and harm_if_violation (listings also item_kind).
SCHEMA_VERSION = "2.1"

STR = "str"
TIMESTAMP = "datetime64[us, UTC]"
FLOAT = "float64"
INT = "int64"
# optional integer fields: pandas' nullable integer (Parquet int64 with nulls)
NULLABLE_INT = "Int64"
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
    "orders_90d": NULLABLE_INT,
    "refunds_90d": NULLABLE_INT,
    "chargebacks_90d": NULLABLE_INT,
    "disputes_90d": NULLABLE_INT,
    "late_shipments_90d": NULLABLE_INT,
    "prior_violations": NULLABLE_INT,
    "followers": NULLABLE_INT,
    "engagement_rate": FLOAT,
    "listings_count": NULLABLE_INT,
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
    "stock": NULLABLE_INT,
    "shipping_origin": STR,
    "image_hash": STR,
    "source": STR,
})

# Fields that may be null (missing) in generated data; every other column is always present.
OPTIONAL_LISTING_FIELDS: tuple[str, ...] = (
    "description", "brand", "reference_price", "discount_pct", "stock", "shipping_origin", "image_hash",
)
ACCOUNT_HISTORY_FIELDS: tuple[str, ...] = (
    "gmv_90d", "orders_90d", "refunds_90d", "chargebacks_90d", "disputes_90d", "late_shipments_90d",
)
OPTIONAL_ACCOUNT_FIELDS: tuple[str, ...] = (
    "country", "verification", "category_focus", *ACCOUNT_HISTORY_FIELDS, "prior_violations", "followers",
    "engagement_rate", "listings_count",
)
LISTING_SOURCES: tuple[str, ...] = ("app", "web", "bulk_feed", "api")

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
    "evaded_tell": STR,
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
# file stem -> the columns that may hold nulls
NULLABLE: Mapping[str, frozenset[str]] = MappingProxyType({
    "accounts": frozenset(OPTIONAL_ACCOUNT_FIELDS),
    "account_identifiers": frozenset(),
    "listings": frozenset(OPTIONAL_LISTING_FIELDS),
    "account_truth": frozenset(),
    "listing_truth": frozenset(),
})
