"""Hidden ground truth: true probabilities, realised violations, risk types, exposure and noisy labels.

``true_prob`` is a logistic function of observable drivers plus a hidden intent term that no feature can
see, so a model can learn most but not all of it. The intercept is calibrated to the configured base rate
before drift patterns add their shift, so a pattern raises the rate in its segment instead of diluting it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from synthetic._types import BoolArray, FloatArray, IntArray, lognormal, logsumexp_rows, sigmoid
from synthetic.accounts import EVENT_RATES, AccountArrays, expected_log_engagement
from synthetic.config import GeneratorConfig, LabelConfig
from synthetic.harm import harm_class_codes, harm_if_violation, listing_multiplier
from synthetic.listings import (
    L_COUNTERFEIT,
    L_MISLEADING,
    L_PROHIBITED,
    L_UNSAFE,
    TYPE_CATEGORY_WEIGHTS,
    Catalog,
    ListingArrays,
)
from synthetic.vocab import (
    ACCOUNT_RISK_TYPES,
    COUNTERFEIT_CATEGORY_WEIGHTS,
    COUNTERFEIT_ORIGINS,
    COUNTRIES,
    COUNTRY_RISK,
    LISTING_RISK_TYPES,
    UNBRANDED,
)
from synthetic.wording import NOUN_OBFUSCATED, NOUN_PLAIN, Wording

# Account event base rates used to express observed counts as log excess over normal (shrunk to it).
_BASE_RATES = {name: float(rates[0]) for name, rates in EVENT_RATES.items()}
_SHRINK_ORDERS = 30.0
# Loss multipliers by listing risk type (LISTING_RISK_TYPES order): prohibited items bring fines, unsafe
# products liability and recall costs, counterfeits brand claims.
_LISTING_LOSS_MULTIPLIER = np.array([1.4, 3.0, 1.0, 2.0])
_RING_LISTING_BONUS = 0.8
# Weights of the tells an adversary can drop, by LISTING_RISK_TYPES index; synthetic/adversary.py ranks a
# row's tells by these to find its strongest one.
LOUD_DISCOUNT_WEIGHT = np.array([1.3, 0.0, 1.5, 0.0])
TERM_WEIGHT = np.array([1.9, 2.6, 1.9, 1.8])


@dataclass(frozen=True)
class Truth:
    true_prob: FloatArray
    is_violation: BoolArray
    risk_type: IntArray
    exposure: FloatArray
    label: IntArray
    label_delay_days: FloatArray
    harm_class: IntArray  # HARM_CLASSES code of risk_type
    harm_if_violation: FloatArray


def _calibrate(base_logit: FloatArray, rate: float) -> float:
    """Intercept b such that mean(sigmoid(b + base_logit)) equals ``rate``."""
    return float(brentq(lambda b: float(sigmoid(b + base_logit).mean()) - rate, -40.0, 40.0, xtol=1e-6))


def excess(count: IntArray, orders: IntArray, base: float) -> FloatArray:
    """Log of the (shrunk) per-order rate over the normal rate, clipped to [-1, 3]."""
    smoothed = (count + base * _SHRINK_ORDERS) / (orders + _SHRINK_ORDERS)
    return np.clip(np.log(smoothed / base), -1.0, 3.0)


def loud_discount_of(discount_pct: FloatArray) -> FloatArray:
    """How far an advertised discount goes beyond an ordinary one (0 up to 40 %)."""
    return 2.0 * np.maximum(discount_pct - 0.4, 0.0)


def names_prohibited_item(lst: ListingArrays, wording: Wording, plain_only: bool) -> BoolArray:
    """Rows whose title names the prohibited good they offer (plainly, or also disguised)."""
    styles = [NOUN_PLAIN] if plain_only else [NOUN_PLAIN, NOUN_OBFUSCATED]
    return np.isin(wording.noun_style[lst.noun], styles) & (lst.bad_type == L_PROHIBITED)


def seller_risk(accounts: AccountArrays) -> FloatArray:
    """Observable account traits that also raise the risk of each of the account's listings."""
    young = np.exp(-accounts.age_days / 45.0)
    return (
        0.5 * (accounts.verification == 0)
        + 0.25 * (accounts.verification == 1)
        + 0.35 * np.log1p(accounts.prior_violations)
        + 0.5 * young
        + 0.2 * excess(accounts.disputes_90d, accounts.orders_90d, _BASE_RATES["disputes"])
    )


