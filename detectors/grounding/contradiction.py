"""Lexical contradictions: a claim in the context's own words that says the opposite.

Word overlap cannot tell "The museum is open on Mondays" from "The museum is closed on Mondays":
every word but one is in the context. Two checks look at the clause of a best passage that
shares the most words with the claim (clauses: cut at ";", ":" and ", but / while / and ...", so
a negation in another clause never counts):

- **polarity**: the claim and that clause use the two sides of one polarity pair (open / closed,
  free / pay, before / after, increase / decrease ...), or the same words with a different number
  of negations ("is" / "isn't"), once each side's negations are applied;
- **moved item**: a number or name of the claim is stated in the passage, but in a clause that
  lacks a word the claim attaches to it, and that word sits in another clause of the same passage
  ("Adult admission is 12 euros; children under 6 enter free" does not say that children pay 12).
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_right
from typing import Literal, NamedTuple

from detectors.grounding.lexicon import NEGATIONS, content_stems, entities, stem, tokens
from detectors.grounding.numbers import NumberMention, find_numbers, same_quantity
from detectors.grounding.phrases import phrase_spans

__all__ = ["Contradiction", "clauses", "contradictions"]

# Each pair: words of one side, words of the other (a side's words are stemmed on import).
_PAIRS_TEXT = (
    ("open opens opened reopened", "closed close closes shut"),
    (
        "allowed allow allows permitted permit permits authorized legal",
        "prohibited forbidden banned illegal disallowed",
    ),
    ("free", "pay pays paid charge charges charged fee fees cost costs"),
    ("before earlier", "after later"),
    ("included include includes inclusive", "excluded exclude excludes"),
    ("available", "unavailable"),
    ("always", "never"),
    (
        "increase increases increased rise rises rose risen grew grow grows gain gains gained",
        "decrease decreases decreased fall falls fell fallen drop drops dropped declined decline "
        "shrank",
    ),
    ("more higher above greater larger", "less fewer lower below smaller"),
    ("true correct", "false incorrect"),
    ("won win wins", "lost lose loses"),
    ("accepted accept accepts approved approve", "rejected reject rejects denied deny"),
    ("passed pass", "failed fail"),
    ("enabled enable", "disabled disable"),
    ("required mandatory compulsory", "optional voluntary"),
    ("public", "private"),
    ("alive", "dead"),
    ("minimum", "maximum"),
)
_POLAR: dict[str, tuple[int, int]] = {}
for _i, (_plus, _minus) in enumerate(_PAIRS_TEXT):
    for _sign, _words in ((1, _plus), (-1, _minus)):
        for _w in _words.split():
            _POLAR.setdefault(stem(_w), (_i, _sign))
# "never" is a negation too; here it is the polar opposite of "always" and not counted twice.
_NEGATION_WORDS = NEGATIONS - {"never"}
_CLAUSE_CUT = re.compile(
    r"[;:]\s*|,\s++(?=(?:and|but|while|whereas|although|though|yet|however)\s)|"
    r"(?<!\s)\s++(?=(?:but|whereas|while)\s)",
    re.IGNORECASE,
)
# Share of the claim's other content words a passage clause must hold to be about the same thing.
_MIN_OVERLAP = 0.5
# A bare negation flip (no polarity pair) needs the clause to hold nearly all the claim's words.
_MIN_OVERLAP_NEGATION = 0.8


def clauses(text: str) -> list[tuple[int, int]]:
    """Clause spans of ``text``: cut at ";", ":" and ", and / but / while ..." (not at commas)."""
    spans, cursor = [], 0
    for m in [*_CLAUSE_CUT.finditer(text), None]:
        end = m.start() if m else len(text)
        if text[cursor:end].strip():
            spans.append((cursor, end))
        cursor = m.end() if m else len(text)
    return spans


class _Clause:
    """One clause's words: content stems, polarity words, negation parity, numbers."""

    def __init__(self, text: str) -> None:
        toks = list(tokens(text))
        self.polar = {_POLAR[s] for s in (stem(t.text) for t in toks) if s in _POLAR}
        self.negated = sum(t.text.lower() in _NEGATION_WORDS for t in toks) % 2 == 1
        polar_stems = {s for s in (stem(t.text) for t in toks) if s in _POLAR}
        self.stems = {s for s, _ in content_stems(text)} - polar_stems
        self.numbers = [m for m in find_numbers(text) if m.kind != "month"]

    def signs(self) -> dict[int, int]:
        """Pair -> side, with the clause's negation applied ("not open" is the closed side)."""
        flip = -1 if self.negated else 1
        out: dict[int, int] = {}
        both = set()
        for pair, sign in self.polar:
            if out.get(pair, sign * flip) != sign * flip:
                both.add(pair)  # both sides in one clause: it takes no side
            out[pair] = sign * flip
        return {p: v for p, v in out.items() if p not in both}

    def has_number(self, m: NumberMention) -> bool:
        return any(same_quantity(m, n) for n in self.numbers)


