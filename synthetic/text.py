"""Titles and descriptions assembled from word templates (Arrow kernels, no per-row Python)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synthetic.listings import Catalog, ListingArrays
from synthetic.strings import join, take
from synthetic.vocab import (
    DESCRIPTION_MIDDLES,
    DESCRIPTION_OPENERS,
    KEYWORD_SENTENCES,
    LINK_SENTENCES,
    TITLE_ADJECTIVES,
    TITLE_SUFFIXES,
    UNBRANDED,
)
from synthetic.wording import Wording


def build_text(
    rng: np.random.Generator, lst: ListingArrays, catalog: Catalog, wording: Wording
) -> tuple[pa.Array, pa.Array]:
    """Title and description of every listing. The draws do not depend on the listing's words, so changing
    one listing's words leaves every other listing's text as it was."""
    n = lst.n
    brand_words = [("" if b == UNBRANDED else b + " ") for b in catalog.brand_names]
    brand = take(brand_words, catalog.pair_brand[lst.pair])
    noun = take(wording.nouns, lst.noun)

    title = join(
        [
            take([t + " " if t else "" for t in wording.terms], lst.title_term),
            brand,
            take(TITLE_ADJECTIVES, rng.integers(0, len(TITLE_ADJECTIVES), n)),
            " ",
            noun,
            take(TITLE_SUFFIXES, rng.integers(0, len(TITLE_SUFFIXES), n)),
        ]
    )
    title = pc.if_else(pa.array(lst.shout), pc.utf8_upper(title), title)

    opener = rng.integers(0, len(DESCRIPTION_OPENERS), n)
    # slot 0 of the sentence vocabularies is the empty sentence for rows without a term in the description
    sentence = np.where(lst.desc_term > 0, 1 + rng.integers(0, len(KEYWORD_SENTENCES), n), 0)
    description = join(
        [
            take([pre for pre, _ in DESCRIPTION_OPENERS], opener),
            brand,
            noun,
            take([post for _, post in DESCRIPTION_OPENERS], opener),
            take(DESCRIPTION_MIDDLES, rng.integers(0, len(DESCRIPTION_MIDDLES), n)),
            take(["", *(pre for pre, _ in KEYWORD_SENTENCES)], sentence),
            take(wording.terms, lst.desc_term),
            take(["", *(post for _, post in KEYWORD_SENTENCES)], sentence),
            take(["", *LINK_SENTENCES], lst.link),
        ]
    )
    return title, description
