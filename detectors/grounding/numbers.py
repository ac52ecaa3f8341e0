"""Find numbers in text and normalise them, so "1,000", "1000" and "one thousand" compare equal.

Handled: digits with thousands separators and decimals, scale words ("1.3 million", "$2bn"),
number words ("thirty-one", "one hundred and five"), money, percentages, ordinals ("10th",
"tenth"), clock times ("5 pm" = "17:00"), and ISO dates ("2022-01-16" gives 2022, 1 and 16 and
the month name). Each mention becomes a :class:`NumberMention` whose ``value`` is a float.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal, NamedTuple

from detectors.grounding.lexicon import MONTHS

__all__ = [
    "NumberMention",
    "compatible_kinds",
    "find_numbers",
    "numbers_match",
    "parse_number_words",
    "same_quantity",
]

Kind = Literal["number", "money", "percent", "time", "year", "ordinal", "month"]

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
    | (?P<clock>\b(?P<h>[01]?\d|2[0-4]):(?P<mi>[0-5]\d|0)(?::[0-5]\d)?
        (?:\s*(?P<ampm1>[ap]\.?m\.?))?(?![\w:]))
    | (?P<hour>\b(?P<h2>\d{1,2})\s*(?P<ampm2>[ap]\.?m\.?)(?!\w))
    | (?P<num>(?P<neg>(?<![\w.,\-\u2212])[-\u2212](?=[$€£¥]?\d))?(?:(?P<cur>[$€£¥])\s?)?
        (?P<digits>(?<![\w.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?
          | (?<![\w.,])\d{1,3}(?:\.\d{3}){2,}(?![\d.])
          | (?<![\w.,])\d{1,3}(?:[\u00a0\u2009\u202f]\d{3})+(?!\d)
          | (?<![\w.,])\d{1,3}(?:[ ]\d{3})*[ ]0\d{2}(?:[ ]\d{3})*(?!\d)
          | (?<![\w.,])\d+(?:\.\d+)?(?:[eE][-+]?\d{1,3}(?!\w))?
          | (?<![\w])\.\d+)
        (?P<ord>st|nd|rd|th)?
        (?:\s*(?P<scale>hundred|thousand|million|billion|trillion|bn|mn|[kmb])(?![a-z]))?
        (?P<pct>\s*(?:%|percent\b|per\s+cent\b))?)
    | (?P<words>\b(?:(?:WORDNUM)(?:[\s-]+(?:and[\s-]+)?(?=(?:WORDNUM)\b))?)+\b
        (?P<pct2>\s*(?:%|percent\b|per\s+cent\b))?)
    | (?P<ordw>\b(?:ORDW)\b)
    """.replace("WORDNUM", _WORD_NUM).replace("ORDW", "|".join(_ORDINALS)),
    re.VERBOSE | re.IGNORECASE,
)
# Kinds that may state the same quantity. A bare number may be any of them ("5 million dollars",
# "16" vs "16th"), but money is never a percentage, nor a year a clock time.
_COMPATIBLE = frozenset(
    {(k, k) for k in ("number", "money", "percent", "time", "year", "ordinal")}
    | {
        (a, b)
        for k in ("money", "percent", "time", "year", "ordinal")
        for a, b in [("number", k), (k, "number")]
    }
)

_KINDS: tuple[Kind, ...] = ("number", "money", "percent", "time", "year", "ordinal")


_COMPATIBLE_KINDS: dict[str, tuple[Kind, ...]] = {
    a: tuple(b for b in _KINDS if (a, b) in _COMPATIBLE) for a in _KINDS
}


def compatible_kinds(kind: str) -> tuple[Kind, ...]:
    """The kinds of evidence that may state a claimed quantity of ``kind`` (none for "month")."""
    return _COMPATIBLE_KINDS.get(kind, ())


