"""Keyword signals over listing text. One implementation for a training frame and a single request: the
patterns are compiled once per process (a request must not pay for compiling them)."""

from __future__ import annotations

import re
from functools import cache

import numpy as np

# Terms investigators flag. Word boundaries keep "cure" from matching "secure".
COUNTERFEIT_TERMS: tuple[str, ...] = (
    "replica", "1:1", "aaa", "mirror quality", "inspired by", "copy", "fake", "dupe", "super clone",
    "factory direct",
)
PROHIBITED_TERMS: tuple[str, ...] = (
    "vape", "nicotine", "thc", "cbd", "switchblade", "silencer", "suppressor", "ammo", "prescription",
    "no prescription", "oxycodone", "ivory", "rhino horn", "pangolin", "tiger bone",
)
MISLEADING_TERMS: tuple[str, ...] = (
    "100% original", "guaranteed", "miracle", "cure", "instant results", "lose weight fast",
    "doctor recommended", "limited time only", "best price ever", "risk free",
)


@cache
def _pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    # longest first, so "no prescription" counts once rather than as "prescription" inside it;
    # lookarounds (not consumed characters) so that adjacent terms both count
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])", re.IGNORECASE)


@cache
def _non_letters() -> re.Pattern[str]:
    return re.compile(r"[^A-Za-z]+")


def count_term_hits(texts: np.ndarray, terms: tuple[str, ...]) -> np.ndarray:
    """Number of matches of any of `terms` in each text (case-insensitive, on word boundaries)."""
    finditer = _pattern(terms).finditer
    return np.fromiter((sum(1 for _ in finditer(t)) for t in texts), dtype=np.float64, count=len(texts))


def uppercase_share(texts: np.ndarray) -> np.ndarray:
    """Share of letters in upper case: shouting titles are a spam and scam tell."""
    strip = _non_letters().sub

    def share(text: str) -> float:
        letters = strip("", text)
        return sum(1 for ch in letters if ch.isupper()) / len(letters) if letters else 0.0

    return np.fromiter((share(t) for t in texts), dtype=np.float64, count=len(texts))


def text_length(texts: np.ndarray) -> np.ndarray:
    return np.fromiter((len(t) for t in texts), dtype=np.float64, count=len(texts))
