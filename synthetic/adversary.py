"""Adaptive adversaries: after a detection wave, a share of violators drops the tell that got them caught.

Runs after the truth is drawn, on the observables only: an adapted listing is still a counterfeit, it just no
longer says "replica". Every draw is made for every row, so enabling the adversary or changing its share
leaves the other rows' data untouched.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from synthetic._types import BoolArray, FloatArray, IntArray, lognormal
from synthetic.accounts import EVENT_RATES, FAKE_ENGAGEMENT, AccountArrays, expected_log_engagement
from synthetic.config import AdversaryConfig
from synthetic.listings import L_PROHIBITED, ListingArrays
from synthetic.truth import (
    LOUD_DISCOUNT_WEIGHT,
    TERM_WEIGHT,
    Truth,
    excess,
    loud_discount_of,
    names_prohibited_item,
)
from synthetic.wording import Wording

# What an adapted entity stopped showing ("" for none). "spelling": a prohibited item re-spelt in disguise.
EVADED_TELLS: tuple[str, ...] = ("", "discount", "term", "spelling", "dispute_rates", "engagement")
_NONE, _DISCOUNT, _TERM, _SPELLING, _DISPUTE_RATES, _ENGAGEMENT = range(len(EVADED_TELLS))
# A tell counts as shown when the rate's log excess over normal passes this (about 1.35x normal).
_EXCESS_SHOWN = 0.3
_ABNORMAL_ENGAGEMENT = 0.4


def adopting(cfg: AdversaryConfig, rng: np.random.Generator, times: FloatArray, is_violation: BoolArray,
             days: int) -> BoolArray:
    """Violations that adapt: none before the wave, then a share growing to ``adapt_share`` over the ramp."""
    u = rng.random(len(times))
    if not cfg.enabled:
        return np.zeros(len(times), dtype=bool)
    start = cfg.start_day(days)
    since = times - start
    ramp = np.clip(since / cfg.ramp_days, 0.0, 1.0) if cfg.ramp_days > 0 else np.ones(len(times))
    return is_violation & (since >= 0) & (u < cfg.adapt_share * ramp)


def adapt_listings(
    cfg: AdversaryConfig, rng: np.random.Generator, lst: ListingArrays, truth: Truth, wording: Wording, days: int
) -> tuple[ListingArrays, IntArray]:
    """The listings after adaptation, and which tell each one dropped (EVADED_TELLS code)."""
    adopt = adopting(cfg, rng, lst.created_days, truth.is_violation, days)
    ordinary_discount = np.round(np.where(rng.random(lst.n) < 0.6, 0.0, rng.beta(2.0, 8.0, lst.n)), 3)
    risk = truth.risk_type

    # a tell's contribution to the row's log-odds for its own risk type; the strongest one is dropped
    discount_gain = LOUD_DISCOUNT_WEIGHT[risk] * loud_discount_of(lst.discount_pct)
    own_plain = [wording.term_plain[t] & (wording.term_class[t] == risk) for t in (lst.title_term, lst.desc_term)]
    plain_noun = names_prohibited_item(lst, wording, plain_only=True)
    term_shown = own_plain[0] | own_plain[1] | plain_noun
    term_gain = np.where(term_shown, TERM_WEIGHT[risk], 0.0)
    if "discount" not in cfg.listing_tells:
        discount_gain = np.zeros(lst.n)
    if "term" not in cfg.listing_tells:
        term_gain = np.zeros(lst.n)
    drop_discount = adopt & (discount_gain > 0) & (discount_gain >= term_gain)
    drop_term = adopt & (term_gain > 0) & ~drop_discount

    # plain terms become their disguise, or disappear where sellers have none (counterfeit slang, claims)
    title_term, desc_term = (np.where(drop_term & own, wording.term_disguise[t], t)
                             for t, own in zip((lst.title_term, lst.desc_term), own_plain, strict=True))
    noun = np.where(drop_term & plain_noun, wording.noun_disguise[lst.noun], lst.noun)
    evaded = np.where(drop_discount, _DISCOUNT,
                      np.where(drop_term, np.where(risk == L_PROHIBITED, _SPELLING, _TERM), _NONE))
    adapted = dataclasses.replace(
        lst,
        discount_pct=np.where(drop_discount, ordinary_discount, lst.discount_pct),
        title_term=title_term.astype(np.int64),
        desc_term=desc_term.astype(np.int64),
        noun=noun.astype(np.int64),
    )
    return adapted, evaded.astype(np.int64)


def adapt_accounts(
    cfg: AdversaryConfig, rng: np.random.Generator, acc: AccountArrays, truth: Truth, days: int
) -> tuple[AccountArrays, IntArray]:
    """The accounts after adaptation, and which tell each one dropped (EVADED_TELLS code)."""
    n = acc.n
    adopt = adopting(cfg, rng, acc.observed_days, truth.is_violation, days)
    risk = truth.risk_type

    # scam and counterfeit sellers keep refunds, chargebacks and disputes at normal rates (refunding
    # off-platform, cancelling before a dispute opens); late shipments, youth and identifiers remain
    rates_shown = (
        (excess(acc.chargebacks_90d, acc.orders_90d, float(EVENT_RATES["chargebacks"][0])) > _EXCESS_SHOWN)
        | (excess(acc.disputes_90d, acc.orders_90d, float(EVENT_RATES["disputes"][0])) > _EXCESS_SHOWN)
    )
    drop_rates = adopt & (risk != FAKE_ENGAGEMENT) & rates_shown & ("dispute_rates" in cfg.account_tells)
    def kept(count: IntArray, name: str) -> IntArray:
        normal = EVENT_RATES[name][0] * acc.orders_90d
        keep = np.where(drop_rates, np.minimum(1.0, normal / np.maximum(count, 1)), 1.0)
        return rng.binomial(count, keep).astype(np.int64)

    refunds = kept(acc.refunds_90d, "refunds")
    chargebacks = kept(acc.chargebacks_90d, "chargebacks")
    disputes = kept(acc.disputes_90d, "disputes")

    # bought engagement that matches the audience size instead of diluting or inflating it
    has_engagement = acc.is_creator & (acc.engagement_rate > 0)
    expected = expected_log_engagement(acc.followers)
    abnormal = np.abs(np.log(np.maximum(acc.engagement_rate, 1e-6)) - expected)
    natural = np.round(np.clip(np.exp(expected) * lognormal(rng, 1.0, 0.35, n), 0.0, 5.0), 5)
    drop_engagement = (adopt & (risk == FAKE_ENGAGEMENT) & has_engagement & (abnormal > _ABNORMAL_ENGAGEMENT)
                       & ("engagement" in cfg.account_tells))

    evaded = np.where(drop_rates, _DISPUTE_RATES, np.where(drop_engagement, _ENGAGEMENT, _NONE))
    adapted = dataclasses.replace(
        acc,
        refunds_90d=refunds,
        chargebacks_90d=chargebacks,
        disputes_90d=disputes,
        engagement_rate=np.where(drop_engagement, natural, acc.engagement_rate),
    )
    return adapted, evaded.astype(np.int64)