# A passage is the best one of many claims, and answers repeat clauses: parse each text once.
# _Clause is never changed after it is built, so sharing one object is safe.
@functools.lru_cache(maxsize=8192)
def _clause(text: str) -> _Clause:
    return _Clause(text)


@functools.lru_cache(maxsize=4096)
def _passage_clauses(passage: str) -> tuple[_Clause, ...]:
    return tuple(_clause(passage[s:e]) for s, e in clauses(passage))


class Contradiction(NamedTuple):
    """One contradiction of a claim by its best passages."""

    kind: Literal["polarity", "moved"]
    """A flipped polarity pair or negation, or a number or name moved to another subject."""
    text: str
    """The flipped word's pair ("open", "negation") or the moved item as written ("12")."""
    start: int
    """Start of the claim clause (polarity) or of the item (moved), in the claim."""
    end: int
    """End (exclusive)."""


def _polarity(claim: _Clause, near: list[_Clause]) -> str | None:
    if not claim.stems:
        return None
    scored = [(len(claim.stems & k.stems) / len(claim.stems), k) for k in near]
    best = max((s for s, _ in scored), default=0.0)
    if best < _MIN_OVERLAP:
        return None
    top = [k for s, k in scored if s == best]
    mine = claim.signs()
    verdicts = []
    for k in top:
        theirs = k.signs()
        shared = mine.keys() & theirs.keys()
        if shared:
            flipped = [p for p in shared if mine[p] != theirs[p]]
            verdicts.append(_PAIRS_TEXT[flipped[0]][0].split()[0] if flipped else "")
        elif best >= _MIN_OVERLAP_NEGATION and not mine and not theirs:
            verdicts.append("negation" if claim.negated != k.negated else "")
        else:
            verdicts.append("")
    # Any best clause that agrees wins: only a contradiction by all of them counts.
    if verdicts and all(verdicts):
        return verdicts[0]
    return None


def _moved(claim_text: str, passages: list[list[_Clause]]) -> list[Contradiction]:
    """Numbers and names of the claim that the passage states in another subject's clause."""
    items: list[tuple[str, int, int, NumberMention | None, set[str]]] = [
        (m.text, m.start, m.end, m, set()) for m in find_numbers(claim_text) if m.kind != "month"
    ]
    for e in entities(claim_text):
        own = {s for s, _ in content_stems(e.text)}
        if own:
            items.append((e.text, e.start, e.end, None, own))
    if not items:
        return []
    # The claim's words by phrase, once (per item, a scan of the claim would be quadratic).
    phrases = phrase_spans(claim_text)
    starts = [s for s, _ in phrases]
    words_of: list[set[str]] = [set() for _ in phrases]
    for st, tok in content_stems(claim_text):
        i = bisect_right(starts, tok.start) - 1
        if i >= 0 and tok.start < phrases[i][1] and st not in _POLAR:
            words_of[i].add(st)
    out = []
    for text, a, b, number, own in items:
        i = bisect_right(starts, a) - 1
        if i < 0 or a >= phrases[i][1]:
            continue
        # The claim's words attached to the item: those of its phrase, the item's own aside.
        words = words_of[i] - own
        if not words:
            continue
        stated = moved = False
        for group in passages:
            holders = [k for k in group if (k.has_number(number) if number else own <= k.stems)]
            for k in holders:
                missing = words - k.stems
                if not missing:
                    stated = True
                    break
                if any(missing & o.stems for o in group if o not in holders):
                    moved = True
            if stated:
                break
        if moved and not stated:
            out.append(Contradiction("moved", text, a, b))
    return out


def contradictions(claim: str, passages: list[str]) -> list[Contradiction]:
    """What of ``claim`` the ``passages`` (its best ones) contradict in their own words.

    Args:
        claim: The claim.
        passages: Texts of the claim's best passages.

    Returns:
        One :class:`Contradiction` per flipped clause or moved item; empty when none.
    """
    groups = [list(_passage_clauses(p)) for p in passages]
    near = [k for g in groups for k in g]
    if not near:
        return []
    out = []
    for s, e in clauses(claim):
        word = _polarity(_clause(claim[s:e]), near)
        if word:
            out.append(Contradiction("polarity", word, s, e))
    return out + _moved(claim, groups)
