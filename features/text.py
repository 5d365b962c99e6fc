"""Keyword signals over listing text. One implementation for a training frame and a single request: the
patterns are compiled once per process (a request must not pay for compiling them)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

import numpy as np

# Terms investigators flag. Word boundaries keep "cure" from matching "secure".
COUNTERFEIT_TERMS: tuple[str, ...] = (
    "replica", "1:1", "aaa", "mirror quality", "inspired by", "copy", "fake", "dupe", "super clone",
    "factory direct",
)
PROHIBITED_TERMS: tuple[str, ...] = (
    "vape", "nicotine", "thc", "cbd", "switchblade", "silencer", "suppressor", "ammo", "prescription",
    "no prescription", "oxycodone", "percocet", "xanax", "codeine", "adderall", "ivory", "rhino horn", "pangolin",
    "tiger bone", "80% lower", "80 lower", "solvent trap", "untraceable", "discreet shipping",
)
UNSAFE_TERMS: tuple[str, ...] = (
    "no ce mark", "uncertified", "not certified", "no safety certificate", "bulk oem", "export version",
    "recalled", "discontinued model", "no longer sold in stores", "as-is no returns",
)
# Moving the sale off the platform (to a messenger or an own shop) is how scams and illegal sales avoid its
# protections; "signal" alone is too common a word ("wifi signal"), so only the phrases count.
OFF_PLATFORM_TERMS: tuple[str, ...] = (
    "telegram", "whatsapp", "wechat", "on signal", "dm me", "text me", "link in profile", "link in bio",
    "my own shop", "ask me for the link", "order through our website",
)
MISLEADING_TERMS: tuple[str, ...] = (
    "100% original", "guaranteed", "miracle", "cure", "instant results", "lose weight fast",
    "doctor recommended", "limited time only", "best price ever", "risk free",
)

# Joins texts for the substring screen: a term without this character cannot match across two texts.
_SEPARATOR = "\n"
# ASCII letters as UTF-8 bytes. Every other character encodes to bytes >= 0x80, so counting these bytes in
# the UTF-8 encoding counts exactly the ASCII letters of the text.
_ASCII_UPPER = bytes(range(ord("A"), ord("Z") + 1))
_ASCII_LETTERS = _ASCII_UPPER + bytes(range(ord("a"), ord("z") + 1))


@cache
def _pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    # longest first, so "no prescription" counts once rather than as "prescription" inside it;
    # lookarounds (not consumed characters) so that adjacent terms both count
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])", re.IGNORECASE)


@cache
def _screen_terms(terms: tuple[str, ...]) -> tuple[str, ...] | None:
    """Lower-cased terms whose plain substrings an ASCII text must contain to match `_pattern(terms)` at all,
    or None when no such exact screen exists.

    For ASCII text, IGNORECASE matching of ASCII terms is exactly matching after `str.lower()`, so a text
    whose lower-cased form contains none of these has no match. Non-ASCII text is never screened out: under
    IGNORECASE some non-ASCII letters (the Kelvin sign, the long s) match ASCII ones. A term containing a
    shorter term is dropped: finding it implies finding the shorter one.
    """
    lowered = {t.lower() for t in terms}
    if not all(t and t.isascii() and _SEPARATOR not in t for t in lowered):
        return None
    return tuple(sorted(t for t in lowered if not any(s != t and s in t for s in lowered)))


def _candidate_rows(texts: np.ndarray, terms: tuple[str, ...]) -> Sequence[int]:
    """Rows that may match `terms` (a superset of the rows that do): the word-boundary regex scans every
    position of a text in Python's `re` and costs ~10 µs a text, while most texts contain no term at all.
    All ASCII texts are lower-cased and joined into one string, so `str.find` scans them in C per term.
    Plain lists until a term is found: a single-record request then pays for no numpy call here."""
    screen = _screen_terms(terms)
    if screen is None:
        return range(len(texts))
    is_ascii = list(map(str.isascii, texts))
    plain: Sequence[str] | np.ndarray = texts
    rows: list[int] = []
    if not all(is_ascii):
        plain = [t if a else "" for t, a in zip(texts, is_ascii, strict=True)]
        rows = [i for i, a in enumerate(is_ascii) if not a]
    find = _SEPARATOR.join(plain).lower().find
    positions: list[int] = []
    for term in screen:
        at = find(term)
        while at >= 0:
            positions.append(at)
            # an occurrence lies inside one text; any overlapping one is in the same text, so skip past it
            at = find(term, at + len(term))
    if not positions:
        return rows
    spans = np.fromiter(map(len, plain), dtype=np.int64, count=len(texts)) + len(_SEPARATOR)
    starts = np.cumsum(spans) - spans
    found = np.searchsorted(starts, positions, side="right") - 1
    return np.union1d(np.asarray(rows, dtype=np.int64), found).tolist()


def count_term_hits(texts: np.ndarray, terms: tuple[str, ...]) -> np.ndarray:
    """Number of matches of any of `terms` in each text (case-insensitive, on word boundaries)."""
    findall = _pattern(terms).findall
    out = np.zeros(len(texts), dtype=np.float64)
    for row in _candidate_rows(texts, terms):
        out[row] = len(findall(texts[row]))
    return out


# Look-alike characters sellers use to hide terms from filters ("v4pe", "0xy", "t1ger"): inside a token that also
# has letters they read as these letters. Punctuation between two characters of a word is dropped ("th-c",
# "supp.ressor", "m.g"); a token of digits only ("80", "30") is left alone.
_LOOK_ALIKES = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "@": "a", "$": "s"})
_INNER_PUNCTUATION = re.compile(r"(?<=[0-9a-z@$])[.\-](?=[0-9a-z@$])")
# one pass, no backtracking (a token is a maximal run): a 20,000-character run of digits costs what it is long
_TOKEN = re.compile(r"[0-9a-z@$]+")


def _read_token(match: re.Match[str]) -> str:
    token = match.group(0)
    return token.translate(_LOOK_ALIKES) if not token.isdigit() and not token.isalpha() else token


def _readable(text: str) -> str:
    return _TOKEN.sub(_read_token, _INNER_PUNCTUATION.sub("", text.lower()))


def deobfuscated(texts: np.ndarray) -> np.ndarray:
    """Texts as a reader would read them: look-alike digits and symbols inside words read as letters and
    punctuation inside words dropped, so "disposable v4pe th-c cart" reads "disposable vape thc cart"."""
    return np.array([_readable(t) for t in texts], dtype=object)


def count_disguised_term_hits(texts: np.ndarray, terms: tuple[str, ...]) -> np.ndarray:
    """`count_term_hits` on the texts as written and as a reader reads them (`deobfuscated`): whichever
    finds more, so a disguised term counts like a plain one and a plain one is never lost."""
    plain = count_term_hits(texts, terms)
    return np.maximum(plain, count_term_hits(deobfuscated(texts), terms))


def uppercase_share(texts: np.ndarray) -> np.ndarray:
    """Share of letters (ASCII A-Z, a-z) in upper case: shouting titles are a spam and scam tell."""

    def share(text: str) -> float:
        # byte deletion runs in C, unlike a loop over characters; "surrogatepass" encodes any str (lone
        # surrogates from JSON escapes too), and non-ASCII characters only to bytes >= 0x80
        raw = text.encode("utf-8", "surrogatepass")
        letters = len(raw) - len(raw.translate(None, _ASCII_LETTERS))
        return (len(raw) - len(raw.translate(None, _ASCII_UPPER))) / letters if letters else 0.0

    return np.fromiter(map(share, texts), dtype=np.float64, count=len(texts))


def text_length(texts: np.ndarray) -> np.ndarray:
    return np.fromiter(map(len, texts), dtype=np.float64, count=len(texts))
