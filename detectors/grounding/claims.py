"""Split a response into claims with character offsets.

A claim is a sentence, a list item, or one clause of a sentence that joins several facts with
"; " or ", and/but/while ...". Markdown markers (headings, bullets, numbers, bold) are left out
of the span. Lead-ins ("Sure!", "Here is the answer:", "Based on the passages,"), refusal
clauses ("the passages do not mention ...") and questions back to the user are returned as
segments that are not claims; what else the sentence says stays a claim
(:mod:`detectors.grounding.framing`).
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Literal, NamedTuple

from detectors.grounding.framing import clause_cuts, lead_in_end, refusal_spans

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
# A run of sentence marks (and the closers after it) is taken whole, from its first mark:
# possessive runs and the look-behind keep the search linear on "....." or "!!!!!" (a match that
# fails from the first mark of a run fails from every later one, so nothing else changes).
_BOUNDARY = re.compile(
    r"(?<![.!?…])[.!?…]++[\"'”’)\]]*+"
    r"(?:(?=\s++[\"'“‘(\[]?[^\s\"'“‘(\[a-z])|$)"
)
# Characters looked back from a full stop for the word it ends (abbreviations are far shorter).
_LOOK_BACK = 32
_LINE = re.compile(r"[^\n]+")
_MARKER = re.compile(
    r"^\s*(?:#{1,6}\s+|>\s*|[-*+•·]\s+|\(?\d{1,3}[.)]\s+|\(?[a-zA-Z][.)]\s+)?(?:\*\*|__)?\s*"
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


def _trailing_start(line: str) -> int:
    """Where the trailing whitespace and bold/italic markers of ``line`` begin (``len`` if none).

    A backward scan, linear in the line. The pattern it replaces (whitespace, ``**``, ``__`` or
    ``*``, repeated up to the end) was tried from every start and backtracked over every split of
    a run of asterisks into ``**`` and ``*``: exponential. Underscores count only in pairs, so of
    an odd run of them the first stays in the body.
    """
    i = len(line)
    while i > 0:
        ch = line[i - 1]
        if ch.isspace() or ch == "*":
            i -= 1
        elif ch == "_":
            run = i
            while run > 0 and line[run - 1] == "_":
                run -= 1
            if (i - run) % 2:
                return run + 1
            i = run
        else:
            break
    return i


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
        # Only the word before the mark matters: a bounded look-back keeps this linear when many
        # abbreviations in a row leave the cursor behind ("Dr. Smith Dr. Smith ...").
        before = region[max(cursor, m.start() - _LOOK_BACK) : m.start()].rsplit(None, 1)
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
    bounds = clause_cuts(text, s, e, min_words)
    spans = []
    for a, b in pairwise(bounds):
        piece = text[a:b].rstrip(" ;,")
        spans.append((a, a + len(piece)))
    return spans


def _strip(text: str, s: int, e: int, lead: str = ",;:", trail: str = ",;") -> tuple[int, int]:
    """``(s, e)`` narrowed past whitespace and the given punctuation at each end."""
    while s < e and (text[s].isspace() or text[s] in lead):
        s += 1
    while e > s and (text[e - 1].isspace() or text[e - 1] in trail):
        e -= 1
    return s, e


def _sentence(
    text: str, s: int, e: int, min_words: int, after_source: bool
) -> tuple[list[Segment], bool]:
    """Segments of the sentence ``text[s:e]``: lead-ins and refusals cut out, the rest claims.

    Returns:
        The segments, and whether the sentence's subject is the sources (see
        :func:`~detectors.grounding.framing.refusal_spans`).
    """
    out: list[Segment] = []

    def emit(a: int, b: int, kind: SegmentKind) -> None:
        a, b = _strip(text, a, b, *(("", "") if kind == "preamble" else (",;:", ",;")))
        if kind == "claim" and text[a:b].endswith(":"):
            kind = "preamble"  # "The answer to the question is: Unable to answer ..."
        if b > a and (kind != "claim" or any(ch.isalnum() for ch in text[a:b])):
            out.append(Segment(text[a:b], a, b, kind))

    if text[s:e].strip().strip("*_").strip().endswith("?"):
        return [Segment(text[s:e], s, e, "question")], False
    p = lead_in_end(text, s, e)
    if p > s:
        emit(s, p, "preamble")
    if p >= e:
        return out, False
    cursor = p
    spans, source_subject = refusal_spans(text, p, e, min_words, after_source)
    for a, b in [*spans, (e, e)]:
        for cs, ce in _clauses(text, *_strip(text, cursor, a), min_words) if a > cursor else []:
            emit(cs, ce, "claim")
        if b > a:
            emit(a, b, "refusal")
        cursor = b
    return out, source_subject


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
    after_source = False
    for line in _LINE.finditer(text):
        ls = line.start()
        raw = line.group()
        marker = _MARKER.match(raw)
        body_start = ls + (marker.end() if marker else 0)
        body_end = ls + _trailing_start(raw)
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
            segments, after_source = _sentence(text, s, e, clause_min_words, after_source)
            out.extend(segments)
    return out
