"""Listing features: price against the reference, text signals, and the seller context sent with the listing."""

from __future__ import annotations

import numpy as np

from features.context import account_age_days
from features.exposure import listing_exposure
from features.schema import (
    FeatureKind,
    FeatureSet,
    FeatureSpec,
    FieldKind,
    RawColumns,
    RawField,
    raw_column,
)
from features.text import (
    COUNTERFEIT_TERMS,
    MISLEADING_TERMS,
    OFF_PLATFORM_TERMS,
    PROHIBITED_TERMS,
    UNSAFE_TERMS,
    count_disguised_term_hits,
    count_term_hits,
    text_length,
    uppercase_share,
)

LISTING_INPUTS: tuple[RawField, ...] = (
    RawField("listing_id", FieldKind.ID, "Listing id", max_length=64, example="L00000042"),
    RawField("seller_id", FieldKind.ID, "Seller account id", max_length=64, example="A0000007"),
    RawField(
        "created_at",
        FieldKind.TIME,
        "When the listing was created (ISO 8601 with zone)",
        example="2026-04-20T10:15:00Z",
    ),
    RawField("title", FieldKind.TEXT, "Listing title", max_length=500, example="Leather handbag, new"),
    RawField(
        "description",
        FieldKind.TEXT,
        "Listing description",
        required=False,
        max_length=20_000,
        example="Genuine leather, ships in 2 days",
    ),
    RawField("category", FieldKind.CATEGORY, "Marketplace category", max_length=64, example="fashion"),
    RawField(
        "brand",
        FieldKind.CATEGORY,
        "Brand name, 'unbranded' when none",
        required=False,
        max_length=128,
        example="unbranded",
    ),
    RawField("price", FieldKind.NUMBER, "Asking price", ge=0, le=1e9, example=49.9),
    RawField(
        "reference_price",
        FieldKind.NUMBER,
        "Reference price for the category and brand",
        required=False,
        ge=0,
        le=1e9,
        example=55.0,
    ),
    RawField("discount_pct", FieldKind.NUMBER, "Advertised discount, 0-0.95", required=False, ge=0, le=1, example=0.1),
    RawField("stock", FieldKind.INTEGER, "Units on offer", required=False, ge=0, le=1e7, example=12),
    RawField(
        "shipping_origin",
        FieldKind.CATEGORY,
        "ISO-2 country the item ships from",
        required=False,
        max_length=8,
        example="DE",
    ),
    RawField(
        "source",
        FieldKind.CATEGORY,
        "Channel the listing came in through: app, web, bulk_feed or api",
        required=False,
        max_length=16,
        example="app",
    ),
    RawField(
        "image_hash",
        FieldKind.ID,
        "Perceptual hash of the main image",
        required=False,
        max_length=128,
        example="f3a9c2",
    ),
    RawField(
        "seller_created_at",
        FieldKind.TIME,
        "When the seller account was created",
        required=False,
        example="2025-11-02T08:00:00Z",
    ),
    RawField(
        "seller_country", FieldKind.CATEGORY, "Seller's ISO-2 country", required=False, max_length=8, example="DE"
    ),
    RawField(
        "seller_verification",
        FieldKind.CATEGORY,
        "Seller verification: none, email, phone, id",
        required=False,
        max_length=16,
        example="phone",
    ),
)


def _text(c: RawColumns) -> np.ndarray:
    return np.asarray(c["title"], dtype=object) + " " + np.asarray(c["description"], dtype=object)


def _price_to_reference(c: RawColumns) -> np.ndarray:
    ref = c["reference_price"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ref > 0, c["price"] / ref, np.nan)


def _ships_abroad(c: RawColumns) -> np.ndarray:
    origin, country = c["shipping_origin"], c["seller_country"]
    known = (origin != "") & (country != "")
    return np.where(known, (origin != country).astype(np.float64), np.nan)


