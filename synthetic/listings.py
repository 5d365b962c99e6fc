"""Listings: who sells what, when, at which price, from where, with which image and words."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthetic._types import BoolArray, FloatArray, IntArray, choose, choose_rows, lognormal, sigmoid
from synthetic.accounts import AccountArrays
from synthetic.config import DriftSpec, GeneratorConfig
from synthetic.timeline import sample_days
from synthetic.vocab import (
    BENIGN_LOOKALIKE_TERMS,
    BRANDS,
    CATEGORIES,
    CATEGORY_BASE_PRICE,
    CATEGORY_WEIGHTS,
    COUNTERFEIT_CATEGORY_WEIGHTS,
    COUNTERFEIT_ORIGIN_WEIGHTS,
    COUNTERFEIT_ORIGINS,
    COUNTERFEIT_TERMS,
    COUNTRIES,
    CROSS_BORDER_ORIGINS,
    CROSS_BORDER_WEIGHTS,
    LISTING_RISK_TYPES,
    MISLEADING_CATEGORY_WEIGHTS,
    MISLEADING_TERMS,
    PROHIBITED_CATEGORY_WEIGHTS,
    PROHIBITED_TERMS,
    UNBRANDED,
    UNBRANDED_SHARE,
)

L_COUNTERFEIT, L_PROHIBITED, L_MISLEADING = range(len(LISTING_RISK_TYPES))
BENIGN = -1
TYPE_CATEGORY_WEIGHTS = (COUNTERFEIT_CATEGORY_WEIGHTS, PROHIBITED_CATEGORY_WEIGHTS, MISLEADING_CATEGORY_WEIGHTS)
TYPE_TERMS = (COUNTERFEIT_TERMS, PROHIBITED_TERMS, MISLEADING_TERMS)
# How often a listing of each behaviour spells out a tell-tale term (the rest say nothing suspicious).
_KEYWORD_RATE = np.array([0.45, 0.5, 0.5])
_BENIGN_KEYWORD_RATE = 0.03
# Image reuse from the shared pool by behaviour: benign, counterfeit, prohibited, misleading.
_IMAGE_REUSE = np.array([0.03, 0.35, 0.15, 0.25])
# Violation type mix per seller scheme: no scheme, scam_seller, counterfeit, fake_engagement.
_TYPE_MIX = np.array(
    [
        [0.40, 0.25, 0.35],
        [0.40, 0.10, 0.50],
        [0.85, 0.03, 0.12],
        [0.30, 0.10, 0.60],
    ]
)


@dataclass(frozen=True)
class Catalog:
    """(category, brand) pairs with their reference prices; the brand column's vocabulary."""

    brand_names: tuple[str, ...]
    pair_category: IntArray
    pair_brand: IntArray
    pair_multiplier: FloatArray
    pair_target: BoolArray
    pair_reference: FloatArray

    def pairs_in(self, category: int) -> IntArray:
        return np.flatnonzero(self.pair_category == category)


def build_catalog(rng: np.random.Generator, specs: tuple[DriftSpec, ...]) -> Catalog:
    names: list[str] = [UNBRANDED]
    entries: list[tuple[int, str, float, bool]] = [(c, UNBRANDED, 0.8, False) for c in range(len(CATEGORIES))]
    entries += [(CATEGORIES.index(cat), name, mult, target) for name, cat, mult, target in BRANDS]
    for spec in specs:
        if spec.kind != "pattern" or spec.brand is None:
            continue
        cats = [CATEGORIES.index(spec.category)] if spec.category else list(range(len(CATEGORIES)))
        for c in cats:
            if not any(e[0] == c and e[1] == spec.brand for e in entries):
                entries.append((c, spec.brand, 3.0, False))
    for _, name, _, _ in entries:
        if name not in names:
            names.append(name)
    category = np.array([e[0] for e in entries], dtype=np.int64)
    multiplier = np.array([e[2] for e in entries])
    jitter = lognormal(rng, 1.0, 0.1, len(entries))
    reference = np.round(np.asarray(CATEGORY_BASE_PRICE)[category] * multiplier * jitter, 2)
    return Catalog(
        brand_names=tuple(names),
        pair_category=category,
        pair_brand=np.array([names.index(e[1]) for e in entries], dtype=np.int64),
        pair_multiplier=multiplier,
        pair_target=np.array([e[3] for e in entries], dtype=bool),
        pair_reference=reference,
    )


def origin_vocabulary(specs: tuple[DriftSpec, ...]) -> tuple[str, ...]:
    origins = list(COUNTRIES)
    for code in (*COUNTERFEIT_ORIGINS, *CROSS_BORDER_ORIGINS):
        if code not in origins:
            origins.append(code)
    for spec in specs:
        if spec.kind == "pattern" and spec.shipping_origin and spec.shipping_origin not in origins:
            origins.append(spec.shipping_origin)
    return tuple(origins)


def term_vocabulary(specs: tuple[DriftSpec, ...]) -> tuple[tuple[str, ...], IntArray]:
    """All keyword terms (index 0 is "no term") and the violation type each one hints at (-1: none/novel)."""
    terms: list[str] = [""]
    classes: list[int] = [BENIGN]
    for k, group in enumerate(TYPE_TERMS):
        for term in group:
            terms.append(term)
            classes.append(k)
    for spec in specs:
        if spec.kind == "pattern" and spec.keyword and spec.keyword not in terms:
            terms.append(spec.keyword)
            classes.append(BENIGN)
    return tuple(terms), np.array(classes, dtype=np.int64)


@dataclass
class ListingArrays:
    """Column arrays of the listings plus the hidden state the truth model needs."""

    n: int
    seller: IntArray
    created_days: FloatArray
    intent: FloatArray
    bad_type: IntArray  # BENIGN or a LISTING_RISK_TYPES index: how the listing behaves
    category: IntArray
    pair: IntArray
    reference_price: FloatArray
    price: FloatArray
    discount_pct: FloatArray
    stock: IntArray
    origin: IntArray
    image_pooled: BoolArray
    image_code: IntArray
    term: IntArray
    term_in_title: BoolArray
    pattern: IntArray  # 0 baseline, 1 ring, 2 + i for the i-th pattern drift spec
    pattern_shift: FloatArray
    pattern_type: IntArray

    @property
    def bad(self) -> BoolArray:
        return self.bad_type != BENIGN


