"""Titles and descriptions assembled from word templates (Arrow kernels, no per-row Python)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from synthetic.listings import Catalog, ListingArrays
from synthetic.strings import join, take
from synthetic.vocab import (
    CATEGORIES,
    DESCRIPTION_MIDDLES,
    DESCRIPTION_OPENERS,
    KEYWORD_SENTENCES,
    PRODUCT_NOUNS,
    TITLE_ADJECTIVES,
    TITLE_SUFFIXES,
    UNBRANDED,
)


def build_text(
    rng: np.random.Generator, lst: ListingArrays, catalog: Catalog, terms: tuple[str, ...]
) -> tuple[pa.Array, pa.Array]:
    n = lst.n
    nouns = [noun for c in CATEGORIES for noun in PRODUCT_NOUNS[c]]
    per_category = len(PRODUCT_NOUNS[CATEGORIES[0]])
    noun = lst.category * per_category + rng.integers(0, per_category, n)

    brand_words = [("" if b == UNBRANDED else b + " ") for b in catalog.brand_names]
    brand = take(brand_words, catalog.pair_brand[lst.pair])
    has_term = lst.term > 0
    title_term = np.where(has_term & lst.term_in_title, lst.term, 0)
    desc_term = np.where(has_term & ~lst.term_in_title, lst.term, 0)

    title = join(
        [
            take([t + " " if t else "" for t in terms], title_term),
            brand,
            take(TITLE_ADJECTIVES, rng.integers(0, len(TITLE_ADJECTIVES), n)),
            " ",
            take(nouns, noun),
            take(TITLE_SUFFIXES, rng.integers(0, len(TITLE_SUFFIXES), n)),
        ]
    )

    opener = rng.integers(0, len(DESCRIPTION_OPENERS), n)
    # slot 0 of the sentence vocabularies is the empty sentence for rows without a term in the description
    sentence = np.where(desc_term > 0, 1 + rng.integers(0, len(KEYWORD_SENTENCES), n), 0)
    description = join(
        [
            take([pre for pre, _ in DESCRIPTION_OPENERS], opener),
            brand,
            take(nouns, noun),
            take([post for _, post in DESCRIPTION_OPENERS], opener),
            take(DESCRIPTION_MIDDLES, rng.integers(0, len(DESCRIPTION_MIDDLES), n)),
            take(["", *(pre for pre, _ in KEYWORD_SENTENCES)], sentence),
            take(terms, desc_term),
            take(["", *(post for _, post in KEYWORD_SENTENCES)], sentence),
        ]
    )
    return title, description
