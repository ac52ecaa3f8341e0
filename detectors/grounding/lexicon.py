"""Word-level text processing for lexical grounding checks: tokens, stems, stopwords, entities.

Everything here is rule-based and weight-free. Offsets are Python string indices (code points),
the same unit the claim and passage spans use.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from typing import NamedTuple

__all__ = [
    "DISCOURSE",
    "MONTHS",
    "NEGATIONS",
    "STOPWORDS",
    "Token",
    "content_stems",
    "entities",
    "prefix",
    "sanitize",
    "split_identifier",
    "stem",
    "tokens",
]

_SURROGATES = re.compile("[\ud800-\udfff]")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|_+|\.")
# What may stand between two words of one name ("J. B. Pritzker", "Smith-Jones"); a comma
# may not ("Meanwhile, Blue Kim" is two names).
_NAME_GAP = re.compile(r"[ .\-&]{0,2}")
_DOUBLE_END = re.compile(r"([b-df-hj-kmnp-rt-vx-z])\1$")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


MONTHS: tuple[str, ...] = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
NEGATIONS: frozenset[str] = _words(
    """
    no not never none nor without cannot can't don't doesn't didn't isn't aren't wasn't
    weren't won't lacks lack neither n't
    """
)

# English function words plus the discourse and meta words that responses add around facts
# ("the passage mentions", "overall", "additionally"): none of them is evidence of a fact.
STOPWORDS: frozenset[str] = _words(
    """
    a about above after again against all also although am among an and any are as at be
    because been before being below between both but by can could did do does doing down
    during each either else etc even ever every few for from further had has have having he
    her here hers herself him himself his how however i if in into is it its itself just
    least less let like made make makes many may me might more most much must my myself
    neither no nor not now of off on once one only or other others otherwise our ours
    ourselves out over own per quite rather same several shall she should since so some such
    than that the their theirs them themselves then there therefore these they this those
    though through thus to too toward towards under until up upon us very via was we were
    what whatever when where whereas whether which while who whom whose why will with within
    without would yet you your yours yourself yourselves s t don doesn didn isn aren wasn
    weren won wouldn couldn shouldn hasn haven hadn ve ll re d m according additionally also
    based context document documents furthermore information mentioned moreover overall
    passage passages provided source sources summary text answer question response stated
    states state given note notes article am pm
    """
)
# Words that frame, connect or evaluate facts rather than state them (reporting verbs,
# connectives, presentational verbs): a response may use them freely, so they are not checked.
DISCOURSE: frozenset[str] = _words(
    """
    despite due including include includes included various particularly particular
    currently still specifically typically primarily generally finally alternatively
    especially mainly often usually several different certain specific significant important
    main key overall said says stated stating describe described describes describing
    mention mentions noted noting expressed expressing express reported reporting
    highlighted highlights highlighting explained explains added adding claimed claims
    argued argues suggests suggest suggested indicates indicate indicated refers refer
    referred appears appear appeared located offers offer offered offering provides provide
    provided providing features featuring available known considered called use uses using
    used make making need needs help helps allows allow ensure take takes taking come comes
    become becomes found find get gets set well positive negative mixed focus aspect aspects
    regarding related involves involved involve example instance however although thus hence
    furthermore while whereas meanwhile ultimately indeed instead besides likewise similarly
    consequently accordingly nonetheless nevertheless notably importantly essentially
    """
)


class Token(NamedTuple):
    """A word with its span in the text it came from."""

    text: str
    """The word as written."""
    start: int
    """Start offset (inclusive)."""
    end: int
    """End offset (exclusive)."""


def sanitize(text: str) -> str:
    """Replace lone UTF-16 surrogates with U+FFFD, keeping every offset unchanged.

    Args:
        text: Any Python string (may hold surrogates from ``surrogateescape`` decoding).

    Returns:
        A string of the same length that encodes to UTF-8.
    """
    return _SURROGATES.sub("\ufffd", text)


def tokens(text: str) -> Iterator[Token]:
    """Yield the word tokens of ``text`` (letters and digits, inner apostrophes kept)."""
    for match in _WORD.finditer(text):
        yield Token(match.group(), match.start(), match.end())


def split_identifier(name: str) -> str:
    """Turn a field name like ``RestaurantsGoodForGroups`` or ``review_text`` into words.

    A camel-case name keeps its joined form too ("WiFi" -> "Wi Fi WiFi"), so both spellings match.
    """
    words = _CAMEL.sub(" ", name).strip()
    return f"{words} {name}" if " " in words and name.isalnum() else words


def prefix(word: str, n: int = 5) -> str:
    """The first ``n`` characters of the folded word (derivations: "marriage"/"married")."""
    return _fold(word)[:n]


@lru_cache(maxsize=1 << 16)
def _fold(word: str) -> str:
    word = unicodedata.normalize("NFKD", word.lower())
    word = "".join(ch for ch in word if not unicodedata.combining(ch))
    word = word.replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    return word.replace("'", "")


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A light, conservative suffix-stripping stemmer (plural, -ing, -ed, -ly), cut to 7 chars.

    Over-stemming would make unsupported words look supported, so only inflections are removed;
    the cut to 7 characters merges derivations such as "lubricate"/"lubricated".

    Args:
        word: A single word.

    Returns:
        Its stem, lower-cased and accent-folded.
    """
    w = _fold(word)
    if len(w) <= 3 or not w.isalpha():
        return w
    for suffix, repl in (
        ("ies", "y"), ("ied", "y"), ("ingly", ""), ("edly", ""), ("ings", ""), ("ing", ""),
        ("ed", ""), ("es", ""), ("s", ""), ("ly", ""),
    ):  # fmt: skip
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            if suffix == "s" and w.endswith(("ss", "us", "is")):
                break
            if suffix == "es" and not w.endswith(("ses", "xes", "zes", "ches", "shes")):
                continue
            w = w[: len(w) - len(suffix)] + repl
            break
    w = _DOUBLE_END.sub(r"\1", w)
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]
    return w[:7]


