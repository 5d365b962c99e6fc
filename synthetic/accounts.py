"""The account population: hidden intent, fraud rings and the observable account snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from synthetic._types import BoolArray, FloatArray, IntArray, choose, choose_rows, lognormal, sigmoid
from synthetic.config import GeneratorConfig, RingConfig
from synthetic.timeline import sample_days
from synthetic.vocab import (
    ACCOUNT_RISK_TYPES,
    CATEGORY_ORDER_VALUE,
    CATEGORY_WEIGHTS,
    COUNTERFEIT_CATEGORY_WEIGHTS,
    COUNTRY_RISK,
    COUNTRY_WEIGHTS,
)

SCAM, COUNTERFEIT, FAKE_ENGAGEMENT = (ACCOUNT_RISK_TYPES.index(t) for t in ACCOUNT_RISK_TYPES)
NO_TYPE = -1

# Per-order event rates by behaviour: benign, scam_seller, counterfeit, fake_engagement. The benign column is
# "normal": the truth measures excess over it and adapted adversaries fall back to it.
EVENT_RATES: Mapping[str, FloatArray] = MappingProxyType({
    "refunds": np.array([0.035, 0.11, 0.08, 0.045]),
    "chargebacks": np.array([0.003, 0.022, 0.010, 0.004]),
    "disputes": np.array([0.015, 0.065, 0.045, 0.018]),
    "late": np.array([0.05, 0.16, 0.09, 0.06]),
})
# Verification mix (none, email, phone, id): established benign, new benign, scheming, ring member.
_VERIFICATION = np.array(
    [
        [0.06, 0.30, 0.32, 0.32],
        [0.18, 0.42, 0.28, 0.12],
        [0.28, 0.40, 0.22, 0.10],
        [0.22, 0.42, 0.26, 0.10],
    ]
)
_CREATOR_CATEGORY_WEIGHTS = (0.12, 0.24, 0.24, 0.06, 0.04, 0.08, 0.10, 0.10, 0.01, 0.01)


@dataclass
class AccountArrays:
    """Column arrays of the account population, including hidden state the truth model needs."""

    n: int
    is_creator: BoolArray
    intent: FloatArray
    scheme: BoolArray
    scheme_type: IntArray
    ring: IntArray
    ring_type: IntArray
    created_days: FloatArray
    observed_days: FloatArray
    country: IntArray
    verification: IntArray
    category: IntArray
    gmv_90d: FloatArray
    orders_90d: IntArray
    refunds_90d: IntArray
    chargebacks_90d: IntArray
    disputes_90d: IntArray
    late_shipments_90d: IntArray
    prior_violations: IntArray
    followers: IntArray
    engagement_rate: FloatArray
    listings_count: IntArray

    @property
    def age_days(self) -> FloatArray:
        return self.observed_days - self.created_days


def ring_sizes(rng: np.random.Generator, rings: RingConfig, n_accounts: int) -> IntArray:
    """Ring sizes from a power law on [min_size, max_size]: many small rings, a few large ones."""
    sizes = np.arange(rings.min_size, rings.max_size + 1)
    weights = sizes.astype(np.float64) ** -1.5
    cap = n_accounts // 2
    if rings.ring_count is not None:
        drawn = sizes[choose(rng, weights, rings.ring_count)]
        keep = np.cumsum(drawn) <= cap
        return drawn[keep].astype(np.int64)
    target = round(rings.member_share * n_accounts)
    if target < rings.min_size:
        return np.zeros(0, dtype=np.int64)
    mean_size = float((sizes * weights).sum() / weights.sum())
    drawn = sizes[choose(rng, weights, int(target / mean_size * 2) + 4)]
    cum = np.cumsum(drawn)
    out = drawn[cum <= min(target, cap)]
    return out.astype(np.int64)


def generate_accounts(
    config: GeneratorConfig, rng: np.random.Generator, cdf: FloatArray
) -> AccountArrays:
    n = config.n_accounts
    rings = config.rings

    # ring membership is decided first; everything observable is then drawn conditional on it
    sizes = ring_sizes(rng, rings, n)
    n_rings = len(sizes)
    type_names = list(rings.type_weights)
    type_probs = np.array([rings.type_weights[t] for t in type_names])
    ring_types_of_ring = np.array(
        [ACCOUNT_RISK_TYPES.index(type_names[i]) for i in choose(rng, type_probs, n_rings)], dtype=np.int64
    )
    if n_rings == 0:
        ring_types_of_ring = np.array([NO_TYPE], dtype=np.int64)  # placeholder so lookups stay vectorised
    members = rng.permutation(n)[: int(sizes.sum())]
    ring = np.full(n, -1, dtype=np.int64)
    ring[members] = np.repeat(np.arange(n_rings), sizes)
    in_ring = ring >= 0
    ring_type = np.where(in_ring, ring_types_of_ring[np.maximum(ring, 0)], NO_TYPE)

    is_creator = rng.random(n) < config.creator_share
    is_creator = np.where(in_ring, ring_type == FAKE_ENGAGEMENT, is_creator)

    # hidden intent: rings share a high ring-level intent, so members resemble each other
    ring_level = rng.normal(1.4, 0.5, max(n_rings, 1))
    intent = rng.standard_normal(n)
    intent = np.where(in_ring, ring_level[np.maximum(ring, 0)] + 0.6 * intent, intent)

    scheme = np.where(in_ring, rng.random(n) < 0.6, rng.random(n) < sigmoid(-3.8 + 1.4 * intent))
    seller_scheme_type = np.where(rng.random(n) < 0.55, SCAM, COUNTERFEIT)
    creator_scheme_type = np.where(rng.random(n) < 0.75, FAKE_ENGAGEMENT, SCAM)
    scheme_type = np.where(is_creator, creator_scheme_type, seller_scheme_type)
    scheme_type = np.where(in_ring, ring_type, np.where(scheme, scheme_type, NO_TYPE))
    behaviour = np.where(scheme, scheme_type + 1, 0)  # 0 benign, else 1 + risk type index

    category = _categories(rng, n, is_creator, scheme_type)

    # ages: a share of honest accounts is new too, so youth alone is only a weak signal
    newcomer = rng.random(n) < 0.15
    age = np.where(newcomer, lognormal(rng, 35.0, 0.9, n), lognormal(rng, 420.0, 1.0, n))
    young_schemer = scheme & (rng.random(n) < 0.5)
    age = np.where(young_schemer, lognormal(rng, 25.0, 0.8, n), age)
    age = np.where(in_ring & (rng.random(n) < 0.6), lognormal(rng, 30.0, 0.8, n), age)
    age = np.clip(age, 0.5, 3650.0)

    observed = sample_days(rng, cdf, n)
    if n_rings:
        # ring accounts are registered and activated in bursts
        burst = sample_days(rng, cdf, n_rings)
        jitter = rng.normal(0.0, 10.0, n)
        observed = np.where(in_ring, np.clip(burst[np.maximum(ring, 0)] + jitter, 0.0, config.days - 1e-6), observed)
    created = observed - age

    country = choose(rng, COUNTRY_WEIGHTS, n)
    risky = choose(rng, np.asarray(COUNTRY_WEIGHTS) * np.exp(3.0 * np.asarray(COUNTRY_RISK)), n)
    country = np.where(scheme & (rng.random(n) < 0.5), risky, country)
    if n_rings:
        ring_country = choose(rng, np.asarray(COUNTRY_WEIGHTS) * np.exp(3.0 * np.asarray(COUNTRY_RISK)), n_rings)
        country = np.where(in_ring & (rng.random(n) < 0.8), ring_country[np.maximum(ring, 0)], country)

    verification_group = np.where(in_ring, 3, np.where(scheme, 2, np.where(age < 90, 1, 0)))
    verification = choose_rows(rng, _VERIFICATION[verification_group])

    activity = np.minimum(1.0, age / 90.0) ** 0.6
    orders_f = np.where(
        is_creator,
        lognormal(rng, 4.0, 1.2, n),
        lognormal(rng, 35.0, 1.3, n) * activity,
    )
    # scam accounts take a burst of orders before they vanish
    orders_f = np.where(scheme & (scheme_type == SCAM), orders_f * lognormal(rng, 2.0, 0.5, n), orders_f)
    orders = rng.poisson(np.clip(orders_f, 0.0, 2e5)).astype(np.int64)
    order_value = np.asarray(CATEGORY_ORDER_VALUE)[category] * lognormal(rng, 1.0, 0.45, n)
    gmv = np.round(orders * order_value * lognormal(rng, 1.0, 0.15, n), 2)

    drift_up = np.exp(0.25 * intent)  # continuous intent leaks into behaviour rates, only weakly

    def events(base: np.ndarray) -> IntArray:
        rate = base[behaviour] * drift_up * lognormal(rng, 1.0, 0.5, n)
        return rng.binomial(orders, np.clip(rate, 0.0, 0.9)).astype(np.int64)

    refunds = events(EVENT_RATES["refunds"])
    chargebacks = events(EVENT_RATES["chargebacks"])
    disputes = events(EVENT_RATES["disputes"])
    late = events(EVENT_RATES["late"])

    prior_rate = 0.04 * (age / 365.0) * np.exp(0.6 * intent) * (1.0 + 3.0 * (scheme & (age > 90)))
    prior_violations = rng.poisson(np.clip(prior_rate, 0.0, 20.0)).astype(np.int64)

    followers, engagement = _social(rng, n, is_creator, scheme & (scheme_type == FAKE_ENGAGEMENT))

    listings_f = np.where(is_creator, 0.0, lognormal(rng, 6.0, 1.2, n))
    listings_f = np.where(is_creator & (rng.random(n) < 0.2), lognormal(rng, 3.0, 1.0, n), listings_f)
    listings_f = np.where(scheme & (scheme_type == COUNTERFEIT), listings_f * 2.5, listings_f)
    listings_f = np.where(in_ring & ~is_creator, lognormal(rng, 9.0, 0.9, n), listings_f)
    listings_f = listings_f * np.minimum(1.0, age / 30.0) ** 0.3
    listings_count = np.round(listings_f).astype(np.int64)

    return AccountArrays(
        n=n,
        is_creator=is_creator,
        intent=intent,
        scheme=scheme,
        scheme_type=scheme_type.astype(np.int64),
        ring=ring,
        ring_type=ring_type.astype(np.int64),
        created_days=created,
        observed_days=observed,
        country=country,
        verification=verification,
        category=category,
        gmv_90d=gmv,
        orders_90d=orders,
        refunds_90d=refunds,
        chargebacks_90d=chargebacks,
        disputes_90d=disputes,
        late_shipments_90d=late,
        prior_violations=prior_violations,
        followers=followers,
        engagement_rate=engagement,
        listings_count=listings_count,
    )


def _categories(rng: np.random.Generator, n: int, is_creator: BoolArray, scheme_type: IntArray) -> IntArray:
    general = choose(rng, CATEGORY_WEIGHTS, n)
    creator = choose(rng, _CREATOR_CATEGORY_WEIGHTS, n)
    counterfeit = choose(rng, COUNTERFEIT_CATEGORY_WEIGHTS, n)
    scam = choose(rng, np.asarray(CATEGORY_WEIGHTS) + np.asarray(COUNTERFEIT_CATEGORY_WEIGHTS), n)
    category = np.where(is_creator, creator, general)
    category = np.where((scheme_type == COUNTERFEIT) & (rng.random(n) < 0.75), counterfeit, category)
    category = np.where((scheme_type == SCAM) & ~is_creator, scam, category)
    return category


def expected_log_engagement(followers: IntArray | FloatArray) -> FloatArray:
    """Typical log engagement for an audience size: bigger audiences engage proportionally less."""
    return np.log(0.06) - 0.25 * np.log(np.maximum(np.asarray(followers, dtype=np.float64), 1.0) / 1000.0)


def _social(
    rng: np.random.Generator, n: int, is_creator: BoolArray, fake: BoolArray
) -> tuple[IntArray, FloatArray]:
    creator_followers = lognormal(rng, 2500.0, 1.5, n)
    creator_followers = np.where(fake, creator_followers * lognormal(rng, 6.0, 0.6, n), creator_followers)
    shop = rng.random(n) < 0.2
    seller_followers = np.where(shop, lognormal(rng, 120.0, 1.2, n), 0.0)
    followers = np.round(np.where(is_creator, creator_followers, seller_followers)).astype(np.int64)

    engagement = np.exp(expected_log_engagement(followers) + 0.35 * rng.standard_normal(n))
    # bought followers dilute engagement; engagement pods inflate it
    bought = rng.random(n) < 0.65
    engagement = np.where(fake & bought, engagement * lognormal(rng, 0.18, 0.4, n), engagement)
    engagement = np.where(fake & ~bought, engagement * lognormal(rng, 3.5, 0.4, n), engagement)
    posts = is_creator | (shop & (rng.random(n) < 0.5))
    engagement = np.where(posts & (followers > 0), np.clip(engagement, 0.0, 5.0), 0.0)
    return followers, np.round(engagement, 5).astype(np.float64)