def labels(
    rng: np.random.Generator, is_violation: BoolArray, cfg: LabelConfig
) -> tuple[IntArray, FloatArray]:
    n = len(is_violation)
    u = rng.random(n)
    label = np.where(is_violation, u >= cfg.never_confirmed_share, u < cfg.false_confirmation_rate)
    # most cases close within a week or two, a long tail waits for chargebacks and appeals
    delay = cfg.delay_min_days + (cfg.delay_max_days - cfg.delay_min_days) * rng.beta(1.3, 3.5, n)
    return label.astype(np.int64), delay


def account_truth(config: GeneratorConfig, rng: np.random.Generator, acc: AccountArrays) -> Truth:
    n = acc.n
    gamma = config.hidden_intent_weight
    young = np.exp(-acc.age_days / 45.0)
    v_none = (acc.verification == 0).astype(np.float64)
    v_email = (acc.verification == 1).astype(np.float64)
    prior = np.log1p(acc.prior_violations)
    ex_ref = excess(acc.refunds_90d, acc.orders_90d, _BASE_RATES["refunds"])
    ex_cb = excess(acc.chargebacks_90d, acc.orders_90d, _BASE_RATES["chargebacks"])
    ex_disp = excess(acc.disputes_90d, acc.orders_90d, _BASE_RATES["disputes"])
    ex_late = excess(acc.late_shipments_90d, acc.orders_90d, _BASE_RATES["late"])
    country_risk = np.asarray(COUNTRY_RISK)[acc.country]
    cf_category = np.asarray(COUNTERFEIT_CATEGORY_WEIGHTS)[acc.category]
    has_engagement = acc.is_creator & (acc.engagement_rate > 0)
    abnormal = np.where(
        has_engagement,
        np.abs(np.log(np.maximum(acc.engagement_rate, 1e-6)) - expected_log_engagement(acc.followers)),
        0.0,
    )
    big_audience = np.log(np.maximum(acc.followers, 1) / 2500.0)

    z = np.empty((n, len(ACCOUNT_RISK_TYPES)))
    z[:, 0] = (
        0.9 * young + 0.7 * v_none + 0.3 * v_email + 0.6 * ex_cb + 0.5 * ex_disp + 0.4 * ex_late + 0.3 * ex_ref
        + 0.6 * prior + country_risk
    )
    z[:, 1] = (
        -0.3 + 0.7 * young + 0.5 * v_none + 2.5 * cf_category + 0.4 * ex_ref + 0.4 * ex_disp + 0.7 * prior
        + country_risk
    )
    z[:, 2] = np.where(
        acc.is_creator,
        -0.5 + 1.3 * np.maximum(abnormal - 0.4, 0.0) + 0.3 * big_audience + 0.4 * young + 0.4 * v_none,
        -8.0,
    )
    type_index = np.arange(len(ACCOUNT_RISK_TYPES))[None, :]
    own_scheme = acc.scheme[:, None] & (acc.scheme_type[:, None] == type_index)
    hidden = gamma * 0.5 * acc.intent[:, None] + gamma * 2.8 * own_scheme
    ring = config.rings.logit_bonus * (acc.ring_type[:, None] == type_index)
    total = z + hidden + ring
    combined = logsumexp_rows(total)
    intercept = _calibrate(combined, config.account_base_rate)
    true_prob = sigmoid(intercept + combined)
    is_violation = rng.random(n) < true_prob
    risk_type = np.argmax(total, axis=1).astype(np.int64)

    order_value = acc.gmv_90d / np.maximum(acc.orders_90d, 1)
    exposure_by_type = np.stack(
        [
            0.35 * acc.gmv_90d + 2.0 * acc.chargebacks_90d * order_value + 40.0,
            0.20 * acc.gmv_90d + 6.0 * acc.listings_count + 150.0,
            0.03 * acc.followers + 0.05 * acc.gmv_90d + 40.0,
        ],
        axis=1,
    )
    exposure = exposure_by_type[np.arange(n), risk_type] * lognormal(rng, 1.0, 0.6, n)
    label, delay = labels(rng, is_violation, config.labels)
    # people reached: the buyers of the next 90 days for a seller, thousands of followers for a creator
    buyers = acc.orders_90d + 1.0
    reach = np.stack([buyers, buyers, np.maximum(acc.followers, 1) / 1000.0], axis=1)[np.arange(n), risk_type]
    harm_class = harm_class_codes(ACCOUNT_RISK_TYPES)[risk_type]
    harm = harm_if_violation(config.harm, rng, harm_class, reach, np.ones(n))
    return Truth(true_prob, is_violation, risk_type, np.round(exposure, 2), label, delay, harm_class, harm)


def listing_truth(
    config: GeneratorConfig,
    rng: np.random.Generator,
    lst: ListingArrays,
    acc: AccountArrays,
    catalog: Catalog,
    origins: tuple[str, ...],
    wording: Wording,
) -> Truth:
    n = lst.n
    gamma = config.hidden_intent_weight
    log_ratio = np.log(lst.price / lst.reference_price)
    premium = catalog.pair_target[lst.pair]
    unbranded = catalog.pair_brand[lst.pair] == catalog.brand_names.index(UNBRANDED)
    named = [lst.names(wording.term_class, k).astype(np.float64) for k in range(len(LISTING_RISK_TYPES))]
    # a prohibited good named in the title counts like a prohibited term, in plain or obfuscated spelling
    names_prohibited = np.maximum(named[L_PROHIBITED], names_prohibited_item(lst, wording, plain_only=False))
    home = np.array([origins.index(c) for c in COUNTRIES])[acc.country[lst.seller]]
    cross_border = lst.origin != home
    fake_origin = cross_border & np.isin(lst.origin, [origins.index(c) for c in COUNTERFEIT_ORIGINS])
    loud_discount = loud_discount_of(lst.discount_pct)
    pooled = lst.image_pooled.astype(np.float64)
    link = (lst.link > 0).astype(np.float64)
    cat_w = [np.asarray(w)[lst.category] for w in TYPE_CATEGORY_WEIGHTS]

    # several moderately informative signals per type, none decisive on its own
    cf, pro, mis, uns = L_COUNTERFEIT, L_PROHIBITED, L_MISLEADING, L_UNSAFE
    z = np.empty((n, len(LISTING_RISK_TYPES)))
    z[:, cf] = (
        -2.0 + premium * 2.4 * np.clip(-log_ratio - 0.25, 0.0, 1.5) + TERM_WEIGHT[cf] * named[cf]
        + 0.8 * pooled + 0.8 * fake_origin + LOUD_DISCOUNT_WEIGHT[cf] * loud_discount + 2.0 * cat_w[cf]
        + 0.4 * link
    )
    z[:, pro] = (
        -2.6 + TERM_WEIGHT[pro] * names_prohibited + 4.0 * cat_w[pro] + 0.5 * cross_border + 0.9 * link
        + 0.6 * lst.placeholder_price
    )
    z[:, mis] = (
        -2.2 + TERM_WEIGHT[mis] * named[mis] + LOUD_DISCOUNT_WEIGHT[mis] * loud_discount + 2.5 * cat_w[mis]
        + 0.4 * pooled + 0.8 * lst.shout
    )
    z[:, uns] = (
        -2.8 + TERM_WEIGHT[uns] * named[uns] + 2.5 * cat_w[uns] + 0.6 * fake_origin
        + 0.8 * unbranded * np.clip(-log_ratio - 0.5, 0.0, 1.5) + 0.4 * pooled
    )
    type_index = np.arange(len(LISTING_RISK_TYPES))[None, :]
    hidden = gamma * 0.4 * lst.intent[:, None] + gamma * 3.4 * (lst.bad_type[:, None] == type_index)
    shared = seller_risk(acc)[lst.seller] + _RING_LISTING_BONUS * (acc.ring[lst.seller] >= 0)
    intercept = _calibrate(logsumexp_rows(z + hidden) + shared, config.listing_base_rate)
    shift = lst.pattern_shift[:, None] * (lst.pattern_type[:, None] == type_index)
    total = z + hidden + shift
    true_prob = sigmoid(intercept + logsumexp_rows(total) + shared)
    is_violation = rng.random(n) < true_prob
    risk_type = np.argmax(total, axis=1).astype(np.int64)

    # plausible units sold: cheaper and louder listings sell more, never more than the stock on offer
    demand = lognormal(rng, 6.0 * (1.0 + 2.0 * lst.discount_pct) * (lst.price / 50.0) ** -0.3, 0.9, n)
    units = np.clip(np.round(demand), 1, lst.stock)
    exposure = (lst.price * units * _LISTING_LOSS_MULTIPLIER[risk_type] + 15.0) * lognormal(rng, 1.0, 0.5, n)
    label, delay = labels(rng, is_violation, config.labels)
    # harm reaches the buyers of the units sold; price does not enter
    harm_class = harm_class_codes(LISTING_RISK_TYPES)[risk_type]
    multiplier = listing_multiplier(config.harm, lst.kind, lst.category, harm_class)
    harm = harm_if_violation(config.harm, rng, harm_class, units.astype(np.float64), multiplier)
    return Truth(true_prob, is_violation, risk_type, np.round(exposure, 2), label, delay, harm_class, harm)