class NumberMention(NamedTuple):
    """One number found in a text."""

    text: str
    """The mention as written."""
    value: float
    """Normalised value (money and percentages keep their face value: "$5" -> 5.0, "5%" -> 5.0)."""
    kind: Kind
    """What kind of quantity it is; "month" is the month of an ISO date, a word more than a
    number (its ``text`` is the month's name), which :func:`numbers_match` never matches."""
    start: int
    """Start offset (inclusive)."""
    end: int
    """End offset (exclusive)."""
    tol: float = 0.0
    """How far the value may be from what it rounds: half a unit of the last digit written when
    it has decimals or a scale word ("1.3 million" -> 50,000; "2bn" -> 0.5e9), else 0 (exact)."""


def _word_class(word: str) -> str:
    if word in _UNITS:
        return "tens" if _UNITS[word] >= 20 else "unit"
    return "hundred" if word == "hundred" else "scale"


# Which number word may follow which: "twenty one" is one number, "twenty twenty" is two.
_FOLLOWS = {
    "": {"unit", "tens", "hundred", "scale"},
    "unit": {"hundred", "scale"},
    "tens": {"unit", "hundred", "scale"},
    "hundred": {"unit", "tens", "scale"},
    "scale": {"unit", "tens"},
}


def _word_runs(phrase: str) -> list[tuple[int, int, float, float]]:
    """Split a phrase of number words into well-formed numbers.

    Returns:
        ``(start, end, value, tol)`` per number, offsets into ``phrase``; ``tol`` is half the
        last scale word's value ("two million" -> 500,000), or 0.
    """
    runs: list[tuple[int, int, float, float]] = []
    total = current = 0.0
    start = end = -1
    prev, last_scale = "", 0.0
    for m in re.finditer(r"[^\s-]+", phrase.lower()):
        word = m.group()
        if word == "and":
            continue
        if word not in _UNITS and word not in _SCALES:
            # "FiveThirtyEight": number words run together are a name, and end the number.
            if start >= 0:
                runs.append((start, end, total + current, last_scale / 2))
                start = -1
            continue
        cls = _word_class(word)
        if start >= 0 and (cls not in _FOLLOWS[prev] or (cls == "unit" and word == "zero")):
            runs.append((start, end, total + current, last_scale / 2))
            start = -1
        if start < 0:
            total = current = 0.0
            start, prev, last_scale = m.start(), "", 0.0
        if cls in ("unit", "tens"):
            current += _UNITS[word]
        elif cls == "hundred":
            current = (current or 1) * 100
        else:
            total += (current or 1) * _SCALES[word]
            current, last_scale = 0.0, _SCALES[word]
        prev, end = cls, m.end()
    if start >= 0:
        runs.append((start, end, total + current, last_scale / 2))
    return runs


def parse_number_words(words: str) -> float | None:
    """Parse an English number phrase such as "one hundred and five" or "thirty-one".

    Args:
        words: The phrase (case-insensitive; hyphens, spaces and "and" separate words).

    Returns:
        Its value, or None when the phrase holds a word that is not a number word or is not one
        well-formed number ("twenty twenty").
    """
    parts = [w for w in re.split(r"[\s-]+", words.lower().strip()) if w and w != "and"]
    if not parts or any(w not in _UNITS and w not in _SCALES for w in parts):
        return None
    runs = _word_runs(words)
    return runs[0][2] if len(runs) == 1 else None


