"""Find numbers in text and normalise them, so "1,000", "1000" and "one thousand" compare equal.

Handled: digits with thousands separators and decimals, scale words ("1.3 million", "$2bn"),
number words ("thirty-one", "one hundred and five"), money, percentages, ordinals ("10th",
"tenth"), clock times ("5 pm" = "17:00"), and ISO dates ("2022-01-16" gives 2022, 1 and 16 and
the month name). Each mention becomes a :class:`NumberMention` whose ``value`` is a float.
"""

from __future__ import annotations

import re
from collections.abc import Set
from typing import Literal, NamedTuple

from detectors.grounding.lexicon import MONTHS

__all__ = ["NumberMention", "find_numbers", "numbers_match", "parse_number_words"]

Kind = Literal["number", "money", "percent", "time", "year", "ordinal"]

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "twentieth": 20,
}  # fmt: skip
_SCALES = {
    "hundred": 1e2, "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12,
    "k": 1e3, "m": 1e6, "mn": 1e6, "bn": 1e9, "b": 1e9, "tn": 1e12,
}  # fmt: skip
_WORD_NUM = "|".join(
    sorted(
        [*_UNITS, "hundred", "thousand", "million", "billion", "trillion"], key=len, reverse=True
    )
)
_NUMBER_RE = re.compile(
    r"""
    (?P<iso>\b(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})\b)
    | (?P<clock>\b(?P<h>\d{1,2}):(?P<mi>\d{1,2})(?::\d{1,2})?
        (?:\s*(?P<ampm1>[ap]\.?m\.?))?(?![\w:]))
    | (?P<hour>\b(?P<h2>\d{1,2})\s*(?P<ampm2>[ap]\.?m\.?)(?!\w))
    | (?P<num>(?:(?P<cur>[$€£¥])\s?)?
        (?P<digits>(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.,])\d+(?:\.\d+)?|(?<![\w])\.\d+)
        (?P<ord>st|nd|rd|th)?
        (?:\s*(?P<scale>hundred|thousand|million|billion|trillion|bn|mn|[kmb])(?![a-z]))?
        (?P<pct>\s*(?:%|percent\b|per\s+cent\b))?)
    | (?P<words>\b(?:(?:WORDNUM)(?:[\s-]+(?:and[\s-]+)?(?=(?:WORDNUM)\b))?)+\b
        (?P<pct2>\s*(?:%|percent\b|per\s+cent\b))?)
    | (?P<ordw>\b(?:ORDW)\b)
    """.replace("WORDNUM", _WORD_NUM).replace("ORDW", "|".join(_ORDINALS)),
    re.VERBOSE | re.IGNORECASE,
)


class NumberMention(NamedTuple):
    """One number found in a text."""

    text: str
    """The mention as written."""
    value: float
    """Normalised value (money and percentages keep their face value: "$5" -> 5.0, "5%" -> 5.0)."""
    kind: Kind
    """What kind of quantity it is."""
    start: int
    """Start offset (inclusive)."""
    end: int
    """End offset (exclusive)."""


def parse_number_words(words: str) -> float | None:
    """Parse an English number phrase such as "one hundred and five" or "thirty-one".

    Args:
        words: The phrase (case-insensitive; hyphens, spaces and "and" separate words).

    Returns:
        Its value, or None when the phrase holds a word that is not a number word.
    """
    total = 0.0
    current = 0.0
    seen = False
    for word in re.split(r"[\s-]+", words.lower().strip()):
        if not word or word == "and":
            continue
        if word in _UNITS:
            current += _UNITS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        elif word in _SCALES:
            total += (current or 1) * _SCALES[word]
            current = 0.0
        else:
            return None
        seen = True
    return total + current if seen else None


def _hour(h: int, ampm: str | None) -> float:
    if ampm and ampm[0].lower() == "p" and h < 12:
        return float(h + 12)
    if ampm and ampm[0].lower() == "a" and h == 12:
        return 0.0
    return float(h)


def find_numbers(text: str) -> list[NumberMention]:
    """Find and normalise every number mention in ``text``, in order.

    The lone word "one" is skipped (it is nearly always a pronoun: "one of the", "no one").

    Args:
        text: Any text.

    Returns:
        The mentions; the value of a clock time is its hour (minutes as a fraction).
    """
    out: list[NumberMention] = []
    for m in _NUMBER_RE.finditer(text):
        s, e, t = m.start(), m.end(), m.group().strip()
        if m.group("iso"):
            y, mo, d = int(m.group("y")), int(m.group("mo")), int(m.group("d"))
            out += [
                NumberMention(t, float(y), "year", s, e),
                NumberMention(t, float(d), "number", s, e),
            ]
            if 1 <= mo <= 12:
                out.append(NumberMention(MONTHS[mo - 1], float(mo), "number", s, e))
        elif m.group("clock") or m.group("hour"):
            h = int(m.group("h") or m.group("h2"))
            minutes = int(m.group("mi") or 0)
            out.append(
                NumberMention(
                    t, _hour(h, m.group("ampm1") or m.group("ampm2")) + minutes / 60, "time", s, e
                )
            )
        elif m.group("num"):
            value = float(m.group("digits").replace(",", ""))
            scale = (m.group("scale") or "").lower()
            if scale:
                if len(scale) == 1 and not m.group("cur"):
                    # "5 m" / "3 k" only count as scales after a currency sign.
                    e = m.start("scale") if m.start("scale") > 0 else e
                else:
                    value *= _SCALES[scale]
            kind: Kind = "number"
            if m.group("cur"):
                kind = "money"
            elif m.group("pct"):
                kind = "percent"
            elif m.group("ord"):
                kind = "ordinal"
            elif 1200 <= value <= 2100 and re.fullmatch(r"\d{4}", m.group("digits")):
                kind = "year"
            out.append(NumberMention(text[s:e].strip(), value, kind, s, e))
        elif m.group("words"):
            phrase = re.sub(r"\s*(%|percent|per\s+cent)$", "", t, flags=re.IGNORECASE)
            if phrase.lower() == "one":
                continue
            value_w = parse_number_words(phrase)
            if value_w is not None:
                out.append(
                    NumberMention(t, value_w, "percent" if m.group("pct2") else "number", s, e)
                )
        elif m.group("ordw"):
            out.append(NumberMention(t, float(_ORDINALS[t.lower()]), "ordinal", s, e))
    return out


def numbers_match(value: float, candidates: Set[float], rel_tol: float = 0.005) -> bool:
    """Whether ``value`` equals one of ``candidates`` up to rounding ("1.3 million" = 1,300,000).

    Args:
        value: The claimed value.
        candidates: Values found in the evidence.
        rel_tol: Relative tolerance; rounding a figure to 3 significant digits stays inside it.

    Returns:
        True when a candidate matches.
    """
    if value in candidates:
        return True
    return any(abs(value - c) <= rel_tol * max(abs(value), abs(c)) for c in candidates)
