"""Which optional fields are missing: per listing source (app, web, bulk feed, API) and per account field.

Masks are drawn from the observables after the adversary has acted and applied when the frames are built,
so the truth always sees the complete hidden record while the data shows realistic nulls. Every draw is
made for every row, so changing one field's rate leaves the other fields' masks as they were.
"""

from __future__ import annotations

import numpy as np

from synthetic._types import BoolArray, IntArray, choose
from synthetic.accounts import AccountArrays
from synthetic.config import MissingnessConfig
from synthetic.listings import ListingArrays
from synthetic.schema import ACCOUNT_HISTORY_FIELDS, OPTIONAL_ACCOUNT_FIELDS, OPTIONAL_LISTING_FIELDS

Masks = dict[str, BoolArray]


def _raised(rate: np.ndarray, multiplier: float) -> np.ndarray:
    # a multiplier above 1 never pushes a rate past 0.95 (nor lowers one already above it)
    return np.minimum(rate * multiplier, np.maximum(rate, 0.95))


def listing_sources(cfg: MissingnessConfig, rng: np.random.Generator, acc: AccountArrays,
                    lst: ListingArrays) -> IntArray:
    """Source of each listing, as a code into ``tuple(cfg.listing_sources)``.

    Each seller has a main channel (bulk-feed merchants keep using feeds); violating behaviour leans a little
    towards bulk feeds and the API (``fraud_source_tilt``), for sellers with a scheme and for single listings.
    """
    names = tuple(cfg.listing_sources)
    share = np.array([cfg.listing_sources[s].share for s in names])
    tilted = share * np.array([cfg.fraud_source_tilt.get(s, 1.0) for s in names])
    main = np.where(acc.scheme, choose(rng, tilted, acc.n), choose(rng, share, acc.n))
    other = np.where(lst.bad, choose(rng, tilted, lst.n), choose(rng, share, lst.n))
    loyal = rng.random(lst.n) < cfg.seller_channel_loyalty
    return np.where(loyal, main[lst.seller], other).astype(np.int64)


def listing_masks(cfg: MissingnessConfig, rng: np.random.Generator, source: IntArray, bad: BoolArray) -> Masks:
    """True where an optional listing field is missing."""
    names = tuple(cfg.listing_sources)
    masks: Masks = {}
    for field in OPTIONAL_LISTING_FIELDS:
        u = rng.random(len(source))
        rate = np.array([cfg.listing_sources[s].missing.get(field, 0.0) for s in names])[source]
        rate = np.where(bad, _raised(rate, cfg.listing_fraud_omission.get(field, 1.0)), rate)
        masks[field] = (u < rate) & cfg.enabled
    return masks


def account_masks(cfg: MissingnessConfig, rng: np.random.Generator, acc: AccountArrays) -> Masks:
    """True where an optional account field is missing; the 90-day history fields also go missing together."""
    block_rate = np.where(acc.age_days < cfg.new_account_days, cfg.new_account_history_block_missing,
                          cfg.history_block_missing)
    block = rng.random(acc.n) < block_rate
    masks: Masks = {}
    for field in OPTIONAL_ACCOUNT_FIELDS:
        u = rng.random(acc.n)
        rate = np.full(acc.n, cfg.account_missing.get(field, 0.0))
        rate = np.where(acc.scheme, _raised(rate, cfg.account_fraud_omission.get(field, 1.0)), rate)
        missing = u < rate
        if field in ACCOUNT_HISTORY_FIELDS:
            missing |= block
        masks[field] = missing & cfg.enabled
    return masks
