"""Keyword signals over listing text, counted with Arrow's regex kernel for frames and single records alike."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


def _pattern(terms: tuple[str, ...]) -> str:
    escaped = "|".join(_escape(t) for t in terms)
    return rf"(?i)(?:^|[^a-z0-9])(?:{escaped})(?:$|[^a-z0-9])"


def _escape(term: str) -> str:
    # RE2 syntax: escape the regex metacharacters that can appear in marketplace slang
    return "".join("\\" + ch if ch in r".^$*+?()[]{}|\\" else ch for ch in term)


def count_term_hits(texts: np.ndarray, terms: tuple[str, ...]) -> np.ndarray:
    """Number of matches of any of `terms` in each text (case-insensitive, on word boundaries)."""
    if len(texts) == 0:
        return np.zeros(0, dtype=np.float64)
    counts = pc.count_substring_regex(pa.array(texts, type=pa.string()), _pattern(terms))
    return counts.to_numpy(zero_copy_only=False).astype(np.float64)


def uppercase_share(texts: np.ndarray) -> np.ndarray:
    """Share of letters in upper case: shouting titles are a spam and scam tell."""
    arr = pa.array(texts, type=pa.string())
    letters = pc.utf8_length(pc.replace_substring_regex(arr, r"[^A-Za-z]", "")).to_numpy(zero_copy_only=False)
    upper = pc.utf8_length(pc.replace_substring_regex(arr, r"[^A-Z]", "")).to_numpy(zero_copy_only=False)
    return np.where(letters > 0, upper / np.maximum(letters, 1), 0.0).astype(np.float64)


def text_length(texts: np.ndarray) -> np.ndarray:
    return pc.utf8_length(pa.array(texts, type=pa.string())).to_numpy(zero_copy_only=False).astype(np.float64)