def _rounding(mantissa: str, exponent: int, scale: float) -> float:
    """Half a unit of the last digit written ("1.35" -> 0.005), times the scale; 0 when exact."""
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    if not decimals and scale == 1.0:
        return 0.0
    return 0.5 * 10.0 ** (exponent - decimals) * scale


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
                out.append(NumberMention(MONTHS[mo - 1], float(mo), "month", s, e))
        elif m.group("clock") or m.group("hour"):
            h = int(m.group("h") or m.group("h2"))
            minutes = int(m.group("mi") or 0)
            out.append(
                NumberMention(
                    t, _hour(h, m.group("ampm1") or m.group("ampm2")) + minutes / 60, "time", s, e
                )
            )
        elif m.group("num"):
            out.append(_digit_mention(text, m))
        elif m.group("words"):
            pct = bool(m.group("pct2"))
            runs = _word_runs(text[s : m.start("pct2")] if pct else t)
            for i, (a, b, value, tol) in enumerate(runs):
                last = i == len(runs) - 1
                word = text[s + a : e if last and pct else s + b]
                if word.lower() == "one":
                    continue
                kind: Kind = "percent" if last and pct else "number"
                out.append(NumberMention(word, value, kind, s + a, s + a + len(word), tol))
        elif m.group("ordw"):
            out.append(NumberMention(t, float(_ORDINALS[t.lower()]), "ordinal", s, e))
    return out


_DOT_GROUPS = re.compile(r"\d{1,3}(?:\.\d{3}){2,}")
_SEPARATORS = re.compile(r"[,\s\u00a0\u2009\u202f]")
_FOUR_DIGITS = re.compile(r"\d{4}")


def _digit_mention(text: str, m: re.Match[str]) -> NumberMention:
    """The mention of a number written with digits (``m`` matched the ``num`` branch)."""
    s, e = m.start(), m.end()
    digits = m.group("digits")
    mantissa, _, exp = digits.lower().partition("e")
    if _DOT_GROUPS.fullmatch(mantissa):  # "1.000.000": dots group thousands
        mantissa = mantissa.replace(".", "")
    mantissa = _SEPARATORS.sub("", mantissa)
    exponent = int(exp) if exp else 0
    value = float(mantissa) * 10.0**exponent
    factor = 1.0
    scale = (m.group("scale") or "").lower()
    if scale:
        if len(scale) == 1 and not m.group("cur"):
            # "5 m" / "3 k" only count as scales after a currency sign.
            e = m.start("scale") if m.start("scale") > 0 else e
        else:
            factor = _SCALES[scale]
    kind: Kind = "number"
    if m.group("cur"):
        kind = "money"
    elif m.group("pct"):
        kind = "percent"
    elif m.group("ord"):
        kind = "ordinal"
    elif 1200 <= value <= 2100 and _FOUR_DIGITS.fullmatch(digits) and not m.group("neg"):
        kind = "year"
    sign = -1.0 if m.group("neg") else 1.0
    tol = _rounding(mantissa, exponent, factor)
    return NumberMention(text[s:e].strip(), sign * value * factor, kind, s, e, tol)


def numbers_match(claimed: NumberMention | float, found: Iterable[NumberMention | float]) -> bool:
    """Whether the evidence states the claimed quantity.

    A match needs compatible kinds (a bare number may be money, a percentage, a year...; money is
    never a percentage) and the same value, exactly for integers, years, ordinals and times, and up
    to the claim's own rounding for a value written with decimals or a scale word ("1.3 million"
    matches 1,304,000; "1,304,000" does not match "1.3 million": the claim would be more precise
    than its evidence). Months of ISO dates never match: they are checked as words.

    Args:
        claimed: A mention in the claim (a bare float is an exact plain number).
        found: Mentions in the evidence (bare floats likewise).

    Returns:
        True when one of ``found`` states the claimed quantity.
    """
    return any(same_quantity(_mention(claimed), _mention(f)) for f in found)


def _mention(x: NumberMention | float) -> NumberMention:
    return x if isinstance(x, NumberMention) else NumberMention(str(x), float(x), "number", 0, 0)


def same_quantity(claimed: NumberMention, found: NumberMention) -> bool:
    """Whether ``found`` states ``claimed`` (see :func:`numbers_match`)."""
    if (claimed.kind, found.kind) not in _COMPATIBLE:
        return False
    slack = claimed.tol + 1e-9 * max(abs(claimed.value), abs(found.value), 1.0)
    return abs(claimed.value - found.value) <= slack