def content_stems(text: str) -> list[tuple[str, Token]]:
    """Content words of ``text`` (alphabetic, not stopwords) as ``(stem, token)`` pairs."""
    out: list[tuple[str, Token]] = []
    for tok in tokens(text):
        folded = _fold(tok.text)
        if len(folded) < 2 or not folded.isalpha() or folded in STOPWORDS or folded in DISCOURSE:
            continue
        out.append((stem(folded), tok))
    return out


_SENTENCE_MARKS = frozenset({".", "!", "?", ":", '"', ""})


def _last_visible(text: str, end: int) -> str:
    """The last non-space character of ``text[:end]`` ("" if none), without copying the prefix.

    Only whitespace is walked over, and the words of one text are apart, so the walks add up to
    the text's length (slicing ``text[:end]`` for every word was quadratic in a long claim).
    """
    i = end
    while i > 0 and text[i - 1].isspace():
        i -= 1
    return text[i - 1] if i else ""


def entities(text: str) -> list[Token]:
    """Capitalised word sequences (names, places, organisations) in ``text``.

    A single capitalised word that opens a sentence counts only if it is not a function word,
    so "The" or "However" never become entities, while "Copeland" does.

    Args:
        text: A claim or passage.

    Returns:
        One token per entity, its text spanning the whole name (e.g. "Pero Antic").
    """
    out: list[Token] = []
    words = list(tokens(text))
    i = 0
    while i < len(words):
        tok = words[i]
        if not (
            tok.text[0].isupper() or (tok.text[0].isdigit() and any(c.isupper() for c in tok.text))
        ):
            i += 1
            continue
        j = i
        while (
            j + 1 < len(words)
            and words[j + 1].text[0].isupper()
            and _NAME_GAP.fullmatch(text, words[j].end, words[j + 1].start)
        ):
            j += 1
        sentence_start = tok.start == 0 or _last_visible(text, tok.start) in _SENTENCE_MARKS
        span = Token(text[tok.start : words[j].end], tok.start, words[j].end)
        named = j > i or not (sentence_start or _fold(tok.text) in STOPWORDS)
        if named and _fold(span.text) not in STOPWORDS:
            out.append(span)
        i = j + 1
    return out
