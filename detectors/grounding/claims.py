"""Split a response into claims with character offsets.

A claim is a sentence, a list item, or one clause of a sentence that joins several facts with
"; " or ", and/but/while ...". Markdown markers (headings, bullets, numbers, bold) are left out
of the span. Preambles ("Based on the passages, ..." is cut off the claim; "Sure! Here is a
summary:" is dropped), refusals ("The passages do not mention ...") and questions back to the
user are returned as segments that are not claims.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Literal, NamedTuple

__all__ = ["Segment", "SegmentKind", "split_claims", "split_sentences"]

SegmentKind = Literal["claim", "preamble", "refusal", "question", "heading"]

_ABBREVIATIONS = frozenset(
    re.findall(
        r"\S+",
        """
    mr mrs ms dr prof sr jr st mt ft vs etc inc ltd co corp dept est approx no nos fig figs
    jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e u.s u.k a.m p.m ph.d gen col lt
    sgt rep sen gov rev vol pp ed eds al
    """,
    )
)
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+[\"'“‘(\[]?[^\s\"'“‘(\[a-z])|[.!?…]+[\"'”’)\]]*$")
_LINE = re.compile(r"[^\n]+")
_MARKER = re.compile(
    r"^\s*(?:#{1,6}\s+|>\s*|[-*+•·]\s+|\(?\d{1,3}[.)]\s+|\(?[a-zA-Z][.)]\s+)?(?:\*\*|__)?\s*"
)
_TRAILING = re.compile(r"(?:\s|\*\*|__|\*)+$")
_CLAUSE = re.compile(r";\s+|,\s+(?=(?:and|but|while|whereas|although|though|yet)\s)", re.IGNORECASE)
_PREAMBLE_PREFIX = re.compile(
    r"(?:(?:based|drawing)\s+(?:solely\s+|only\s+)?on|according\s+to|as\s+(?:stated|mentioned|"
    r"described|noted|shown)\s+in|from|in)\s+(?:the\s+|this\s+|these\s+)?(?:given\s+|provided\s+"
    r"|above\s+|available\s+|retrieved\s+|structured\s+|following\s+)*(?:passages?|context|"
    r"information|documents?|text|data|article|news|sources?|reviews?|search\s+results?)"
    r"(?:\s+(?:provided|given|above))?\s*(?:,|:)\s*",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(
    r"^(?:sure|certainly|of course|okay|ok|great|absolutely)\b[^\n]{0,80}$|"
    r"^here(?:'s|’s|\s+is|\s+are)\b|"
    r"^(?:below|the following)\s+is\b|:\s*$",
    re.IGNORECASE,
)
_REFUSAL = re.compile(
    r"\b(?:i'?m|i\s+am)\s+(?:sorry|unable|not\s+able)|\bunable\s+to\s+(?:answer|determine|provide|find)|"
    r"\b(?:cannot|can't|can\s+not)\s+(?:answer|determine|provide|find|be\s+determined)|"
    r"\b(?:do|does|did)\s+not\s+(?:contain|provide|mention|include|specify|say|state|give|address)|"
    r"\bthere\s+is\s+no\s+(?:information|mention)|\bno\s+information\s+(?:is|was|about|on)\b|"
    r"\b(?:passages?|context|documents?|text)\s+(?:doesn't|don't|didn't)\b|\bnot\s+(?:mentioned|specified|provided)\s+in\b",
    re.IGNORECASE,
)


class Segment(NamedTuple):
    """A piece of the response with its offsets and what kind of piece it is."""

    text: str
    """``response[start:end]``."""
    start: int
    """Start offset (inclusive), in code points."""
    end: int
    """End offset (exclusive)."""
    kind: SegmentKind
    """"claim", or why it is not one: "preamble", "refusal", "question", "heading"."""


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans inside ``text[start:end]``; no split at abbreviations, initials, decimals.

    Args:
        text: The whole text (offsets refer to it).
        start: Where the region begins.
        end: Where it ends; defaults to ``len(text)``.

    Returns:
        ``(start, end)`` pairs, stripped of surrounding whitespace, in order.
    """
    end = len(text) if end is None else end
    region = text[start:end]
    spans: list[tuple[int, int]] = []
    cursor = 0
    for m in _BOUNDARY.finditer(region):
        before = region[cursor : m.start()].rsplit(None, 1)
        last = before[-1].lower().rstrip(".") if before else ""
        if m.group().startswith(".") and (
            last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())
        ):
            continue
        spans.append((cursor, m.end()))
        cursor = m.end()
    spans.append((cursor, len(region)))
    out = []
    for s, e in spans:
        piece = region[s:e]
        stripped = piece.strip()
        if stripped:
            s2 = s + (len(piece) - len(piece.lstrip()))
            out.append((start + s2, start + s2 + len(stripped)))
    return out


def _clauses(text: str, s: int, e: int, min_words: int) -> list[tuple[int, int]]:
    cuts = [s]
    for m in _CLAUSE.finditer(text, s, e):
        left = text[cuts[-1] : m.start()]
        right = text[m.end() : e]
        if len(left.split()) >= min_words and len(right.split()) >= min_words:
            cuts.append(m.end())
    bounds = [*cuts, e]
    spans = []
    for a, b in pairwise(bounds):
        piece = text[a:b].rstrip(" ;,")
        spans.append((a, a + len(piece)))
    return spans


def _classify(text: str) -> SegmentKind:
    stripped = text.strip().strip("*_").strip()
    if stripped.endswith("?"):
        return "question"
    if _REFUSAL.search(stripped):
        return "refusal"
    if _PREAMBLE.search(stripped):
        return "preamble"
    return "claim"


def split_claims(text: str, *, clause_min_words: int = 5) -> list[Segment]:
    """Split a response into claims and non-claim segments, with offsets into ``text``.

    Args:
        text: The response.
        clause_min_words: A sentence is cut at a clause boundary only when both sides have at least
            this many words ("red, white, and blue" stays whole).

    Returns:
        Segments in order; ``text[seg.start:seg.end] == seg.text`` for each.
    """
    out: list[Segment] = []
    for line in _LINE.finditer(text):
        ls, le = line.start(), line.end()
        raw = line.group()
        marker = _MARKER.match(raw)
        body_start = ls + (marker.end() if marker else 0)
        trail = _TRAILING.search(raw)
        body_end = ls + trail.start() if trail else le
        if body_end <= body_start:
            continue
        heading = raw.lstrip().startswith("#") or (
            raw.strip().startswith(("**", "__"))
            and raw.strip().endswith(("**", "__", ":", "**:"))
            and len(raw.split()) <= 8
        )
        if heading:
            out.append(Segment(text[body_start:body_end], body_start, body_end, "heading"))
            continue
        for s, e in split_sentences(text, body_start, body_end):
            kind = _classify(text[s:e])
            if kind != "claim":
                out.append(Segment(text[s:e], s, e, kind))
                continue
            pre = _PREAMBLE_PREFIX.match(text, s, e)
            if pre and pre.end() < e:
                out.append(
                    Segment(
                        text[s : pre.end()].rstrip(),
                        s,
                        s + len(text[s : pre.end()].rstrip()),
                        "preamble",
                    )
                )
                s = pre.end()
            for cs, ce in _clauses(text, s, e, clause_min_words):
                if any(ch.isalnum() for ch in text[cs:ce]):
                    out.append(Segment(text[cs:ce], cs, ce, "claim"))
    return out