LISTING_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec(
        "price_to_reference",
        FeatureKind.NUMERIC,
        "Price relative to the category-brand reference",
        "Priced at {value:.0%} of the usual price for this brand and category",
        ("price", "reference_price"),
        _price_to_reference,
        risk_type="counterfeit",
    ),
    FeatureSpec(
        "log_price",
        FeatureKind.NUMERIC,
        "Log of the asking price",
        "Asking price level (log {value:.1f})",
        ("price",),
        lambda c: np.log1p(c["price"]),
    ),
    FeatureSpec(
        "discount_pct",
        FeatureKind.NUMERIC,
        "Advertised discount",
        "Advertises a {value:.0%} discount",
        ("discount_pct",),
        lambda c: c["discount_pct"],
        risk_type="misleading_listing",
    ),
    FeatureSpec(
        "log_stock",
        FeatureKind.NUMERIC,
        "Log of units on offer",
        "Stock level (log {value:.1f} units)",
        ("stock",),
        lambda c: np.log1p(c["stock"]),
    ),
    FeatureSpec(
        "counterfeit_terms",
        FeatureKind.NUMERIC,
        "Counterfeit slang in title or description",
        "Text uses counterfeit slang ({value:.0f} hits, e.g. 'replica', '1:1', 'AAA')",
        ("title", "description"),
        lambda c: count_term_hits(_text(c), COUNTERFEIT_TERMS),
        risk_type="counterfeit",
    ),
    FeatureSpec(
        "prohibited_terms",
        FeatureKind.NUMERIC,
        "Prohibited-item terms in title or description, also when disguised ('v4pe', 'th-c')",
        "Text names prohibited goods ({value:.0f} hits, e.g. vapes, weapon parts, drugs)",
        ("title", "description"),
        lambda c: count_disguised_term_hits(_text(c), PROHIBITED_TERMS),
        risk_type="prohibited_item",
    ),
    FeatureSpec(
        "unsafe_terms",
        FeatureKind.NUMERIC,
        "Unsafe-product terms in title or description",
        "Text points to an unsafe product ({value:.0f} hits, e.g. 'no CE mark', 'recalled')",
        ("title", "description"),
        lambda c: count_term_hits(_text(c), UNSAFE_TERMS),
        risk_type="unsafe_product",
    ),
    FeatureSpec(
        "off_platform_contact",
        FeatureKind.NUMERIC,
        "Invitations to deal off the platform",
        "Text moves the sale off the platform ({value:.0f} hits, e.g. 'DM me on telegram')",
        ("title", "description"),
        lambda c: count_term_hits(_text(c), OFF_PLATFORM_TERMS),
    ),
    FeatureSpec(
        "misleading_claims",
        FeatureKind.NUMERIC,
        "Exaggerated or unverifiable claims",
        "Text makes unverifiable claims ({value:.0f} hits, e.g. 'miracle', 'guaranteed')",
        ("title", "description"),
        lambda c: count_term_hits(_text(c), MISLEADING_TERMS),
        risk_type="misleading_listing",
    ),
    FeatureSpec(
        "title_uppercase_share",
        FeatureKind.NUMERIC,
        "Share of upper-case letters in the title",
        "Title is {value:.0%} upper case",
        ("title",),
        lambda c: uppercase_share(c["title"]),
        risk_type="misleading_listing",
    ),
    FeatureSpec(
        "description_length",
        FeatureKind.NUMERIC,
        "Characters in the description",
        "Description is {value:.0f} characters long",
        ("description",),
        lambda c: text_length(c["description"]),
    ),
    FeatureSpec(
        "seller_age_days",
        FeatureKind.NUMERIC,
        "Seller account age when listing",
        "Seller account was {value:.0f} days old when listing",
        ("created_at", "seller_created_at"),
        lambda c: account_age_days(c, "listing"),
    ),
    FeatureSpec(
        "ships_abroad",
        FeatureKind.NUMERIC,
        "Ships from a country other than the seller's",
        "Ships from another country than the seller's (1 = yes: {value:.0f})",
        ("shipping_origin", "seller_country"),
        _ships_abroad,
    ),
    FeatureSpec(
        "category",
        FeatureKind.CATEGORICAL,
        "Marketplace category",
        "Category: {value}",
        ("category",),
        raw_column("category"),
    ),
    FeatureSpec(
        "brand",
        FeatureKind.CATEGORICAL,
        "Brand",
        "Brand: {value}",
        ("brand",),
        raw_column("brand"),
        risk_type="counterfeit",
    ),
    FeatureSpec(
        "shipping_origin",
        FeatureKind.CATEGORICAL,
        "Shipping origin",
        "Ships from {value}",
        ("shipping_origin",),
        raw_column("shipping_origin"),
    ),
    FeatureSpec(
        "source",
        FeatureKind.CATEGORICAL,
        "Listing channel",
        "Listed through {value}",
        ("source",),
        raw_column("source"),
    ),
    FeatureSpec(
        "seller_verification",
        FeatureKind.CATEGORICAL,
        "Seller verification level",
        "Seller verification: {value}",
        ("seller_verification",),
        raw_column("seller_verification"),
    ),
)

LISTING_FEATURE_SET = FeatureSet(
    entity="listing",
    id_field="listing_id",
    time_field="created_at",
    inputs=LISTING_INPUTS,
    exposure=listing_exposure,
    exposure_inputs=("price", "stock"),
    features=LISTING_FEATURES,
)
