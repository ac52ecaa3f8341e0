"""What frames the claims of a response: lead-ins, courtesy, and refusals.

A lead-in ("Sure!", "Here is the answer:", "Based on the passages,", "Note:") is cut off the
start of a sentence: only the lead-in itself is a preamble, the text after it is claims. An
interjection counts only with punctuation after it ("Great Britain has ..." is a claim). A
refusal is a clause whose subject is the sources or the assistant ("the passages do not mention
X", "I cannot find X", "X is not mentioned in the passages", or "it does not mention X" when "it"
refers back to the sources); the other clauses of its sentence stay claims, and a statement about
the world ("The policy does not include flood coverage") is never a refusal.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from itertools import pairwise

__all__ = ["CLAUSE", "WordCounter", "clause_cuts", "lead_in_end", "refusal_spans"]

CLAUSE = re.compile(r";\s+|,\s++(?=(?:and|but|while|whereas|although|though|yet)\s)", re.IGNORECASE)
"""Where a sentence that joins several facts may be cut into clauses."""
_WORD_START = re.compile(r"\S+")
_PREAMBLE_PREFIX = re.compile(
    r"(?:(?:based|drawing)\s+(?:solely\s+|only\s+)?on|according\s+to|as\s+(?:stated|mentioned|"
    r"described|noted|shown)\s+in|from|in)\s+(?:the\s+|this\s+|these\s+)?(?:given\s+|provided\s+"
    r"|above\s+|available\s+|retrieved\s+|structured\s+|following\s+)*(?:passages?|context|"
    r"information|documents?|text|data|article|news|sources?|reviews?|search\s+results?)"
    r"(?:\s+(?:provided|given|above))?\s*(?:,|:)\s*",
    re.IGNORECASE,
)
# An interjection opens a preamble only when punctuation follows it ("Sure!", "Absolutely,"), and
# only the word is the preamble: "Great Britain has ..." and "Of course Acme ..." are claims.
_INTERJECTION = re.compile(
    r"(?:sure|certainly|of\s+course|okay|ok|great|absolutely|alright|all\s+right)"
    r"\s*(?:[!,.:;]+|\s[\u2013\u2014-])\s*",
    re.IGNORECASE,
)
# "Here is the answer:" introduces what follows: the lead-in up to the colon is the preamble, the
# text after it is claims. Without a colon, the whole (short) sentence is the lead-in.
_LEAD_IN = re.compile(
    r"(?:here(?:'s|\u2019s|\s+is|\s+are)|below\s+(?:is|are)|the\s+following\s+(?:is|are))\b"
    r"[^:\n]{0,120}?(?::\s*|[.!]?\s*$)",
    re.IGNORECASE,
)
# "Note that ..." / "Note: ..." only frames what follows.
# "Note: ...", "Note that ...", "It is worth noting that ..." only frame what follows.
_NOTE = re.compile(
    r"(?:(?:please\s+)?note(?:\s+that\b|\s*:)|it(?:['\u2019]s|\s+is)\s+(?:important|worth)\s+"
    r"(?:to\s+)?not(?:e|ing)\s+that\b)\s*",
    re.IGNORECASE,
)
# The assistant speaking of itself, not of the world: "I'd be happy to help", "I hope this helps".
_COURTESY = re.compile(
    r"(?:i|we)(?:['\u2019](?:d|ll|m)|\s+would|\s+will|\s+am|\s+are)?\s+(?:be\s+)?"
    r"(?:happy|glad|delighted|pleased)\s+to\s+(?:help|assist)\b|"
    r"(?:i|we)(?:\s+can|\s+could|\s+will|['\u2019]ll)\s+(?:help|assist)\b|"
    r"(?:i|we)\s+hope\s+(?:this|that|it)\s+helps?\b|let\s+me\s+know\b|"
    r"(?:feel\s+free|don['\u2019]t\s+hesitate)\s+to\b",
    re.IGNORECASE,
)
# Where a clause may start inside a sentence (a refusal is looked for at each of these). A run of
# whitespace is tried from its first character only and never given back: tried from each of its
# characters, a long run cost quadratic time (and the match, if any, is the same).
_CLAUSE_START = re.compile(
    r"[;:]\s+|,\s+|(?<!\s)\s++(?=(?:but|however|although|though|while|whereas|yet)\s)",
    re.IGNORECASE,
)
_SOURCE_NOUN = (
    r"(?:passages?|contexts?|documents?|texts?|sources?|articles?|excerpts?|information|data|"
    r"news|reviews?|search\s+results?)"
)
# "the provided passages", "passage 3", "passages 1 and 2", "passage 2 and passage 3".
_SOURCE = (
    r"(?:(?:the|these|this|those|provided|given|above|retrieved|available|supplied|following|"
    rf"structured|relevant|original)\s+){{0,8}}{_SOURCE_NOUN}(?:\s+\#?\d+(?:(?:\s*,\s*|\s+and\s+|"
    rf"\s+or\s+)(?:{_SOURCE_NOUN}\s+)?\#?\d+){{0,16}})?(?:\s+(?:provided|given|above|supplied))?"
)
# Words that may open a clause before its subject ("However, the passages ..."). The repeats are
# bounded (and the quotes possessive: a subject starts with a letter) because this is matched at
# every clause start: "but but but ..." or "passages 1, passages 2, ..." unbounded read the rest
# of the sentence from each start, quadratic time.
_OPENERS = (
    r"[\"'\u201c\u2018(\[]*+(?:(?:but|and|however|unfortunately|sadly|regrettably|also|still|yet|"
    r"so|though|although|while|whereas|therefore|thus|hence|additionally|moreover|furthermore|"
    r"overall|finally|similarly|likewise|it\s+(?:seems|appears)(?:\s+that)?|in\s+(?:conclusion|"
    r"summary)|as\s+(?:a\s+result|such))\b,?\s++){0,8}"
)
_NEGATIVE = r"(?:(?:do|does|did)(?:\s+not|n't|n\u2019t)|cannot|can't|can\s+not|lacks?|omits?)\b"
# The sources as subject, with any predicate: a clause after it may refer back to them.
_SOURCE_SUBJECT = re.compile(
    rf"{_OPENERS}(?:{_SOURCE}|(?:none|neither|each|both|all)\s+of\s+(?:the\s+|these\s+)?"
    rf"{_SOURCE_NOUN})\s+\w",
    re.IGNORECASE,
)
# A clause whose subject refers back to sources named before ("Passage 1 explains X, but it does
# not mention Y"; "..., but does not mention Y"; next sentence: "However, it does not ...").
_BACK_REFUSAL = re.compile(
    rf"(?:but|and|yet|while|whereas|although|though|however)\b,?\s+{_OPENERS}(?:(?:it|they)\s+)?"
    rf"{_NEGATIVE}",
    re.IGNORECASE,
)
_PRONOUN_REFUSAL = re.compile(rf"{_OPENERS}(?:it|they)\s+{_NEGATIVE}", re.IGNORECASE)
# A refusal is a clause whose subject is the sources ("the passages do not mention ...") or the
# assistant ("I cannot find ..."), or that says the sources lack something ("... is not mentioned
# in the passages", "there is no information about ..."). "The policy does not include flood
# coverage" is a claim about the world, not a refusal.
_REFUSAL = re.compile(
    rf"{_OPENERS}(?:{_SOURCE}\s+(?:{_NEGATIVE}|"
    r"(?:is|are)\s+(?:silent|unclear)\b|(?:make|makes|made|contains?|gives?|provides?|"
    r"offers?|includes?|has|have|had)\s+no\b)"
    r"|(?:i|we)(?:'m|\u2019m|\s+am|\s+are)?\s+(?:sorry|unable|not\s+able|afraid|apologi[sz]e|"
    r"regret|cannot|can't|can\s+not|could\s+not|couldn't|do\s+not|don't|did\s+not|didn't|"
    r"have\s+no|found\s+no)\b"
    r"|(?:it\s+is\s+)?unable\s+to\s+(?:answer|determine|provide|find|say|tell|give|confirm)\b"
    rf"|(?:none|neither)\s+of\s+(?:the\s+|these\s+)?{_SOURCE_NOUN}\b|neither\s+{_SOURCE_NOUN}\b"
    r"|there\s+(?:is|are|was|were)\s+no\s+(?:information|mention|data|details?)\b"
    r"|no\s+(?:information|details?|mention)\s+(?:is|was|are|were|about|on|of|regarding)\b"
    r"|(?:it|this|that)\s+(?:is\s+not|isn't|is\s+impossible|cannot\s+be|can't\s+be)\s+"
    r"(?:possible\s+to\s+)?(?:determined?|answered?|say|tell|know|confirmed?)\b)",
    re.IGNORECASE,
)
_NOT_IN_SOURCES = re.compile(
    r"\b(?:(?:not|cannot\s+be|can't\s+be|can\s+not\s+be)\s+|no\s+(?:[\w-]+\s+){1,5}?(?:(?:is|are|"
    r"was|were)\s+)?)(?:mentioned|specified|provided|stated|given|discussed|included|listed|addressed|"
    r"covered|determined|answered|found|confirmed|inferred)\s+(?:in|by|from|with|based\s+on)\s+"
    rf"(?:any\s+of\s+)?{_SOURCE}\b",
    re.IGNORECASE,
)
_LEADS = (_INTERJECTION, _LEAD_IN, _PREAMBLE_PREFIX, _NOTE)


class WordCounter:
    """Word counts between offsets of one sentence in O(log n), so cutting stays linear."""

    def __init__(self, text: str, s: int, e: int) -> None:
        self.starts = [m.start() for m in _WORD_START.finditer(text, s, e)]

    def count(self, a: int, b: int) -> int:
        """Words that start in ``[a, b)``."""
        return bisect_left(self.starts, b) - bisect_left(self.starts, a)


def clause_cuts(text: str, s: int, e: int, min_words: int) -> list[int]:
    """Clause bounds of the sentence ``text[s:e]``: ``s``, each cut, ``e``.

    A cut is made at :data:`CLAUSE` only when both sides keep at least ``min_words`` words, so a
    list ("red, white, and blue") stays whole.
    """
    words = WordCounter(text, s, e)
    cuts = [s]
    for m in CLAUSE.finditer(text, s, e):
        if words.count(cuts[-1], m.start()) >= min_words and words.count(m.end(), e) >= min_words:
            cuts.append(m.end())
    return [*cuts, e]


def lead_in_end(text: str, s: int, e: int) -> int:
    """Where the lead-in of the sentence ``text[s:e]`` ends (``s`` when it has none).

    Lead-ins in any order and number make one preamble ("Sure, here is ...:", "Based on the
    passages, here are the steps:"); what is left is a lead-in too when it introduces a list ("The
    key facts are:") or is the assistant's courtesy ("I'd be happy to help!"), and then the whole
    sentence is (``e`` is returned).
    """
    p = s
    while p < e:
        m = next((m for r in _LEADS if (m := r.match(text, p, e)) and m.end() > p), None)
        if m is None:
            break
        p = m.end()
    if p < e and (text[p:e].rstrip().endswith(":") or _COURTESY.match(text, p, e)):
        return e
    return p


def refusal_spans(
    text: str, s: int, e: int, min_words: int, after_source: bool
) -> tuple[list[tuple[int, int]], bool]:
    """Refusal clauses of ``text[s:e]``, and whether the sentence's subject is the sources.

    A refusal runs from a clause start where one opens to the next clause boundary (see below),
    or the sentence end. ``after_source``: the previous sentence's subject was the sources, so a
    pronoun opening this one ("However, it does not mention ...") refers to them.
    """
    words = WordCounter(text, s, e)
    starts = [s, *(m.end() for m in _CLAUSE_START.finditer(text, s, e))]
    # A refusal runs to the next "; " or ", but ..." boundary, or to a ", and ..." that leaves a
    # clause after it (not a list: "do not mention the founder, the revenue, and the location").
    ends = [
        m.start()
        for m in CLAUSE.finditer(text, s, e)
        if text[m.end() : m.end() + 4].lower() != "and " or words.count(m.end(), e) >= min_words
    ]
    source_subject = bool(_SOURCE_SUBJECT.match(text, s, e))

    def end_after(a: int) -> int:
        k = bisect_right(ends, a)
        return ends[k] if k < len(ends) else e

    found: list[tuple[int, int]] = []
    # "... is not mentioned in the passages": the whole clause, its subject included.
    for a, b in pairwise(clause_cuts(text, s, e, min_words)):
        m = _NOT_IN_SOURCES.search(text, a, b)
        if m:
            found.append((a, end_after(m.start())))
    # A clause whose subject is the sources or the assistant, directly or by reference.
    for a in starts:
        refers_back = (source_subject and a > s and _BACK_REFUSAL.match(text, a, e)) or (
            after_source and a == s and _PRONOUN_REFUSAL.match(text, a, e)
        )
        if refers_back or _REFUSAL.match(text, a, e):
            found.append((a, end_after(a)))
    spans: list[tuple[int, int]] = []
    for a, b in sorted(found):
        # Overlapping or adjacent refusals are one: "I'm sorry, but I cannot find ...".
        if spans and (a <= spans[-1][1] or not text[spans[-1][1] : a].strip(" ,;:")):
            spans[-1] = (spans[-1][0], max(b, spans[-1][1]))
        else:
            spans.append((a, b))
    return spans, source_subject or bool(spans and spans[0][0] == s and after_source)
