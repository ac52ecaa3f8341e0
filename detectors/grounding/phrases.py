"""Narrow an unsupported claim down to the phrases that hold its unsupported items.

A claim is cut into phrases at punctuation and before words that open a new phrase (conjunctions,
relative pronouns, prepositions that attach a new fact: "and", "which", "with", "including").
The phrases that hold an unsupported word, number, name or field mention are the claim's
unsupported spans: "Copeland, who was stabbed twice, left" -> "who was stabbed twice".
"""

from __future__ import annotations

import re
from bisect import bisect_left
from itertools import accumulate

__all__ = ["phrase_spans", "unsupported_spans"]

# A run of whitespace is tried from its first character only, and never given back (tried from
# each character of a long run, the search was quadratic; the cuts are the same).
_CUT = re.compile(
    r"[,;:()\u2013\u2014]\s*|(?<!\s)\s++(?=(?:and|but|or|which|who|whom|whose|where|while|with|without|"
    r"including|as well as|after|before|because|since|although|though|despite|due to|"
    r"that)\b)",
    re.IGNORECASE,
)


def phrase_spans(text: str) -> list[tuple[int, int]]:
    """Phrase boundaries ``(start, end)`` of ``text`` (whitespace and cut punctuation excluded)."""
    spans = []
    cursor = 0
    for m in [*_CUT.finditer(text), None]:
        end = m.start() if m else len(text)
        piece = text[cursor:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            spans.append((cursor + lead, cursor + len(piece.rstrip())))
        cursor = m.end() if m else len(text)
    return spans


def unsupported_spans(text: str, items: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Phrases of ``text`` that overlap an unsupported item; adjacent ones are merged.

    Args:
        text: The claim.
        items: ``(start, end)`` of its unsupported items, relative to ``text``.

    Returns:
        Merged ``(start, end)`` spans relative to ``text``; empty when ``items`` is.
    """
    # A sweep, not a test of every phrase against every item (quadratic in a long claim): items
    # sorted by start, with the furthest end reached so far; a phrase ``[s, e)`` overlaps an item
    # when one starting before ``e`` ends after ``s``.
    ordered = sorted(items)
    starts = [a for a, _ in ordered]
    reach = list(accumulate((b for _, b in ordered), max))
    hits = []
    for s, e in phrase_spans(text):
        k = bisect_left(starts, e)
        if k and reach[k - 1] > s:
            hits.append((s, e))
    merged: list[tuple[int, int]] = []
    for s, e in hits:
        if merged and not text[merged[-1][1] : s].strip(" ,;:"):
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged
