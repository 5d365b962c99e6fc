"""Listings: who sells what, when, at which price, from where, with which image and words."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthetic._types import BoolArray, FloatArray, IntArray, choose, choose_rows, lognormal, sigmoid
from synthetic.accounts import AccountArrays
from synthetic.config import DriftSpec, GeneratorConfig
from synthetic.items import ITEM_KINDS, kinds_of, type_category_weights
from synthetic.timeline import sample_days
from synthetic.vocab import (
    BENIGN_LOOKALIKE_NOUN_RATE,
    BRANDS,
    CATEGORIES,
    CATEGORY_BASE_PRICE,
    CATEGORY_WEIGHTS,
    COUNTERFEIT_CATEGORY_WEIGHTS,
    COUNTERFEIT_ORIGIN_WEIGHTS,
    COUNTERFEIT_ORIGINS,
    COUNTRIES,
    CROSS_BORDER_ORIGINS,
    CROSS_BORDER_WEIGHTS,
    LINK_SENTENCES,
    LISTING_RISK_TYPES,
    MISLEADING_CATEGORY_WEIGHTS,
    UNBRANDED,
    UNBRANDED_SHARE,
)
from synthetic.wording import Wording

L_COUNTERFEIT, L_PROHIBITED, L_MISLEADING, L_UNSAFE = (
    LISTING_RISK_TYPES.index(t) for t in ("counterfeit", "prohibited_item", "misleading_listing", "unsafe_product")
)
BENIGN = -1
NO_KIND = -1
TYPE_CATEGORY_WEIGHTS: tuple[tuple[float, ...], ...] = tuple(
    {
        "counterfeit": COUNTERFEIT_CATEGORY_WEIGHTS,
        "misleading_listing": MISLEADING_CATEGORY_WEIGHTS,
    }.get(t) or type_category_weights(t)
    for t in LISTING_RISK_TYPES
)
# Per behaviour, indexed by bad_type + 1: benign, counterfeit, prohibited, misleading, unsafe.
# How often a listing spells out a tell-tale term (the rest say nothing suspicious).
_KEYWORD_RATE = np.array([0.03, 0.45, 0.45, 0.50, 0.40])
_IMAGE_REUSE = np.array([0.03, 0.35, 0.15, 0.25, 0.30])
# off-platform contact ("DM me on telegram"); a placeholder price always comes with one
_LINK_RATE = np.array([0.015, 0.10, 0.40, 0.12, 0.06])
# an all-capitals title
_SHOUT_RATE = np.array([0.03, 0.05, 0.05, 0.35, 0.04])
_STAY_HOME = np.array([0.88, 0.40, 0.60, 0.75, 0.45])
# Violation type mix (LISTING_RISK_TYPES order) per seller scheme: none, scam_seller, counterfeit, fake_engagement.
_TYPE_MIX = np.array(
    [
        [0.36, 0.22, 0.30, 0.12],
        [0.35, 0.10, 0.45, 0.10],
        [0.82, 0.03, 0.10, 0.05],
        [0.28, 0.10, 0.55, 0.07],
    ]
)
# Prohibited items: a share is listed at a placeholder price of 1 (the real price is agreed off-platform);
# the title names the item plainly, in an obfuscated spelling or by a euphemism; some terms are obfuscated;
# some listings name a second prohibited good (bundles).
_PLACEHOLDER_PRICE_SHARE = 0.08
_NOUN_PLAIN_SHARE, _NOUN_OBFUSCATED_SHARE = 0.5, 0.2
_TERM_OBFUSCATED_SHARE = 0.3
_BUNDLE_SHARE = 0.15
_ITEM_PRICE_RANGE = (1.0, 150.0)


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


@dataclass
class ListingArrays:
    """Column arrays of the listings plus the hidden state the truth model needs."""

    n: int
    seller: IntArray
    created_days: FloatArray
    intent: FloatArray
    bad_type: IntArray  # BENIGN or a LISTING_RISK_TYPES index: how the listing behaves
    kind: IntArray  # NO_KIND or an ITEM_KINDS index: the prohibited or unsafe good on offer
    category: IntArray
    pair: IntArray
    reference_price: FloatArray
    price: FloatArray
    placeholder_price: BoolArray
    discount_pct: FloatArray
    stock: IntArray
    origin: IntArray
    image_pooled: BoolArray
    image_code: IntArray
    noun: IntArray  # Wording.nouns code
    title_term: IntArray  # Wording.terms code, 0 for none
    desc_term: IntArray
    link: IntArray  # 0 none, else 1 + LINK_SENTENCES index
    shout: BoolArray  # title in capitals
    pattern: IntArray  # 0 baseline, 1 ring, 2 + i for the i-th pattern drift spec
    pattern_shift: FloatArray
    pattern_type: IntArray

    @property
    def bad(self) -> BoolArray:
        return self.bad_type != BENIGN

    def names(self, term_class: IntArray, risk: int) -> BoolArray:
        """Rows whose title or description carries a term hinting at ``risk`` (in any spelling)."""
        return (term_class[self.title_term] == risk) | (term_class[self.desc_term] == risk)


def generate_listings(
    config: GeneratorConfig,
    rng: np.random.Generator,
    cdf: FloatArray,
    accounts: AccountArrays,
    catalog: Catalog,
    origins: tuple[str, ...],
    wording: Wording,
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
                forced_term[rows[use]] = wording.term_code(spec.keyword)
            pattern[rows] = 2 + i

    kind = _kinds(rng, bad_type)
    category = _category(rng, accounts.category[seller], bad_type, kind)
    category = np.where(forced_category >= 0, forced_category, category)
    pair = _pair(rng, catalog, category, bad_type, forced_brand)

    reference = catalog.pair_reference[pair]
    price, placeholder, discount = _price_and_discount(rng, reference, bad_type, kind)
    stock = _stock(rng, bad_type, kind)

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

    noun = _nouns(rng, wording, category, bad_type, kind)
    title_term, desc_term = _terms(rng, wording, bad_type, kind)
    forced_in_title = rng.random(n) < 0.4
    title_term = np.where((forced_term >= 0) & forced_in_title, forced_term, title_term)
    desc_term = np.where((forced_term >= 0) & ~forced_in_title, forced_term, desc_term)
    with_link = (rng.random(n) < _LINK_RATE[bad_type + 1]) | placeholder
    link = np.where(with_link, 1 + rng.integers(0, len(LINK_SENTENCES), n), 0)
    shout = rng.random(n) < _SHOUT_RATE[bad_type + 1]

    return ListingArrays(
        n=n,
        seller=seller,
        created_days=created,
        intent=intent,
        bad_type=bad_type.astype(np.int64),
        kind=kind,
        category=category,
        pair=pair,
        reference_price=reference,
        price=price,
        placeholder_price=placeholder,
        discount_pct=discount,
        stock=stock,
        origin=origin.astype(np.int64),
        image_pooled=image_pooled,
        image_code=image_code.astype(np.int64),
        noun=noun,
        title_term=title_term.astype(np.int64),
        desc_term=desc_term.astype(np.int64),
        link=link.astype(np.int64),
        shout=shout,
        pattern=pattern,
        pattern_shift=pattern_shift,
        pattern_type=pattern_type,
    )


def _kinds(rng: np.random.Generator, bad_type: IntArray) -> IntArray:
    kind = np.full(len(bad_type), NO_KIND, dtype=np.int64)
    for risk in (L_PROHIBITED, L_UNSAFE):
        rows = np.flatnonzero(bad_type == risk)
        options = np.array(kinds_of(LISTING_RISK_TYPES[risk]), dtype=np.int64)
        kind[rows] = options[choose(rng, tuple(ITEM_KINDS[i].share for i in options), len(rows))]
    return kind


def _category(rng: np.random.Generator, focus: IntArray, bad_type: IntArray, kind: IntArray) -> IntArray:
    n = len(focus)
    stay = rng.random(n) < 0.75
    category = np.where(stay, focus, choose(rng, CATEGORY_WEIGHTS, n))
    own_draw = rng.random(n) < 0.7
    groups = [
        (bad_type == L_COUNTERFEIT, COUNTERFEIT_CATEGORY_WEIGHTS),
        (bad_type == L_MISLEADING, MISLEADING_CATEGORY_WEIGHTS),
        *((kind == i, k.category_weights()) for i, k in enumerate(ITEM_KINDS)),
    ]
    for in_group, weights in groups:
        w = np.asarray(weights)
        # violations stay in the seller's focus only where that kind of violation occurs
        own = w[focus] > 0
        category = np.where(in_group, focus, category)
        moved = np.flatnonzero(in_group & ~(own & own_draw))
        category[moved] = choose(rng, w, len(moved))
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
            L_PROHIBITED: 0.9 * mostly_unbranded + 0.1 * benign_w,
            L_MISLEADING: 0.5 * mostly_unbranded + 0.5 * benign_w,
            L_UNSAFE: 0.8 * mostly_unbranded + 0.2 * benign_w,
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


def _price_and_discount(
    rng: np.random.Generator, reference: FloatArray, bad_type: IntArray, kind: IntArray
) -> tuple[FloatArray, BoolArray, FloatArray]:
    n = len(reference)
    ratio = lognormal(rng, 1.0, 0.35, n)
    clearance = rng.random(n) < 0.06
    ratio = np.where(clearance, rng.uniform(0.35, 0.75, n), ratio)
    cheap_fake = rng.random(n) < 0.55
    ratio = np.where(
        bad_type == L_COUNTERFEIT,
        np.where(cheap_fake, rng.uniform(0.2, 0.55, n), lognormal(rng, 0.8, 0.25, n)),
        ratio,
    )
    ratio = np.where(bad_type == L_MISLEADING, lognormal(rng, 1.1, 0.4, n), ratio)
    price = np.round(reference * ratio, 2)

    # prohibited and unsafe goods are priced as what they are, not as the category's usual product: cheap
    k = np.maximum(kind, 0)
    median = np.array([i.price_median for i in ITEM_KINDS])[k]
    sigma = np.array([i.price_sigma for i in ITEM_KINDS])[k]
    as_ratio = np.array([i.price_is_ratio for i in ITEM_KINDS])[k]
    drawn = median * np.exp(sigma * rng.standard_normal(n))
    item_price = np.clip(np.round(np.where(as_ratio, drawn * reference, drawn), 2), *_ITEM_PRICE_RANGE)
    placeholder = (bad_type == L_PROHIBITED) & (rng.random(n) < _PLACEHOLDER_PRICE_SHARE)
    price = np.where(kind >= 0, np.where(placeholder, 1.0, item_price), price)

    discount = np.where(rng.random(n) < 0.6, 0.0, rng.beta(2.0, 8.0, n))
    discount = np.where(clearance, rng.beta(4.0, 4.0, n) * 0.8, discount)
    # honest flash sales and "was" prices: loud discounts are not only a fraud tell
    discount = np.where(rng.random(n) < 0.05, rng.beta(5.0, 4.0, n) * 0.9, discount)
    loud = rng.random(n)
    discount = np.where((bad_type == L_COUNTERFEIT) & (loud < 0.40), rng.beta(6.0, 3.0, n) * 0.95, discount)
    discount = np.where((bad_type == L_MISLEADING) & (loud < 0.50), rng.beta(7.0, 3.0, n) * 0.95, discount)
    discount = np.where(placeholder, 0.0, discount)
    return price, placeholder, np.round(np.clip(discount, 0.0, 0.95), 3)


def _stock(rng: np.random.Generator, bad_type: IntArray, kind: IntArray) -> IntArray:
    n = len(bad_type)
    # honest sellers are a mix of people selling one or two things and shops with stock
    shop = rng.random(n) < 0.35
    median = np.where(shop, 20.0, 2.0)
    median = np.where(bad_type == L_COUNTERFEIT, 15.0, median)
    median = np.where(bad_type == L_MISLEADING, 10.0, median)
    item_stock = np.array([i.stock_median for i in ITEM_KINDS])[np.maximum(kind, 0)]
    median = np.where(kind >= 0, item_stock, median)
    return np.maximum(1, np.round(lognormal(rng, median, 0.9, n))).astype(np.int64)


def _origin(
    rng: np.random.Generator, n: int, seller_country: IntArray, bad_type: IntArray, origins: tuple[str, ...]
) -> IntArray:
    home = np.array([origins.index(c) for c in COUNTRIES])[seller_country]
    cross = np.array([origins.index(c) for c in CROSS_BORDER_ORIGINS])[choose(rng, CROSS_BORDER_WEIGHTS, n)]
    fake = np.array([origins.index(c) for c in COUNTERFEIT_ORIGINS])[choose(rng, COUNTERFEIT_ORIGIN_WEIGHTS, n)]
    stay_home = _STAY_HOME[bad_type + 1]
    u = rng.random(n)
    origin = np.where(u < stay_home, home, cross)
    # counterfeits and uncertified goods ship straight from the factory regions
    from_factory = np.where(bad_type == L_COUNTERFEIT, 0.8, np.where(bad_type == L_UNSAFE, 0.7, 0.0))
    origin = np.where((u >= stay_home) & (rng.random(n) < from_factory), fake, origin)
    return origin.astype(np.int64)


def _nouns(
    rng: np.random.Generator, wording: Wording, category: IntArray, bad_type: IntArray, kind: IntArray
) -> IntArray:
    n = len(category)
    per_category = wording.category_nouns.shape[1]
    noun = wording.category_nouns[category, rng.integers(0, per_category, n)]
    lookalike = (bad_type == BENIGN) & (rng.random(n) < BENIGN_LOOKALIKE_NOUN_RATE)
    for c, codes in enumerate(wording.lookalike_nouns):
        rows = np.flatnonzero(lookalike & (category == c))
        if len(codes) and len(rows):
            noun[rows] = codes[rng.integers(0, len(codes), len(rows))]
    style = rng.random(n)
    for i, plain in enumerate(wording.kind_nouns):
        rows = np.flatnonzero(kind == i)
        if not len(rows):
            continue
        chosen = plain[rng.integers(0, len(plain), len(rows))]
        u = style[rows]
        obfuscate = (u >= _NOUN_PLAIN_SHARE) & (u < _NOUN_PLAIN_SHARE + _NOUN_OBFUSCATED_SHARE)
        chosen = np.where(obfuscate, wording.noun_disguise[chosen], chosen)
        euphemisms = wording.kind_euphemisms[i]
        if len(euphemisms):
            euphemism = u >= _NOUN_PLAIN_SHARE + _NOUN_OBFUSCATED_SHARE
            chosen = np.where(euphemism, euphemisms[rng.integers(0, len(euphemisms), len(rows))], chosen)
        noun[rows] = chosen
    return noun.astype(np.int64)


def _terms(
    rng: np.random.Generator, wording: Wording, bad_type: IntArray, kind: IntArray
) -> tuple[IntArray, IntArray]:
    n = len(bad_type)
    term = np.zeros(n, dtype=np.int64)
    uses = rng.random(n) < _KEYWORD_RATE[bad_type + 1]

    def fill(rows: IntArray, codes: IntArray) -> None:
        if len(rows) and len(codes):
            term[rows] = codes[rng.integers(0, len(codes), len(rows))]

    for k in (L_COUNTERFEIT, L_MISLEADING):
        fill(np.flatnonzero(uses & (bad_type == k)), wording.type_terms[k])
    for i, codes in enumerate(wording.kind_terms):
        fill(np.flatnonzero(uses & (kind == i)), codes)
    fill(np.flatnonzero(uses & (bad_type == BENIGN)), wording.lookalike_terms)
    # a share of sellers disguise the spelling from the start
    disguise = wording.term_disguise[term]
    term = np.where((disguise > 0) & (rng.random(n) < _TERM_OBFUSCATED_SHARE), disguise, term)

    in_title = rng.random(n) < 0.4
    title_term = np.where(in_title, term, 0)
    desc_term = np.where(in_title, 0, term)
    # bundles name a second prohibited good ("ammo + thc cart")
    prohibited_codes = np.concatenate([wording.kind_terms[i] for i in kinds_of("prohibited_item")])
    bundle = (bad_type == L_PROHIBITED) & (rng.random(n) < _BUNDLE_SHARE)
    extra = prohibited_codes[rng.integers(0, len(prohibited_codes), n)]
    free_desc = desc_term == 0
    desc_term = np.where(bundle & free_desc, extra, desc_term)
    title_term = np.where(bundle & ~free_desc & (title_term == 0), extra, title_term)
    return title_term.astype(np.int64), desc_term.astype(np.int64)
