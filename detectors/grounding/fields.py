"""Field-aware checks for structured contexts: yes/no fields mentioned with the wrong polarity.

In a record such as ``{"OutdoorSeating": False, "WiFi": "no", "Music": None}`` the field name
is in the context whatever its value, so word overlap cannot tell "offers outdoor seating" from
"no outdoor seating". Here each yes/no/unknown field is matched to the claims that name it, and
the claim's polarity there (a negation just before or after the name, in the same clause) is
compared with the value: a positive mention of a false field, a negative mention of a true one, or
a mention of an unknown (null) one that does not say it is unstated ("does not specify whether
...") is a conflict.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from detectors.grounding.lexicon import NEGATIONS, content_stems, stem, tokens
from detectors.grounding.passages import Passage

__all__ = ["BoolField", "bool_fields", "field_conflicts"]

_TRUE = frozenset({"yes", "true", "free", "paid", "1"})
_FALSE = frozenset({"no", "false", "0"})
_NULL = frozenset({"none", "null", "nan", ""})
# Generic prefixes of business-record field names ("RestaurantsTakeOut", "BusinessParking").
# Stemmed, as they are compared with stems.
_GENERIC = frozenset(stem(w) for w in ("restaurants", "business", "attributes", "has", "good"))
_BEFORE, _AFTER = 4, 3
_JOINERS = frozenset({"and", "but", "or", "while", "whereas", "yet", "though", "although"})
# Backwards, a negation keeps its scope over a list ("no WiFi or parking" has neither; "does not
# offer street parking, valet ...") but not across a joiner or a sentence mark ("no outdoor
# seating, but WiFi is free": "but" ends the negated clause).
_BACK_JOINERS = _JOINERS - {"or"}
_PUNCT = re.compile(r"[,;.:]")
_BACK_PUNCT = re.compile(r"[;.:]")
# Words that say a thing is not stated: "does not specify whether it offers takeout" agrees with
# an unknown (null) field.
_UNSTATED = frozenset(
    stem(w)
    for w in (
        "specify unspecified mention information info details unknown unclear indicate listed"
    ).split()
)


class BoolField(NamedTuple):
    """A yes/no/unknown field of a structured context."""

    stems: frozenset[str]
    """Stems that name the field (generic prefixes dropped)."""
    compact: str
    """The field name lower-cased without separators ("wifi", "outdoorseating")."""
    value: bool | None
    """True, False, or None (unknown)."""
    passage_id: int
    """The field's passage."""


def _value(raw: str) -> bool | str | None:
    v = raw.strip().lower().removeprefix("u'").strip("'\"")
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    if v in _NULL:
        return None
    return "other"


def bool_fields(passages: list[Passage]) -> list[BoolField]:
    """The yes/no/unknown fields among ``passages``."""
    out = []
    for pid, p in enumerate(passages):
        if p.field is None or p.value is None:
            continue
        value = _value(p.value)
        if value == "other":
            continue
        leaf = p.field.rsplit(".", 1)[-1]
        label = p.text.rsplit(":", 1)[0].split()
        words = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", leaf) or [leaf]
        stems = frozenset(s for s, _ in content_stems(" ".join(words)) if s not in _GENERIC)
        compact = "".join(w.lower() for w in words if stem(w) not in _GENERIC)
        if (stems or compact) and label:
            out.append(BoolField(stems, compact, value if isinstance(value, bool) else None, pid))
    return out


def field_conflicts(text: str, fields: list[BoolField]) -> list[tuple[str, int, int]]:
    """Fields that ``text`` mentions with a polarity their value contradicts.

    Returns:
        ``(field name, start, end)`` per conflict, the offsets those of the mention in ``text``.
    """
    if not fields:
        return []
    toks = list(tokens(text))
    stems = [stem(t.text) for t in toks]
    lowered = [t.text.lower() for t in toks]
    unstated = any(s in _UNSTATED for s in stems)
    out = []
    for f in fields:
        hit = -1
        for i in range(len(toks)):
            joined = "".join(lowered[i : i + 3])
            if f.compact and joined.startswith(f.compact) and len(f.compact) >= 3:
                hit = i
                break
            if f.stems and stems[i] in f.stems and f.stems <= set(stems[max(0, i - 3) : i + 4]):
                hit = i
                break
        if hit < 0 or (lowered[hit - 1 : hit] == ["a"] and lowered[hit + 1 : hit + 2] == ["of"]):
            continue  # "a lot of" names no parking lot
        # The polarity window stays inside the mention's clause, both ways: "WiFi is not
        # available" negates WiFi; "seating but no WiFi" and "no seating, but WiFi" do not
        # negate the other field.
        after: list[str] = []
        for j in range(hit + 1, min(len(toks), hit + 1 + _AFTER)):
            if lowered[j] in _JOINERS or _PUNCT.search(text, toks[j - 1].end, toks[j].start):
                break
            after.append(lowered[j])
        before: list[str] = []
        for j in range(hit - 1, max(-1, hit - 1 - _BEFORE), -1):
            if lowered[j] in _BACK_JOINERS or _BACK_PUNCT.search(
                text, toks[j].end, toks[j + 1].start
            ):
                break
            before.append(lowered[j])
        window = before + after
        negative = any(w in NEGATIONS for w in window)
        if (f.value is None and not unstated) or f.value == negative:
            out.append((f.compact or " ".join(sorted(f.stems)), toks[hit].start, toks[hit].end))
    return out
