"""Account features: tenure, verification, trading history ratios and creator engagement."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from features.context import account_age_days
from features.exposure import account_exposure
from features.graph import GraphFeatureConfig, graph_feature_specs, graph_raw_fields
from features.schema import (
    FeatureKind,
    FeatureSet,
    FeatureSpec,
    FieldKind,
    RawColumns,
    RawField,
    raw_column,
)

ACCOUNT_GRAPH_CONFIG = GraphFeatureConfig()
"""Neighbour and group signals of the account link graph (shared devices, payments, addresses, IPs)."""

ACCOUNT_INPUTS: tuple[RawField, ...] = (
    RawField("account_id", FieldKind.ID, "Account id", max_length=64, example="A0000007"),
    RawField("account_type", FieldKind.CATEGORY, "seller or creator", max_length=16, example="seller"),
    RawField("created_at", FieldKind.TIME, "Account creation time", example="2025-11-02T08:00:00Z"),
    RawField(
        "observed_at",
        FieldKind.TIME,
        "When this snapshot is scored; history is as of then",
        example="2026-04-20T10:15:00Z",
    ),
    RawField(
        "country", FieldKind.CATEGORY, "ISO-2 country of registration", required=False, max_length=8, example="DE"
    ),
    RawField(
        "verification", FieldKind.CATEGORY, "none, email, phone or id", required=False, max_length=16, example="phone"
    ),
    RawField("category_focus", FieldKind.CATEGORY, "Main category", required=False, max_length=64, example="fashion"),
    RawField("gmv_90d", FieldKind.NUMBER, "GMV in the last 90 days", required=False, ge=0, le=1e12, example=5400.0),
    RawField("orders_90d", FieldKind.INTEGER, "Orders in the last 90 days", required=False, ge=0, le=1e9, example=120),
    RawField("refunds_90d", FieldKind.INTEGER, "Refunded orders", required=False, ge=0, le=1e9, example=3),
    RawField("chargebacks_90d", FieldKind.INTEGER, "Chargebacks", required=False, ge=0, le=1e9, example=0),
    RawField("disputes_90d", FieldKind.INTEGER, "Buyer disputes", required=False, ge=0, le=1e9, example=1),
    RawField("late_shipments_90d", FieldKind.INTEGER, "Late shipments", required=False, ge=0, le=1e9, example=4),
    RawField(
        "prior_violations",
        FieldKind.INTEGER,
        "Confirmed violations before observed_at",
        required=False,
        ge=0,
        le=1e6,
        example=0,
    ),
    RawField("followers", FieldKind.INTEGER, "Creator followers", required=False, ge=0, le=1e10, example=0),
    RawField(
        "engagement_rate",
        FieldKind.NUMBER,
        "Engagement per follower per post",
        required=False,
        ge=0,
        le=1e3,
        example=0.0,
    ),
    RawField("listings_count", FieldKind.INTEGER, "Live listings", required=False, ge=0, le=1e8, example=15),
    # filled by the service and by training from the link graph (features/graph.py), not sent by callers
    *graph_raw_fields(ACCOUNT_GRAPH_CONFIG),
)


def _per_order(name: str) -> Callable[[RawColumns], np.ndarray]:
    # no orders means the rate is unknown, not zero: LightGBM learns its own branch for missing
    def compute(c: RawColumns) -> np.ndarray:
        orders = c["orders_90d"]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(orders > 0, c[name] / orders, np.nan)

    return compute


def _age_days(c: RawColumns) -> np.ndarray:
    return account_age_days(c, "account")


def _followers_per_day(c: RawColumns) -> np.ndarray:
    return c["followers"] / np.maximum(_age_days(c), 1.0)


ACCOUNT_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec(
        "account_age_days",
        FeatureKind.NUMERIC,
        "Account age",
        "Account is {value:.0f} days old",
        ("created_at", "observed_at"),
        _age_days,
        risk_type="scam_seller",
    ),
    FeatureSpec(
        "log_gmv_90d",
        FeatureKind.NUMERIC,
        "Log of 90-day GMV",
        "90-day GMV level (log {value:.1f})",
        ("gmv_90d",),
        lambda c: np.log1p(c["gmv_90d"]),
    ),
    FeatureSpec(
        "log_orders_90d",
        FeatureKind.NUMERIC,
        "Log of 90-day orders",
        "90-day order volume (log {value:.1f})",
        ("orders_90d",),
        lambda c: np.log1p(c["orders_90d"]),
    ),
    FeatureSpec(
        "gmv_per_order",
        FeatureKind.NUMERIC,
        "Average order value",
        "Average order value {value:.0f}",
        ("gmv_90d", "orders_90d"),
        _per_order("gmv_90d"),
        risk_type="scam_seller",
    ),
    FeatureSpec(
        "refund_rate",
        FeatureKind.NUMERIC,
        "Refunds per order",
        "Refunds on {value:.1%} of orders",
        ("refunds_90d", "orders_90d"),
        _per_order("refunds_90d"),
        risk_type="scam_seller",
    ),
    FeatureSpec(
        "chargeback_rate",
        FeatureKind.NUMERIC,
        "Chargebacks per order",
        "Chargebacks on {value:.1%} of orders",
        ("chargebacks_90d", "orders_90d"),
        _per_order("chargebacks_90d"),
        risk_type="scam_seller",
    ),
    FeatureSpec(
        "dispute_rate",
        FeatureKind.NUMERIC,
        "Disputes per order",
        "Buyer disputes on {value:.1%} of orders",
        ("disputes_90d", "orders_90d"),
        _per_order("disputes_90d"),
        risk_type="scam_seller",
    ),
    FeatureSpec(
        "late_shipment_rate",
        FeatureKind.NUMERIC,
        "Late shipments per order",
        "Ships late on {value:.1%} of orders",
        ("late_shipments_90d", "orders_90d"),
        _per_order("late_shipments_90d"),
        risk_type="scam_seller",
    ),
    FeatureSpec(
        "prior_violations",
        FeatureKind.NUMERIC,
        "Confirmed prior violations",
        "{value:.0f} confirmed prior violations",
        ("prior_violations",),
        lambda c: c["prior_violations"],
        risk_type="scam_seller",
    ),
    FeatureSpec(
        "log_followers",
        FeatureKind.NUMERIC,
        "Log of followers",
        "Follower count level (log {value:.1f})",
        ("followers",),
        lambda c: np.log1p(c["followers"]),
        risk_type="fake_engagement",
    ),
    FeatureSpec(
        "engagement_rate",
        FeatureKind.NUMERIC,
        "Engagement per follower per post",
        "Engagement rate {value:.3f} per follower",
        ("engagement_rate",),
        lambda c: c["engagement_rate"],
        risk_type="fake_engagement",
    ),
    FeatureSpec(
        "followers_per_day",
        FeatureKind.NUMERIC,
        "Followers gained per day of account age",
        "Gained {value:.0f} followers per day of account age",
        ("followers", "created_at", "observed_at"),
        _followers_per_day,
        risk_type="fake_engagement",
    ),
    FeatureSpec(
        "log_listings_count",
        FeatureKind.NUMERIC,
        "Log of live listings",
        "Live listings level (log {value:.1f})",
        ("listings_count",),
        lambda c: np.log1p(c["listings_count"]),
    ),
    FeatureSpec(
        "account_type",
        FeatureKind.CATEGORICAL,
        "Seller or creator",
        "Account type: {value}",
        ("account_type",),
        raw_column("account_type"),
    ),
    FeatureSpec(
        "country",
        FeatureKind.CATEGORICAL,
        "Country of registration",
        "Registered in {value}",
        ("country",),
        raw_column("country"),
    ),
    FeatureSpec(
        "verification",
        FeatureKind.CATEGORICAL,
        "Verification level",
        "Verification: {value}",
        ("verification",),
        raw_column("verification"),
    ),
    FeatureSpec(
        "category_focus",
        FeatureKind.CATEGORICAL,
        "Main category",
        "Main category: {value}",
        ("category_focus",),
        raw_column("category_focus"),
    ),
    *graph_feature_specs(ACCOUNT_GRAPH_CONFIG),
)

ACCOUNT_FEATURE_SET = FeatureSet(
    entity="account",
    id_field="account_id",
    time_field="observed_at",
    inputs=ACCOUNT_INPUTS,
    exposure=account_exposure,
    exposure_inputs=("gmv_90d", "chargebacks_90d"),
    features=ACCOUNT_FEATURES,
    graph=ACCOUNT_GRAPH_CONFIG,
)
