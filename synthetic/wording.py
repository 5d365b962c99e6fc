"""The words of a listing as integer codes: tell-tale terms and product nouns, and what each one hints at.

Listings carry codes into these vocabularies (a title term, a description term, a noun); the truth reads the
class a word hints at, the adversary swaps a plain spelling for its disguise, and the text builder turns
codes into strings. Index 0 of the term vocabulary is "no term".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthetic._types import BoolArray, IntArray
from synthetic.config import DriftSpec
from synthetic.items import ITEM_KINDS
from synthetic.vocab import (
    BENIGN_LOOKALIKE_NOUNS,
    BENIGN_LOOKALIKE_TERMS,
    CATEGORIES,
    COUNTERFEIT_TERMS,
    LISTING_RISK_TYPES,
    MISLEADING_TERMS,
    PRODUCT_NOUNS,
)

NO_CLASS = -1
# How a noun names the product: an ordinary product, a prohibited or unsafe item spelt plainly, the same
# item disguised, a euphemism that does not name it, an innocent product with a flagged word in its name.
NOUN_ORDINARY, NOUN_PLAIN, NOUN_OBFUSCATED, NOUN_EUPHEMISM, NOUN_LOOKALIKE = range(5)


@dataclass(frozen=True)
class Wording:
    terms: tuple[str, ...]
    term_class: IntArray  # LISTING_RISK_TYPES index a term hints at, NO_CLASS for none or a novel keyword
    term_plain: BoolArray  # a tell in plain spelling (what a keyword screen catches)
    term_disguise: IntArray  # code of the obfuscated spelling; 0 where sellers drop the term instead
    type_terms: tuple[IntArray, ...]  # counterfeit and misleading term codes, by LISTING_RISK_TYPES index
    lookalike_terms: IntArray
    kind_terms: tuple[IntArray, ...]  # per item kind: plain term codes
    nouns: tuple[str, ...]
    noun_style: IntArray
    noun_disguise: IntArray  # plain item noun -> its obfuscated noun (identity otherwise)
    category_nouns: IntArray  # (categories, nouns per category)
    kind_nouns: tuple[IntArray, ...]  # per item kind: plain noun codes
    kind_euphemisms: tuple[IntArray, ...]
    lookalike_nouns: tuple[IntArray, ...]  # per category, possibly empty

    def term_code(self, term: str) -> int:
        return self.terms.index(term)


def build_wording(specs: tuple[DriftSpec, ...]) -> Wording:
    terms: list[str] = [""]
    classes: list[int] = [NO_CLASS]
    plain: list[bool] = [False]
    disguise: list[int] = [0]

    def add_term(term: str, risk_class: int, is_plain: bool) -> int:
        if term not in terms:
            terms.append(term)
            classes.append(risk_class)
            plain.append(is_plain)
            disguise.append(0)
        return terms.index(term)

    type_terms: list[IntArray] = [np.zeros(0, dtype=np.int64) for _ in LISTING_RISK_TYPES]
    for risk_type, group in (("counterfeit", COUNTERFEIT_TERMS), ("misleading_listing", MISLEADING_TERMS)):
        k = LISTING_RISK_TYPES.index(risk_type)
        type_terms[k] = np.array([add_term(t, k, True) for t in group], dtype=np.int64)
    kind_terms: list[IntArray] = []
    for kind in ITEM_KINDS:
        k = LISTING_RISK_TYPES.index(kind.risk_type)
        codes = [add_term(t, k, True) for t in kind.terms]
        for code, hidden in zip(codes, kind.obfuscated_terms, strict=False):
            disguise[code] = add_term(hidden, k, False)
        kind_terms.append(np.array(codes, dtype=np.int64))
    lookalikes = np.array([terms.index(t) for t in BENIGN_LOOKALIKE_TERMS], dtype=np.int64)
    for spec in specs:
        if spec.kind == "pattern" and spec.keyword:
            add_term(spec.keyword, NO_CLASS, False)

    nouns: list[str] = []
    style: list[int] = []
    noun_disguise: list[int] = []

    def add_nouns(words: tuple[str, ...], noun_style: int) -> IntArray:
        start = len(nouns)
        nouns.extend(words)
        style.extend([noun_style] * len(words))
        noun_disguise.extend(range(start, start + len(words)))
        return np.arange(start, start + len(words), dtype=np.int64)

    category_nouns = np.stack([add_nouns(PRODUCT_NOUNS[c], NOUN_ORDINARY) for c in CATEGORIES])
    kind_nouns: list[IntArray] = []
    kind_euphemisms: list[IntArray] = []
    for kind in ITEM_KINDS:
        plain_nouns = add_nouns(kind.nouns, NOUN_PLAIN)
        if kind.obfuscated_nouns != kind.nouns:
            disguised = add_nouns(kind.obfuscated_nouns, NOUN_OBFUSCATED)
            for code, disguised_code in zip(plain_nouns, disguised, strict=True):
                noun_disguise[int(code)] = int(disguised_code)
        kind_nouns.append(plain_nouns)
        kind_euphemisms.append(add_nouns(kind.euphemisms, NOUN_EUPHEMISM))
    lookalike_nouns = tuple(add_nouns(BENIGN_LOOKALIKE_NOUNS.get(c, ()), NOUN_LOOKALIKE) for c in CATEGORIES)

    return Wording(
        terms=tuple(terms),
        term_class=np.array(classes, dtype=np.int64),
        term_plain=np.array(plain, dtype=bool),
        term_disguise=np.array(disguise, dtype=np.int64),
        type_terms=tuple(type_terms),
        lookalike_terms=lookalikes,
        kind_terms=tuple(kind_terms),
        nouns=tuple(nouns),
        noun_style=np.array(style, dtype=np.int64),
        noun_disguise=np.array(noun_disguise, dtype=np.int64),
        category_nouns=category_nouns,
        kind_nouns=tuple(kind_nouns),
        kind_euphemisms=tuple(kind_euphemisms),
        lookalike_nouns=lookalike_nouns,
    )
