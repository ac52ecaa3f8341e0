"""Score one claim's support against the evidence: best passages, lexical checks, a support score.

Signals, each in [0, 1] or a count:

- ``similarity``: cosine of the claim to its best passage (faiss inner product on unit vectors);
- ``coverage``: share of the claim's content words found in its best two passages (greedy
  set cover over the passages that share words with the claim) - local support;
- ``novel_rate``: share of content words found in no passage nor the question - baseless info;
- ``novel_bigram_rate``: share of adjacent word pairs that never occur in the contexts - new
  combinations of known words;
- ``local_coverage``: share of the claim's content words found around one of its best passages
  (that passage and its neighbours in the same context) - facts a document keeps apart;
- ``mismatched_numbers``: numbers that the contexts hold, but whose neighbouring words in the
  claim appear in none of the passages holding that number ("both sentenced to 24 months" where
  only one of the two got 24 months) - a known figure paired with another attribute;
- unsupported numbers (value in no passage, after normalisation), entities (a capitalised name
  with a word in no passage), negations (the claim negates, its best passages do not) and
  structured yes/no fields stated with the wrong polarity (:mod:`detectors.grounding.fields`).

The support score is the mean of similarity, coverage and global coverage (``1 - novel_rate``),
halved for every unsupported number or field conflict, scaled by 3/4 for every unsupported
entity or negation and by 1/4 for each of (at most two) contradictions - a polarity pair or a
negation flipped against the best passage's clause, or a number or name moved to another
subject (:mod:`detectors.grounding.contradiction`):
a rule of thumb, deliberately simple; the calibrated probe learns the weights from data.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from itertools import pairwise
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from detectors.grounding.contradiction import Contradiction, contradictions
from detectors.grounding.evidence import Evidence
from detectors.grounding.fields import field_conflicts
from detectors.grounding.lexicon import NEGATIONS, content_stems, entities, prefix, stem, tokens
from detectors.grounding.numbers import NumberMention, find_numbers

__all__ = ["ClaimCheck", "check_claim"]

_NEGATIVE_VALUES = frozenset({"no", "none", "false", "not", "never", "without"})


class ClaimCheck(NamedTuple):
    """Support of one claim."""

    support: float
    """Support score in [0, 1] (1 = fully supported)."""
    similarity: float
    """Cosine similarity to the best passage, clipped to [0, 1]."""
    coverage: float
    """Share of content words found in the best two passages, in [0, 1]."""
    novel_rate: float
    """Share of content words found nowhere in the contexts or question, in [0, 1]."""
    novel_bigram_rate: float
    """Share of word bigrams absent from the contexts, in [0, 1]."""
    n_content: int
    """Number of content words."""
    passages: list[tuple[int, float]]
    """Best passages as ``(passage id, cosine)``, best first."""
    novel_words: list[str]
    """Content words found in no passage."""
    numbers: int
    """Number mentions in the claim."""
    unsupported_numbers: list[str]
    """Number mentions whose value is in no passage."""
    entities: int
    """Entity mentions in the claim."""
    unsupported_entities: list[str]
    """Entities with a word found in no passage."""
    negation_unsupported: bool
    """The claim negates but none of its best passages holds a negation."""
    field_conflicts: list[str]
    """Yes/no fields of structured contexts that the claim states with the wrong polarity."""
    item_spans: list[tuple[int, int]]
    """Offsets (in the claim) of every unsupported word, number, name and field mention."""
    local_coverage: float = 1.0
    """Share of content words found around one best passage (it and its neighbours), [0, 1]."""
    supported_numbers: int = 0
    """Number mentions whose value some passage holds."""
    mismatched_numbers: int = 0
    """Supported numbers whose neighbouring claim words no passage holding them contains."""
    contradictions: tuple[Contradiction, ...] = ()
    """What the best passages contradict in their own words (flipped polarity, moved items)."""


def _greedy_coverage(
    stems: list[str], evidence: Evidence, seeds: list[int]
) -> tuple[float, list[int]]:
    """Share of ``stems`` covered by the best two passages (by shared words, plus ``seeds``)."""
    wanted = set(stems)
    if not wanted:
        return 1.0, []
    counts: Counter[int] = Counter()
    for s in sorted(wanted):  # sorted: ties in most_common must not depend on the hash seed
        counts.update(evidence.stem_passages.get(s, ()))
    for pid in seeds:
        counts[pid] += 0
    chosen: list[int] = []
    remaining = set(wanted)
    for _ in range(2):
        candidates = [pid for pid, _ in counts.most_common(8)] + seeds
        best, gain = -1, 0
        for pid in candidates:
            g = len(remaining & evidence.passage_stems[pid])
            if g > gain:
                best, gain = pid, g
        if best < 0:
            break
        chosen.append(best)
        remaining -= evidence.passage_stems[best]
        counts.pop(best, None)
    return 1.0 - len(remaining) / len(wanted), chosen


# A number's attribute: the claim's known content words within this many characters of it.
_NUMBER_WINDOW = 40
# A supported number is mismatched when its best holder passage contains less than this share of
# those words (most of a number's neighbours should come from the sentence that states it).
_NUMBER_MATCH_MIN = 1.0 / 3.0
# Holder passages examined per number (a year or a small count may occur everywhere).
_MAX_HOLDERS = 64
# Support factor per contradiction (two at most): a claim its own evidence contradicts is weak
# however many of its words the contexts hold (0.25 takes a well-covered claim below 0.3).
_CONTRADICTED = 0.25


def _local_coverage(stems: set[str], evidence: Evidence, pids: list[int]) -> float:
    if not stems:
        return 1.0
    best = 0.0
    for pid in pids:
        best = max(best, len(stems & evidence.neighbourhood(pid)) / len(stems))
    return best


def _mismatched_numbers(text: str, mentions: list[NumberMention], evidence: Evidence) -> int:
    """Supported numbers whose nearby claim words are missing from every passage holding them."""
    if not mentions:
        return 0
    cs = content_stems(text)
    starts = [tok.start for _, tok in cs]
    bad = 0
    for m in mentions:
        holders = evidence.numbers.holders(m, _MAX_HOLDERS)
        # Only the words within the window (found by bisection: a claim with many numbers and
        # words must not compare every number with every word).
        lo = bisect_left(starts, m.start - _NUMBER_WINDOW)
        hi = bisect_right(starts, m.start + _NUMBER_WINDOW)
        near = {
            s for s, tok in cs[lo:hi] if not (m.start <= tok.start < m.end) and s in evidence.stems
        }
        if not holders or not near:
            continue
        share = max(len(near & evidence.passage_stems[p]) / len(near) for p in holders)
        bad += share < _NUMBER_MATCH_MIN
    return bad


def _number_supported(m: NumberMention, evidence: Evidence) -> bool:
    # The month of an ISO date is a word: "2022-01-16" is supported by "January 16, 2022".
    if m.kind == "month":
        return stem(m.text) in evidence.stems
    return evidence.numbers.supports(m)


def check_claim(
    text: str, vector_scores: NDArray[np.float32], vector_ids: NDArray[np.int64], evidence: Evidence
) -> ClaimCheck:
    """Check one claim against the evidence.

    Args:
        text: The claim.
        vector_scores: Its top-k passage cosines from the index, ``(k,)``, best first.
        vector_ids: The matching passage ids, ``(k,)``.
        evidence: The request's evidence.

    Returns:
        The claim's support.
    """
    pairs = [(int(i), float(s)) for i, s in zip(vector_ids, vector_scores, strict=False) if i >= 0]
    similarity = float(np.clip(pairs[0][1], 0.0, 1.0)) if pairs else 0.0
    cs = content_stems(text)
    stems = [s for s, _ in cs]
    novel_toks = [
        tok
        for s, tok in cs
        if s not in evidence.stems
        and (len(tok.text) < 6 or prefix(tok.text) not in evidence.prefixes)
    ]
    novel = [t.text for t in novel_toks]
    coverage, chosen = _greedy_coverage(stems, evidence, [p for p, _ in pairs[:2]])
    words = [stem(t.text) for t in tokens(text)]
    grams = list(pairwise(words))
    novel_bigram_rate = sum(g not in evidence.bigrams for g in grams) / len(grams) if grams else 0.0
    nums = find_numbers(text)
    num_ok = [_number_supported(m, evidence) for m in nums]
    bad_num_mentions = [m for m, ok in zip(nums, num_ok, strict=True) if not ok]
    bad_nums = [m.text for m in bad_num_mentions]
    ok_num_mentions = [m for m, ok in zip(nums, num_ok, strict=True) if ok]
    # Numbers are content too: a supported one counts as a covered word ("open 11 am to 5 pm").
    n_items, n_ok = len(set(stems)) + len(nums), len(nums) - len(bad_nums)
    coverage = (coverage * len(set(stems)) + n_ok) / n_items if n_items else 1.0
    novel_rate = len(novel) / (len(cs) + len(nums)) if cs or nums else 0.0
    if not evidence.passages:
        coverage = 0.0
    ents = entities(text)
    bad_ent_toks = [
        e for e in ents if any(s not in evidence.stems for s, _ in content_stems(e.text))
    ]
    bad_ents = [e.text for e in bad_ent_toks]
    negates = any(w.lower() in NEGATIONS for w in (t.text for t in tokens(text)))
    near = {p for p, _ in pairs[:2]} | set(chosen)
    negation_unsupported = negates and not any(
        any(
            t.text.lower() in NEGATIONS or t.text.lower() in _NEGATIVE_VALUES
            for t in tokens(evidence.passages[p].text)
        )
        for p in near
    )
    found_conflicts = field_conflicts(text, evidence.fields)
    # Prose passages only: yes/no fields have their own polarity check (field_conflicts).
    contra = tuple(
        contradictions(
            text,
            [evidence.passages[p].text for p in sorted(near) if evidence.passages[p].field is None],
        )
    )
    conflicts = [name for name, _, _ in found_conflicts]
    items = sorted(
        {(t.start, t.end) for t in [*novel_toks, *bad_ent_toks]}
        | {(m.start, m.end) for m in bad_num_mentions}
        | {(s, e) for _, s, e in found_conflicts}
        | {(c.start, c.end) for c in contra}
    )
    base = (similarity + coverage + (1.0 - novel_rate)) / 3.0
    support = (
        base
        * 0.5 ** (len(bad_nums) + len(conflicts))
        * 0.75 ** (len(bad_ents) + int(negation_unsupported))
        * _CONTRADICTED ** min(len(contra), 2)
    )
    if not evidence.passages:
        support = 0.0  # no evidence at all: nothing is supported
    return ClaimCheck(
        support=float(np.clip(support, 0.0, 1.0)),
        similarity=similarity,
        coverage=coverage,
        novel_rate=novel_rate,
        novel_bigram_rate=novel_bigram_rate,
        n_content=len(cs),
        passages=pairs,
        novel_words=novel,
        numbers=len(nums),
        unsupported_numbers=bad_nums,
        entities=len(ents),
        unsupported_entities=bad_ents,
        negation_unsupported=negation_unsupported,
        field_conflicts=conflicts,
        item_spans=items,
        local_coverage=_local_coverage(set(stems), evidence, [p for p, _ in pairs]),
        supported_numbers=len(ok_num_mentions),
        mismatched_numbers=_mismatched_numbers(text, ok_num_mentions, evidence),
        contradictions=contra,
    )
