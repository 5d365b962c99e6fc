"""Configuration of the synthetic marketplace generator (config as data: every knob lives here)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synthetic.items import ITEM_KIND_NAMES
from synthetic.schema import LISTING_SOURCES, OPTIONAL_ACCOUNT_FIELDS, OPTIONAL_LISTING_FIELDS
from synthetic.vocab import ACCOUNT_RISK_TYPES, CATEGORIES, HARM_CLASSES, LISTING_RISK_TYPES

# Columns a covariate drift may scale. Restricted to numeric observables whose scaling keeps the other columns
# meaningful; counts are rounded back to integers after scaling.
COVARIATE_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "listings": ("price", "reference_price", "discount_pct", "stock"),
    "accounts": (
        "gmv_90d",
        "orders_90d",
        "refunds_90d",
        "chargebacks_90d",
        "disputes_90d",
        "late_shipments_90d",
        "followers",
        "engagement_rate",
        "listings_count",
    ),
})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DriftSpec(_Frozen):
    """One injected change, active for entities whose time is on or after ``start_day``.

    ``kind="covariate"``: multiply ``column`` of ``table`` by ``factor`` (the generating relation between
    observables and truth is unchanged, so only the feature distribution moves).

    ``kind="pattern"``: a new fraud pattern in a listing segment. A ``share`` of the listings created from
    ``start_day`` are moved into the segment (``category``/``brand``/``shipping_origin``, any may be None to
    keep the row's own value), behave like ``risk_type`` violations (cheap, optional new ``keyword``), and
    every listing in the segment from ``start_day`` gets ``logit_shift`` added to its true log-odds.
    """

    kind: Literal["covariate", "pattern"]
    name: str
    start_day: float = Field(ge=0)
    # covariate
    table: Literal["listings", "accounts"] = "listings"
    column: str | None = None
    factor: float = Field(default=1.0, gt=0)
    # pattern
    category: str | None = None
    brand: str | None = None
    shipping_origin: str | None = None
    keyword: str | None = None
    risk_type: str = "counterfeit"
    share: float = Field(default=0.02, ge=0, le=1)
    logit_shift: float = 2.5
    keyword_rate: float = Field(default=0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> DriftSpec:
        if self.kind == "covariate":
            allowed = COVARIATE_COLUMNS[self.table]
            if self.column not in allowed:
                raise ValueError(f"covariate drift on {self.table} needs column in {allowed}, got {self.column!r}")
        else:
            if self.table != "listings":
                raise ValueError("pattern drift is defined for listings only")
            if self.category is not None and self.category not in CATEGORIES:
                raise ValueError(f"unknown category {self.category!r}")
            if self.risk_type not in LISTING_RISK_TYPES:
                raise ValueError(f"pattern risk_type must be one of {LISTING_RISK_TYPES}")
            if self.shipping_origin is not None and len(self.shipping_origin) != 2:
                raise ValueError("shipping_origin must be an ISO-2 code")
        return self


class RingConfig(_Frozen):
    """Fraud rings: groups of accounts that share devices, payment instruments, addresses and IP ranges."""

    member_share: float = Field(default=0.025, ge=0, le=0.5)
    # None derives the number of rings from member_share; an int fixes it (sizes are still random).
    ring_count: int | None = Field(default=None, ge=0)
    min_size: int = Field(default=3, ge=2)
    max_size: int = Field(default=40, ge=2)
    # Probability that a member uses the ring's pooled value for an identifier type (else its own).
    share_identifier_prob: float = Field(default=0.7, ge=0, le=1)
    type_weights: dict[str, float] = Field(
        default_factory=lambda: {"scam_seller": 0.45, "counterfeit": 0.35, "fake_engagement": 0.20}
    )
    # Extra true log-odds for ring membership; visible to a model only through shared identifiers.
    logit_bonus: float = 3.0

    @model_validator(mode="after")
    def _check(self) -> RingConfig:
        if self.max_size < self.min_size:
            raise ValueError("max_size must be >= min_size")
        if set(self.type_weights) - set(ACCOUNT_RISK_TYPES) or sum(self.type_weights.values()) <= 0:
            raise ValueError(f"type_weights keys must be among {ACCOUNT_RISK_TYPES} with a positive sum")
        return self


class SharingConfig(_Frozen):
    """Benign identifier sharing, so that sharing alone is not proof of a ring."""

    household_share: float = Field(default=0.05, ge=0, le=0.5)  # accounts in households of 2-3
    office_share: float = Field(default=0.03, ge=0, le=0.5)  # accounts behind a shared office/NAT IP range
    # multi-shop merchants: small groups sharing every identifier type, benign look-alikes of rings
    merchant_share: float = Field(default=0.01, ge=0, le=0.5)
    office_min_size: int = Field(default=4, ge=2)
    office_max_size: int = Field(default=15, ge=2)


class LabelConfig(_Frozen):
    """Investigator label noise and delay."""

    never_confirmed_share: float = Field(default=0.15, ge=0, le=1)
    false_confirmation_rate: float = Field(default=0.002, ge=0, le=1)
    delay_min_days: float = Field(default=3.0, ge=0)
    delay_max_days: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> LabelConfig:
        if self.delay_max_days < self.delay_min_days:
            raise ValueError("delay_max_days must be >= delay_min_days")
        return self


def _check_rates(rates: Mapping[str, float], allowed: tuple[str, ...], what: str, upper: float = 1.0) -> None:
    unknown = set(rates) - set(allowed)
    if unknown:
        raise ValueError(f"{what}: unknown fields {sorted(unknown)} (allowed: {allowed})")
    bad = {k: v for k, v in rates.items() if not 0.0 <= v <= upper}
    if bad:
        raise ValueError(f"{what}: values must lie in [0, {upper}], got {bad}")


class ListingSource(_Frozen):
    """One channel listings arrive through, and how often each optional field is missing from it."""

    share: float = Field(gt=0)
    missing: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> ListingSource:
        _check_rates(self.missing, OPTIONAL_LISTING_FIELDS, "listing source missing rates")
        return self


def _default_sources() -> dict[str, ListingSource]:
    # app: phone forms skip the reference lookup and the discount field; bulk feeds (merchant CSV/XML) often
    # carry no description, stock or discount; web forms are the most complete; the API is what an
    # integrator mapped
    return {
        "app": ListingSource(share=0.45, missing={
            "description": 0.12, "brand": 0.15, "reference_price": 0.25, "discount_pct": 0.25, "stock": 0.10,
            "shipping_origin": 0.06, "image_hash": 0.02}),
        "web": ListingSource(share=0.30, missing={
            "description": 0.04, "brand": 0.06, "reference_price": 0.10, "discount_pct": 0.12, "stock": 0.05,
            "shipping_origin": 0.04, "image_hash": 0.03}),
        "bulk_feed": ListingSource(share=0.15, missing={
            "description": 0.55, "brand": 0.05, "reference_price": 0.08, "discount_pct": 0.60, "stock": 0.45,
            "shipping_origin": 0.20, "image_hash": 0.12}),
        "api": ListingSource(share=0.10, missing={
            "description": 0.15, "brand": 0.10, "reference_price": 0.05, "discount_pct": 0.10, "stock": 0.04,
            "shipping_origin": 0.02, "image_hash": 0.05}),
    }


def _default_account_missing() -> dict[str, float]:
    # per field, independent of the history block below: chargebacks arrive late from the payment processor,
    # sellers who ship themselves have no late-shipment tracking, social profiles are not always linked
    return {
        "country": 0.04, "verification": 0.06, "category_focus": 0.10, "gmv_90d": 0.01, "orders_90d": 0.01,
        "refunds_90d": 0.02, "chargebacks_90d": 0.06, "disputes_90d": 0.03, "late_shipments_90d": 0.08,
        "prior_violations": 0.02, "followers": 0.05, "engagement_rate": 0.08, "listings_count": 0.02,
    }


class MissingnessConfig(_Frozen):
    """Which optional fields are missing (real nulls), per listing source and per account field.

    Missingness is mostly at random given the source. It is mildly informative where that is realistic:
    listings that behave like violations are listed through bulk feeds and the API a little more often
    (``fraud_source_tilt``) and leave some fields out more often (``listing_fraud_omission`` multiplies the
    source's rate); scheming accounts more often have no known country or verification.
    """

    enabled: bool = True
    listing_sources: dict[str, ListingSource] = Field(default_factory=_default_sources)
    # share of a seller's listings that arrive through the seller's main channel (the rest: any channel)
    seller_channel_loyalty: float = Field(default=0.8, ge=0, le=1)
    fraud_source_tilt: dict[str, float] = Field(default_factory=lambda: {"bulk_feed": 1.4, "api": 1.4})
    listing_fraud_omission: dict[str, float] = Field(
        default_factory=lambda: {"description": 1.4, "brand": 1.3, "shipping_origin": 1.5}
    )
    account_missing: dict[str, float] = Field(default_factory=_default_account_missing)
    # the whole 90-day trade history missing together (the history feed had not caught up), more often for
    # accounts younger than new_account_days
    history_block_missing: float = Field(default=0.03, ge=0, le=1)
    new_account_history_block_missing: float = Field(default=0.20, ge=0, le=1)
    new_account_days: float = Field(default=30.0, ge=0)
    account_fraud_omission: dict[str, float] = Field(
        default_factory=lambda: {"country": 1.5, "verification": 1.4}
    )

    @model_validator(mode="after")
    def _check(self) -> MissingnessConfig:
        if not self.listing_sources or set(self.listing_sources) - set(LISTING_SOURCES):
            raise ValueError(f"listing_sources must be a non-empty subset of {LISTING_SOURCES}")
        _check_rates(self.fraud_source_tilt, tuple(self.listing_sources), "fraud_source_tilt", upper=10.0)
        _check_rates(self.listing_fraud_omission, OPTIONAL_LISTING_FIELDS, "listing_fraud_omission", upper=10.0)
        _check_rates(self.account_missing, OPTIONAL_ACCOUNT_FIELDS, "account_missing")
        _check_rates(self.account_fraud_omission, OPTIONAL_ACCOUNT_FIELDS, "account_fraud_omission", upper=10.0)
        return self


class AdversaryConfig(_Frozen):
    """Adaptive adversaries: from a detection wave on, violators stop showing the tell that got them caught.

    From ``wave_day`` (or ``wave_fraction`` of the window), a share of the violating listings and accounts
    (growing linearly to ``adapt_share`` over ``ramp_days``) drops its strongest tell: the one contributing most
    to its true log-odds among the tells listed here. The truth is unchanged (the entity still violates);
    only what can be observed moves, so the other signals (price against reference, seller age and
    verification, shipping origin, image reuse, links, identifiers) remain.

    Listing tells: ``discount`` (a loud advertised discount, redrawn from the ordinary discount distribution)
    and ``term`` (tell-tale words: counterfeit slang, misleading claims and unsafe-product terms are dropped;
    prohibited items are re-spelt in an obfuscated form, since buyers must still find them).
    Account tells: ``dispute_rates`` (refunds, chargebacks and disputes kept at ordinary rates, e.g. by
    refunding off-platform) and ``engagement`` (bought engagement that matches the audience size).
    """

    enabled: bool = True
    wave_fraction: float = Field(default=0.5, ge=0, le=1)
    wave_day: float | None = Field(default=None, ge=0)
    adapt_share: float = Field(default=0.4, ge=0, le=1)
    ramp_days: float = Field(default=14.0, ge=0)
    listing_tells: tuple[Literal["discount", "term"], ...] = ("discount", "term")
    account_tells: tuple[Literal["dispute_rates", "engagement"], ...] = ("dispute_rates", "engagement")

    def start_day(self, days: int) -> float:
        return self.wave_day if self.wave_day is not None else round(days * self.wave_fraction, 3)


def _default_severity() -> dict[str, float]:
    # harm units per person reached: a sold unit of an illegal or dangerous good, a buyer defrauded, a thousand
    # followers misled
    return {
        "illegal_or_dangerous": 10.0, "safety": 6.0, "scam": 1.0, "misleading": 0.5, "ip_infringement": 0.3,
        "fake_engagement": 0.2,
    }


def _default_kind_multiplier() -> dict[str, float]:
    return {
        "controlled_drug": 1.5, "vape_thc": 0.8, "weapon": 1.5, "wildlife": 1.2, "uncertified_electrical": 1.0,
        "recalled_product": 1.3,
    }


class HarmConfig(_Frozen):
    """Harm in the hidden truth, separate from money: ``harm_if_violation = severity x reach x noise``.

    Severity comes from the harm class of the risk type (and the item kind for prohibited and unsafe goods,
    or ``health_claims_multiplier`` for misleading claims in health categories). Reach is the number of people
    the violation reaches: units sold for a listing, buyers (90-day orders + 1) for a seller, thousands of
    followers for a creator. Price does not enter.
    """

    severity: dict[str, float] = Field(default_factory=_default_severity)
    item_kind_multiplier: dict[str, float] = Field(default_factory=_default_kind_multiplier)
    health_claims_multiplier: float = Field(default=3.0, gt=0)
    noise_sigma: float = Field(default=0.25, ge=0)

    @model_validator(mode="after")
    def _check(self) -> HarmConfig:
        needed = set(HARM_CLASSES) - {"none"}
        if set(self.severity) != needed or any(v < 0 for v in self.severity.values()):
            raise ValueError(f"severity needs a value >= 0 for exactly {sorted(needed)}")
        if set(self.item_kind_multiplier) - set(ITEM_KIND_NAMES) or any(
            v < 0 for v in self.item_kind_multiplier.values()
        ):
            raise ValueError(f"item_kind_multiplier keys must be among {ITEM_KIND_NAMES}, values >= 0")
        return self


def _default_start() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


class GeneratorConfig(_Frozen):
    """Everything that determines a generated data set; the same config always yields the same data."""

    seed: int
    n_accounts: int = Field(default=5000, ge=20)
    n_listings: int = Field(default=50000, ge=1)
    start: datetime = Field(default_factory=_default_start)
    days: int = Field(default=120, ge=1)

    # base rates: the intercepts are calibrated so that mean(true_prob) hits these before drift patterns
    listing_base_rate: float = Field(default=0.03, gt=0, lt=0.5)
    account_base_rate: float = Field(default=0.045, gt=0, lt=0.5)
    creator_share: float = Field(default=0.15, ge=0, le=1)
    # weight of the unobservable intent term in the true log-odds: higher makes the task harder
    hidden_intent_weight: float = Field(default=1.0, ge=0)

    # volume: arrivals at the end of the window relative to the start is (1 + volume_growth);
    # weekly_amplitude is the relative weekend uplift
    volume_growth: float = Field(default=0.3, ge=-0.9)
    weekly_amplitude: float = Field(default=0.15, ge=0, le=0.9)

    rings: RingConfig = Field(default_factory=RingConfig)
    sharing: SharingConfig = Field(default_factory=SharingConfig)
    labels: LabelConfig = Field(default_factory=LabelConfig)
    harm: HarmConfig = Field(default_factory=HarmConfig)
    missingness: MissingnessConfig = Field(default_factory=MissingnessConfig)
    adversary: AdversaryConfig = Field(default_factory=AdversaryConfig)

    # drift: the default wave + price inflation at default_drift_start_fraction of the window, plus any extra
    include_default_drift: bool = True
    default_drift_start_fraction: float = Field(default=2 / 3, ge=0, le=1)
    drift: tuple[DriftSpec, ...] = ()

    # the generators of entity types beyond the core (synthetic.extensions): their options, by entity name
    entity_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # naive datetimes are taken as UTC; aware ones are converted so every timestamp shares one zone
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)

    def resolved_drift(self) -> tuple[DriftSpec, ...]:
        """The drift actually applied: the defaults (if enabled) followed by the explicit specs."""
        specs = default_drift(self.days, self.default_drift_start_fraction) if self.include_default_drift else ()
        return (*specs, *self.drift)


def default_drift(days: int, start_fraction: float = 2 / 3) -> tuple[DriftSpec, ...]:
    """A counterfeit wave of a sports brand shipped from a new origin with a new keyword, and price inflation."""
    start_day = round(days * start_fraction, 3)
    return (
        DriftSpec(
            kind="pattern",
            name="counterfeit_wave",
            start_day=start_day,
            category="sports",
            brand="Aerostride",
            shipping_origin="VN",
            keyword="factory batch",
            risk_type="counterfeit",
            share=0.02,
            logit_shift=2.5,
        ),
        DriftSpec(
            kind="covariate",
            name="price_inflation",
            start_day=start_day,
            table="listings",
            column="price",
            factor=1.08,
        ),
    )
