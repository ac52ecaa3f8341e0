"""The fixed grounding feature vector and the uncalibrated heuristic risk.

The calibration step fits a calibrated probe on :data:`FEATURE_NAMES`; their order and meaning
are part of the public API (bump :data:`FEATURES_VERSION` on any change). Conventions for a
response without claims: support-like minima are 1, rates are 0.

| name | meaning |
|---|---|
| n_claims | claims in the response |
| n_non_claims | preambles, refusals, questions, headings |
| refusal | 1 if any segment is a refusal |
| log_response_chars | ``log1p`` of the response length in characters |
| log_context_chars | ``log1p`` of the total context length |
| response_context_ratio | response / context length, capped at 10 |
| structured_fraction | share of passages that are structured fields or rows |
| support_min, support_mean | claim support score, min and mean |
| weak_claim_fraction | share of claims with support below the threshold |
| similarity_min, similarity_mean | best-passage cosine, min and mean over claims |
| coverage_min, coverage_mean | share of a claim's content words in its best two passages |
| novel_rate_max | highest share of novel content words in a claim |
| novel_rate | novel / all content words, whole response |
| log_novel_words | ``log1p`` of the number of novel content words |
| novel_bigram_rate_max, novel_bigram_rate | word pairs absent from the contexts (max, pooled) |
| n_numbers, unsupported_numbers, unsupported_number_rate | numbers, those in no passage, share |
| n_entities, unsupported_entities, unsupported_entity_rate | names, those with novel words, share |
| unsupported_negations | claims that negate where their best passages do not |
| field_conflicts | yes/no fields of structured contexts stated with the wrong polarity |
| flagged_claim_fraction | share of claims with any unsupported number, entity or negation |
| log_passages | ``log1p`` of the number of passages the contexts were split into |
| has_question | 1 if the request asks a question ("?" or a question word first) |
| novel_token_rate | response words (stopwords too) whose stem no context holds |
| novel_rate_top2 | mean of the two highest claim novelty rates (one claim when there is one) |
| any_unsupported_entity | 1 if any claim names an entity with a word no passage holds |
| log_unsupported_entities | ``log1p`` of unsupported_entities |
| local_coverage_min, local_coverage_mean | claim words around one best passage |
| mismatched_number_rate | supported numbers whose neighbouring words no holder passage has, share |
| contradicted_claims | claims their best passages contradict (flipped polarity, moved items) |

Features from ``log_passages`` on were added in version 2. Version 3 keeps the names and order
and changes what feeds them: numbers match exactly unless the claim rounds them, with kinds and
signs compared; only the lead-in or refusal clause of a sentence is left out of the claims (the
rest is checked); key:value blocks keep their prose lines; field negation stays in its clause.
Version 4 adds ``contradicted_claims`` (:mod:`detectors.grounding.contradiction`), counts those
claims in ``flagged_claim_fraction``, and lowers their support (so ``support_*`` and
``weak_claim_fraction`` move too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from detectors.grounding.scoring import ClaimCheck

__all__ = [
    "FEATURES_VERSION",
    "FEATURE_NAMES",
    "grounding_features",
    "heuristic_risk",
    "is_question",
]

_QUESTION_WORDS = frozenset(
    {
        *("what", "how", "who", "whom", "whose", "when", "where", "why", "which", "is", "are"),
        *("was", "were", "can", "could", "do", "does", "did", "should", "would", "will", "has"),
        "have",
    }
)


def is_question(text: str | None) -> bool:
    """Whether ``text`` asks something ("?" or a question word first), unlike an instruction."""
    if not text or not text.strip():
        return False
    first = text.split(None, 1)[0].lower().strip("\"'*(")
    return "?" in text or first in _QUESTION_WORDS


FEATURES_VERSION = 4
FEATURE_NAMES: tuple[str, ...] = (
    "n_claims",
    "n_non_claims",
    "refusal",
    "log_response_chars",
    "log_context_chars",
    "response_context_ratio",
    "structured_fraction",
    "support_min",
    "support_mean",
    "weak_claim_fraction",
    "similarity_min",
    "similarity_mean",
    "coverage_min",
    "coverage_mean",
    "novel_rate_max",
    "novel_rate",
    "log_novel_words",
    "novel_bigram_rate_max",
    "novel_bigram_rate",
    "n_numbers",
    "unsupported_numbers",
    "unsupported_number_rate",
    "n_entities",
    "unsupported_entities",
    "unsupported_entity_rate",
    "unsupported_negations",
    "field_conflicts",
    "flagged_claim_fraction",
    "log_passages",
    "has_question",
    "novel_token_rate",
    "novel_rate_top2",
    "any_unsupported_entity",
    "log_unsupported_entities",
    "local_coverage_min",
    "local_coverage_mean",
    "mismatched_number_rate",
    "contradicted_claims",
)


def _rate(num: float, den: float) -> float:
    return num / den if den else 0.0


def grounding_features(
    checks: Sequence[ClaimCheck],
    *,
    n_non_claims: int,
    refusal: bool,
    response_chars: int,
    context_chars: int,
    structured_fraction: float,
    weak_threshold: float,
    n_passages: int = 0,
    has_question: bool = False,
    novel_token_rate: float = 0.0,
) -> list[float]:
    """Compute the feature vector, in the order of :data:`FEATURE_NAMES`.

    Args:
        checks: One check per claim.
        n_non_claims: Segments that are not claims.
        refusal: Whether any segment is a refusal.
        response_chars: Response length in characters.
        context_chars: Total context length in characters.
        structured_fraction: Share of passages that are structured fields, in [0, 1].
        weak_threshold: Support below which a claim counts as weak.
        n_passages: Passages the contexts were split into.
        has_question: Whether the request holds a question (see :func:`is_question`).
        novel_token_rate: Share of response words whose stem is in no context, in [0, 1].

    Returns:
        ``len(FEATURE_NAMES)`` finite floats.
    """
    n = len(checks)
    support = np.array([c.support for c in checks]) if n else np.ones(1)
    sim = np.array([c.similarity for c in checks]) if n else np.ones(1)
    cov = np.array([c.coverage for c in checks]) if n else np.ones(1)
    content = sum(c.n_content for c in checks)
    novel = sum(len(c.novel_words) for c in checks)
    bigram_total = sum(max(c.n_content, 1) for c in checks)
    nums = sum(c.numbers for c in checks)
    bad_nums = sum(len(c.unsupported_numbers) for c in checks)
    ents = sum(c.entities for c in checks)
    bad_ents = sum(len(c.unsupported_entities) for c in checks)
    negs = sum(c.negation_unsupported for c in checks)
    conflicts = sum(len(c.field_conflicts) for c in checks)
    local = np.array([c.local_coverage for c in checks]) if n else np.ones(1)
    top2 = sorted((c.novel_rate for c in checks), reverse=True)[:2]
    ok_nums = sum(c.supported_numbers for c in checks)
    mismatched = sum(c.mismatched_numbers for c in checks)
    flagged = sum(
        bool(
            c.unsupported_numbers
            or c.unsupported_entities
            or c.negation_unsupported
            or c.field_conflicts
            or c.contradictions
        )
        for c in checks
    )
    return [
        float(n),
        float(n_non_claims),
        float(refusal),
        math.log1p(response_chars),
        math.log1p(context_chars),
        min(_rate(response_chars, context_chars) if context_chars else 10.0, 10.0),
        structured_fraction,
        float(support.min()),
        float(support.mean()),
        _rate(sum(c.support < weak_threshold for c in checks), n),
        float(sim.min()),
        float(sim.mean()),
        float(cov.min()),
        float(cov.mean()),
        max((c.novel_rate for c in checks), default=0.0),
        _rate(novel, content),
        math.log1p(novel),
        max((c.novel_bigram_rate for c in checks), default=0.0),
        _rate(sum(c.novel_bigram_rate * max(c.n_content, 1) for c in checks), bigram_total),
        float(nums),
        float(bad_nums),
        _rate(bad_nums, nums),
        float(ents),
        float(bad_ents),
        _rate(bad_ents, ents),
        float(negs),
        float(conflicts),
        _rate(flagged, n),
        math.log1p(n_passages),
        float(has_question),
        novel_token_rate,
        float(np.mean(top2)) if top2 else 0.0,
        float(bad_ents > 0),
        math.log1p(bad_ents),
        float(local.min()),
        float(local.mean()),
        _rate(mismatched, ok_nums),
        float(sum(bool(c.contradictions) for c in checks)),
    ]


def heuristic_risk(checks: Sequence[ClaimCheck]) -> float:
    """Uncalibrated risk in [0, 1] that the response holds an unsupported claim.

    A noisy-OR over claims of ``(1 - support)`` squared: one clearly unsupported claim dominates,
    many slightly weak claims add up, and a response without claims scores 0.

    Args:
        checks: One check per claim.

    Returns:
        The risk; not a probability until calibrated.
    """
    keep = 1.0
    for c in checks:
        keep *= 1.0 - (1.0 - c.support) ** 2
    return float(min(max(1.0 - keep, 0.0), 1.0))