def generate_listings(
    config: GeneratorConfig,
    rng: np.random.Generator,
    cdf: FloatArray,
    accounts: AccountArrays,
    catalog: Catalog,
    origins: tuple[str, ...],
    terms: tuple[str, ...],
    specs: tuple[DriftSpec, ...],
) -> ListingArrays:
    n = config.n_listings

    weight = (accounts.listings_count + 1.0) * np.where(accounts.is_creator, 0.05, 1.0)
    seller = rng.choice(accounts.n, size=n, p=weight / weight.sum()).astype(np.int64)
    # a listing cannot predate its seller's account
    created = sample_days(rng, cdf, n, lower_days=np.maximum(accounts.created_days[seller], 0.0))

    in_ring = accounts.ring[seller] >= 0
    seller_scheme = accounts.scheme[seller]
    intent = 0.7 * accounts.intent[seller] + 0.71 * rng.standard_normal(n)
    p_bad = sigmoid(-4.7 + 1.3 * intent + 1.3 * seller_scheme + 1.2 * in_ring)
    bad = rng.random(n) < p_bad
    mix_row = np.where(seller_scheme, accounts.scheme_type[seller] + 1, 0)
    bad_type = np.where(bad, choose_rows(rng, _TYPE_MIX[mix_row]), BENIGN)

    forced_category = np.full(n, -1, dtype=np.int64)
    forced_brand = np.full(n, -1, dtype=np.int64)
    forced_origin = np.full(n, -1, dtype=np.int64)
    forced_term = np.full(n, -1, dtype=np.int64)
    pattern = np.where(in_ring, 1, 0).astype(np.int64)
    pattern_shift = np.zeros(n)
    pattern_type = np.full(n, BENIGN, dtype=np.int64)
    pattern_specs = [s for s in specs if s.kind == "pattern"]
    for i, spec in enumerate(pattern_specs):
        # a new scheme: rows from start_day moved into the segment, picked preferring ill-intended sellers
        eligible = np.flatnonzero(created >= spec.start_day)
        k = round(spec.share * len(eligible))
        if k:
            keys = 1.0 * accounts.intent[seller[eligible]] + rng.gumbel(size=len(eligible))
            rows = eligible[np.argpartition(-keys, k - 1)[:k]]
            behaves = rng.random(k) < 0.6
            risk = LISTING_RISK_TYPES.index(spec.risk_type)
            bad_type[rows] = np.where(behaves, risk, bad_type[rows])
            if spec.category is not None:
                forced_category[rows] = CATEGORIES.index(spec.category)
            if spec.brand is not None:
                forced_brand[rows] = catalog.brand_names.index(spec.brand)
            if spec.shipping_origin is not None:
                forced_origin[rows] = origins.index(spec.shipping_origin)
            if spec.keyword is not None:
                use = behaves & (rng.random(k) < spec.keyword_rate)
                forced_term[rows[use]] = terms.index(spec.keyword)
            pattern[rows] = 2 + i

    category = _category(rng, n, accounts.category[seller], bad_type)
    category = np.where(forced_category >= 0, forced_category, category)
    pair = _pair(rng, catalog, category, bad_type, forced_brand)

    reference = catalog.pair_reference[pair]
    ratio, discount = _price_ratio_and_discount(rng, n, bad_type)
    price = np.round(reference * ratio, 2)

    stock_median = np.array([4.0, 30.0, 8.0, 20.0])[bad_type + 1]
    stock = np.maximum(1, np.round(lognormal(rng, stock_median, 1.0, n))).astype(np.int64)

    origin = _origin(rng, n, accounts.country[seller], bad_type, origins)
    origin = np.where(forced_origin >= 0, forced_origin, origin)

    pool_size = max(30, n // 500)
    pool_weights = 1.0 / np.arange(1, pool_size + 1) ** 0.8
    image_pooled = rng.random(n) < _IMAGE_REUSE[bad_type + 1]
    image_code = np.where(image_pooled, n + choose(rng, pool_weights, n), np.arange(n))

    # the segment is now observable: every row inside it from start_day takes the shift, including
    # ordinary listings that happen to fall there
    for i, spec in enumerate(pattern_specs):
        seg = created >= spec.start_day
        if spec.category is not None:
            seg &= category == CATEGORIES.index(spec.category)
        if spec.brand is not None:
            seg &= catalog.pair_brand[pair] == catalog.brand_names.index(spec.brand)
        if spec.shipping_origin is not None:
            seg &= origin == origins.index(spec.shipping_origin)
        seg |= pattern == 2 + i
        pattern_shift[seg] += spec.logit_shift
        pattern_type[seg] = LISTING_RISK_TYPES.index(spec.risk_type)

    term, in_title = _terms(rng, n, bad_type, terms)
    term = np.where(forced_term >= 0, forced_term, term)

    return ListingArrays(
        n=n,
        seller=seller,
        created_days=created,
        intent=intent,
        bad_type=bad_type.astype(np.int64),
        category=category,
        pair=pair,
        reference_price=reference,
        price=price,
        discount_pct=discount,
        stock=stock,
        origin=origin.astype(np.int64),
        image_pooled=image_pooled,
        image_code=image_code.astype(np.int64),
        term=term.astype(np.int64),
        term_in_title=in_title,
        pattern=pattern,
        pattern_shift=pattern_shift,
        pattern_type=pattern_type,
    )


def _category(rng: np.random.Generator, n: int, focus: IntArray, bad_type: IntArray) -> IntArray:
    stay = rng.random(n) < 0.75
    category = np.where(stay, focus, choose(rng, CATEGORY_WEIGHTS, n))
    for k, weights in enumerate(TYPE_CATEGORY_WEIGHTS):
        rows = bad_type == k
        w = np.asarray(weights)
        # violations stay in the seller's focus only where that kind of violation occurs
        own = (w[focus] > 0) & (rng.random(n) < 0.7)
        category = np.where(rows & ~own, choose(rng, w, n), np.where(rows, focus, category))
    return category.astype(np.int64)


def _pair(
    rng: np.random.Generator, catalog: Catalog, category: IntArray, bad_type: IntArray, forced_brand: IntArray
) -> IntArray:
    pair = np.zeros(len(category), dtype=np.int64)
    for c in range(len(CATEGORIES)):
        in_cat = category == c
        if not in_cat.any():
            continue
        pairs = catalog.pairs_in(c)
        unbranded = catalog.pair_brand[pairs] == catalog.brand_names.index(UNBRANDED)
        in_base = pairs < len(CATEGORIES) + len(BRANDS)  # brands added by a drift spec appear only there
        mult = catalog.pair_multiplier[pairs]
        target = catalog.pair_target[pairs]
        branded = np.where(unbranded | ~in_base, 0.0, mult**-0.5)
        benign_w = np.where(unbranded, UNBRANDED_SHARE, (1 - UNBRANDED_SHARE) * branded / max(branded.sum(), 1e-12))
        if target.any():
            fake = np.where(target, mult**0.5, 0.0)
            counterfeit_w = 0.9 * fake / fake.sum() + 0.1 * benign_w
        else:
            counterfeit_w = benign_w
        mostly_unbranded = np.where(unbranded, 1.0, 0.0)
        weights_by_type = {
            BENIGN: benign_w,
            L_COUNTERFEIT: counterfeit_w,
            L_PROHIBITED: 0.7 * mostly_unbranded + 0.3 * benign_w,
            L_MISLEADING: 0.5 * mostly_unbranded + 0.5 * benign_w,
        }
        for k, w in weights_by_type.items():
            rows = np.flatnonzero(in_cat & (bad_type == k))
            if len(rows):
                pair[rows] = pairs[choose(rng, w, len(rows))]
        for brand in np.unique(forced_brand[in_cat & (forced_brand >= 0)]):
            match = pairs[catalog.pair_brand[pairs] == brand]
            if len(match):
                pair[in_cat & (forced_brand == brand)] = match[0]
    return pair


def _price_ratio_and_discount(
    rng: np.random.Generator, n: int, bad_type: IntArray
) -> tuple[FloatArray, FloatArray]:
    ratio = lognormal(rng, 1.0, 0.35, n)
    clearance = rng.random(n) < 0.06
    ratio = np.where(clearance, rng.uniform(0.35, 0.75, n), ratio)
    cheap_fake = rng.random(n) < 0.75
    ratio = np.where(
        bad_type == L_COUNTERFEIT,
        np.where(cheap_fake, rng.uniform(0.15, 0.5, n), lognormal(rng, 0.75, 0.2, n)),
        ratio,
    )
    ratio = np.where(bad_type == L_PROHIBITED, lognormal(rng, 1.3, 0.4, n), ratio)
    ratio = np.where(bad_type == L_MISLEADING, lognormal(rng, 1.1, 0.4, n), ratio)

    discount = np.where(rng.random(n) < 0.6, 0.0, rng.beta(2.0, 8.0, n))
    discount = np.where(clearance, rng.beta(4.0, 4.0, n) * 0.8, discount)
    loud = rng.random(n)
    discount = np.where((bad_type == L_COUNTERFEIT) & (loud < 0.7), rng.beta(6.0, 3.0, n) * 0.95, discount)
    discount = np.where((bad_type == L_MISLEADING) & (loud < 0.8), rng.beta(7.0, 3.0, n) * 0.95, discount)
    return ratio, np.round(np.clip(discount, 0.0, 0.95), 3)


def _origin(
    rng: np.random.Generator, n: int, seller_country: IntArray, bad_type: IntArray, origins: tuple[str, ...]
) -> IntArray:
    home = np.array([origins.index(c) for c in COUNTRIES])[seller_country]
    cross = np.array([origins.index(c) for c in CROSS_BORDER_ORIGINS])[choose(rng, CROSS_BORDER_WEIGHTS, n)]
    fake = np.array([origins.index(c) for c in COUNTERFEIT_ORIGINS])[choose(rng, COUNTERFEIT_ORIGIN_WEIGHTS, n)]
    stay_home = np.array([0.88, 0.40, 0.60, 0.75])[bad_type + 1]
    u = rng.random(n)
    origin = np.where(u < stay_home, home, cross)
    origin = np.where((bad_type == L_COUNTERFEIT) & (u >= stay_home) & (rng.random(n) < 0.8), fake, origin)
    return origin.astype(np.int64)


def _terms(
    rng: np.random.Generator, n: int, bad_type: IntArray, terms: tuple[str, ...]
) -> tuple[IntArray, BoolArray]:
    term = np.zeros(n, dtype=np.int64)
    u = rng.random(n)
    for k, group in enumerate(TYPE_TERMS):
        rows = np.flatnonzero((bad_type == k) & (u < _KEYWORD_RATE[k]))
        codes = np.array([terms.index(t) for t in group])
        term[rows] = codes[rng.integers(0, len(codes), len(rows))]
    benign_rows = np.flatnonzero((bad_type == BENIGN) & (u < _BENIGN_KEYWORD_RATE))
    codes = np.array([terms.index(t) for t in BENIGN_LOOKALIKE_TERMS])
    term[benign_rows] = codes[rng.integers(0, len(codes), len(benign_rows))]
    return term, rng.random(n) < 0.4
