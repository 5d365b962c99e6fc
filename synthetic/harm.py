"""Harm, kept apart from money: severity of the harm class times the number of people a violation reaches.

A THC cart at 8 currency units carries little money but a lot of harm; a counterfeit handbag the opposite.
Harm units are comparable across entities and risk types; the policy side decides how to weigh them.
"""

from __future__ import annotations

import numpy as np

from synthetic._types import FloatArray, IntArray, lognormal
from synthetic.config import HarmConfig
from synthetic.items import ITEM_KIND_NAMES
from synthetic.vocab import CATEGORIES, HARM_CLASSES, RISK_TYPE_HARM_CLASS

_HEALTH_CATEGORIES = np.array([c in ("health", "pharmacy_adjacent", "beauty") for c in CATEGORIES])


def harm_class_codes(risk_types: tuple[str, ...]) -> IntArray:
    """HARM_CLASSES code of each risk type, in the order of ``risk_types``."""
    return np.array([HARM_CLASSES.index(RISK_TYPE_HARM_CLASS[t]) for t in risk_types], dtype=np.int64)


def _severity(cfg: HarmConfig, harm_class: IntArray) -> FloatArray:
    table = np.array([cfg.severity.get(c, 0.0) for c in HARM_CLASSES])
    return table[harm_class]


def harm_if_violation(
    cfg: HarmConfig, rng: np.random.Generator, harm_class: IntArray, reach: FloatArray, multiplier: FloatArray
) -> FloatArray:
    """Harm units the entity would cause if it is a violation: severity x reach x multiplier x noise."""
    noise = lognormal(rng, 1.0, cfg.noise_sigma, len(harm_class))
    return np.round(_severity(cfg, harm_class) * reach * multiplier * noise, 4)


def listing_multiplier(cfg: HarmConfig, kind: IntArray, category: IntArray, harm_class: IntArray) -> FloatArray:
    """Per listing: the item kind's multiplier for prohibited and unsafe goods, the health-claims multiplier
    for misleading claims in health categories, 1 otherwise."""
    kinds = np.array([cfg.item_kind_multiplier.get(k, 1.0) for k in ITEM_KIND_NAMES])
    item_class = np.isin(harm_class, [HARM_CLASSES.index("illegal_or_dangerous"), HARM_CLASSES.index("safety")])
    by_kind = np.where(item_class & (kind >= 0), kinds[np.maximum(kind, 0)], 1.0)
    health_claim = (harm_class == HARM_CLASSES.index("misleading")) & _HEALTH_CATEGORIES[category]
    return np.where(health_claim, cfg.health_claims_multiplier, by_kind)
