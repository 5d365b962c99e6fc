"""Prohibited and unsafe item kinds: what they are called, how they are priced, where they are listed.

These goods are cheap (a few to a few dozen currency units, small stock), so their monetary exposure is small
while their harm is high. Sellers name them plainly, in an obfuscated spelling ("v4pe", "th-c", "0xy") or by
a euphemism ("party pen cartridge"); the plain spellings are the ones keyword screens catch. Everything here
is an immutable constant indexed by integer codes, like synthetic/vocab.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from synthetic.vocab import CATEGORIES


@dataclass(frozen=True)
class ItemKind:
    """One kind of prohibited or unsafe good.

    ``nouns`` and ``obfuscated_nouns`` are parallel: the same product spelt plainly and disguised.
    ``terms`` and ``obfuscated_terms`` likewise (an empty obfuscation means sellers drop the term instead).
    Prices: prohibited goods have no genuine market, so ``price_median`` is in currency units; unsafe goods are
    cheap versions of ordinary products, so it is a ratio to the listing's reference price.
    """

    name: str
    risk_type: str
    share: float  # share among the listings of its risk type
    price_median: float
    price_sigma: float
    price_is_ratio: bool
    stock_median: float
    categories: dict[str, float]
    nouns: tuple[str, ...]
    obfuscated_nouns: tuple[str, ...]
    euphemisms: tuple[str, ...]
    terms: tuple[str, ...]
    obfuscated_terms: tuple[str, ...] = ()

    def category_weights(self) -> tuple[float, ...]:
        return tuple(self.categories.get(c, 0.0) for c in CATEGORIES)


ITEM_KINDS: tuple[ItemKind, ...] = (
    ItemKind(
        name="controlled_drug",
        risk_type="prohibited_item",
        share=0.28,
        price_median=16.0,
        price_sigma=0.6,
        price_is_ratio=False,
        stock_median=3.0,
        categories={"pharmacy_adjacent": 0.5, "health": 0.4, "beauty": 0.1},
        nouns=("oxycodone 30mg tablets", "percocet 10mg", "xanax bars", "codeine cough syrup", "adderall 20mg"),
        obfuscated_nouns=("0xyc0done 30mg tabs", "perc 10 m.g", "x4nax b4rs", "c0deine syrup", "addy 20 m.g"),
        euphemisms=("pain relief tabs", "sleep helper pills", "study focus pills"),
        terms=("no prescription needed", "rx pills", "oxycodone", "discreet shipping"),
        obfuscated_terms=("no presc needed", "r.x pills", "0xy", "d1screet shipping"),
    ),
    ItemKind(
        name="vape_thc",
        risk_type="prohibited_item",
        share=0.30,
        price_median=20.0,
        price_sigma=0.45,
        price_is_ratio=False,
        stock_median=4.0,
        categories={"health": 0.35, "electronics": 0.3, "pharmacy_adjacent": 0.2, "home": 0.15},
        nouns=("disposable vape thc cart", "thc vape cartridge", "thc gummies 500mg", "live resin vape pen"),
        obfuscated_nouns=("disposable v4pe th-c cart", "th-c v4pe cartridge", "th-c gummies 500mg",
                          "live resin v@pe pen"),
        euphemisms=("party pen cartridge", "relax gummies", "premium oil pen"),
        terms=("thc cart", "disposable vape", "thc", "nicotine 50mg"),
        obfuscated_terms=("th-c cart", "disposable v4pe", "th-c", "nic0tine 50mg"),
    ),
    ItemKind(
        name="weapon",
        risk_type="prohibited_item",
        share=0.26,
        price_median=26.0,
        price_sigma=0.5,
        price_is_ratio=False,
        stock_median=3.0,
        categories={"sports": 0.55, "collectibles": 0.25, "home": 0.2},
        nouns=("9mm ammo 50 rounds", "80% lower receiver", "solvent trap kit", "switchblade knife",
               "suppressor adapter"),
        obfuscated_nouns=("9mm amm0 50 rnds", "80 perc l0wer", "s0lvent tr4p kit", "sw1tchblade knife",
                          "supp.ressor adapter"),
        euphemisms=("fuel filter cleaning kit", "hunting accessory kit", "tactical tool"),
        terms=("ammo", "80% lower", "suppressor", "untraceable"),
        obfuscated_terms=("amm0", "80 perc lower", "supp.ressor", "untr4ceable"),
    ),
    ItemKind(
        name="wildlife",
        risk_type="prohibited_item",
        share=0.16,
        price_median=30.0,
        price_sigma=0.6,
        price_is_ratio=False,
        stock_median=2.0,
        categories={"collectibles": 0.6, "health": 0.25, "home": 0.15},
        nouns=("carved ivory pendant", "rhino horn powder", "pangolin scales", "tiger bone balm"),
        obfuscated_nouns=("carved iv0ry pendant", "rh1no h0rn powder", "pang0lin sc4les", "t1ger b0ne balm"),
        euphemisms=("antique carved pendant", "traditional remedy powder", "rare natural material carving"),
        terms=("ivory", "rhino horn", "pangolin", "tiger bone"),
        obfuscated_terms=("iv0ry", "rh1no h0rn", "pang0lin", "t1ger b0ne"),
    ),
    ItemKind(
        name="uncertified_electrical",
        risk_type="unsafe_product",
        share=0.6,
        price_median=0.4,
        price_sigma=0.5,
        price_is_ratio=True,
        stock_median=10.0,
        categories={"electronics": 0.7, "home": 0.2, "toys": 0.1},
        nouns=("65w fast charger", "usb wall charger", "hoverboard battery pack", "18650 lithium battery pack",
               "electric space heater", "multi-plug extension lead"),
        obfuscated_nouns=("65w fast charger", "usb wall charger", "hoverboard battery pack",
                          "18650 lithium battery pack", "electric space heater", "multi-plug extension lead"),
        euphemisms=(),
        terms=("no ce mark", "uncertified", "bulk oem", "export version"),
    ),
    ItemKind(
        name="recalled_product",
        risk_type="unsafe_product",
        share=0.4,
        price_median=0.75,
        price_sigma=0.4,
        price_is_ratio=True,
        stock_median=5.0,
        categories={"toys": 0.5, "home": 0.35, "sports": 0.15},
        nouns=("infant sleeper", "drop-side crib", "magnetic ball set", "baby walker", "kids metal bracelet",
               "bike helmet 2019 model"),
        obfuscated_nouns=("infant sleeper", "drop-side crib", "magnetic ball set", "baby walker",
                          "kids metal bracelet", "bike helmet 2019 model"),
        euphemisms=(),
        terms=("recalled", "discontinued model", "no longer sold in stores", "as-is no returns"),
    ),
)
ITEM_KIND_NAMES: tuple[str, ...] = tuple(k.name for k in ITEM_KINDS)


def kinds_of(risk_type: str) -> tuple[int, ...]:
    return tuple(i for i, k in enumerate(ITEM_KINDS) if k.risk_type == risk_type)


def type_category_weights(risk_type: str) -> tuple[float, ...]:
    """Where a risk type's items are listed: the share-weighted mix of its kinds' category weights."""
    kinds = [ITEM_KINDS[i] for i in kinds_of(risk_type)]
    total = sum(k.share for k in kinds)
    mixed = [sum(k.share * w for k, w in zip(kinds, col, strict=True)) / total
             for col in zip(*(k.category_weights() for k in kinds), strict=True)]
    return tuple(mixed)


def _check() -> None:
    for kind in ITEM_KINDS:
        unknown = set(kind.categories) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"{kind.name}: unknown categories {sorted(unknown)}")
        if len(kind.nouns) != len(kind.obfuscated_nouns):
            raise ValueError(f"{kind.name}: nouns and obfuscated_nouns must be parallel")
        if kind.obfuscated_terms and len(kind.terms) != len(kind.obfuscated_terms):
            raise ValueError(f"{kind.name}: terms and obfuscated_terms must be parallel")


_check()
