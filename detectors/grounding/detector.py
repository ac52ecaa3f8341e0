"""The grounding detector: claim-by-claim support of a response against the retrieved contexts."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from detectors.grounding.claims import split_claims
from detectors.grounding.embedders import as_embedder, embed_all
from detectors.grounding.evidence import Evidence, build_evidence, contexts_key
from detectors.grounding.features import grounding_features, heuristic_risk, is_question
from detectors.grounding.inputs import normalize_contexts, normalize_text
from detectors.grounding.lexicon import stem, tokens
from detectors.grounding.phrases import unsupported_spans
from detectors.grounding.result import ClaimResult, GroundingResult, PassageRef, SkippedSegment
from detectors.grounding.scoring import check_claim
from scope_guard.errors import ConfigError

__all__ = ["GroundingConfig", "GroundingDetector"]

logger = logging.getLogger(__name__)


def _novel_token_rate(text: str, ev: Evidence) -> float:
    """Share of the response's words (stopwords too) whose stem is in no context nor question."""
    words = [stem(t.text) for t in tokens(text)]
    return sum(w not in ev.stems for w in words) / len(words) if words else 0.0


@dataclass(frozen=True)
class GroundingConfig:
    """Settings of :class:`GroundingDetector`."""

    top_k: int = 3
    """Best passages kept per claim."""
    support_threshold: float = 0.5
    """A claim with support below this is reported unsupported."""
    max_passage_words: int = 60
    """Longest prose passage, in words."""
    clause_min_words: int = 5
    """A sentence is split into clauses only when each side has at least this many words."""
    max_response_chars: int = 200_000
    """Longer responses raise InputError."""
    max_context_chars: int = 5_000_000
    """Longer contexts (all together) raise InputError."""
    cache_size: int = 16
    """How many distinct context sets keep their passage index (0 disables the cache)."""
    search_threads: int | None = 1
    """OpenMP threads per faiss search (None: leave faiss's setting); see ``Evidence.search``."""

    def __post_init__(self) -> None:
        checks = {
            "top_k": self.top_k >= 1,
            "support_threshold": 0.0 <= self.support_threshold <= 1.0,
            "max_passage_words": self.max_passage_words >= 1,
            "clause_min_words": self.clause_min_words >= 1,
            "max_response_chars": self.max_response_chars >= 1,
            "max_context_chars": self.max_context_chars >= 1,
            "cache_size": self.cache_size >= 0,
            "search_threads": self.search_threads is None or self.search_threads >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                msg = f"GroundingConfig.{name} is out of range: {getattr(self, name)!r}"
                raise ConfigError(msg)


class GroundingDetector:
    """Checks each claim of a response against the retrieved contexts. Needs no model weights.

    Args:
        embedder: None for the weight-free TF-IDF character n-gram embedder, a LangChain
            ``Embeddings`` object, a callable ``list[str] -> array (n, dim)``, or an object with
            ``embed(texts)`` or ``fit(passages) -> embedder``.
        config: Settings; defaults to :class:`GroundingConfig()`.

    Example:
        >>> det = GroundingDetector()
        >>> res = det.check("Paris is in France.", ["Paris is the capital of France."])
        >>> res.claims[0].supported
        True
    """

    def __init__(self, embedder: Any = None, config: GroundingConfig | None = None) -> None:
        self.embedder = as_embedder(embedder)
        self.config = config or GroundingConfig()
        self._cache: OrderedDict[str, Evidence] = OrderedDict()

    def evidence(self, contexts: Sequence[Any], question: str | None = None) -> Evidence:
        """The (cached) evidence for ``contexts``: passages, faiss index, lexical inventory."""
        texts = normalize_contexts(contexts, self.config.max_context_chars)
        q = (
            normalize_text(question, "question", self.config.max_response_chars)
            if question
            else None
        )
        return self._evidence(texts, q)

    def _evidence(self, texts: list[str], question: str | None) -> Evidence:
        key = contexts_key(texts, question, self.embedder)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        ev = build_evidence(texts, question, self.embedder, max_words=self.config.max_passage_words)
        if self.config.cache_size:
            self._cache[key] = ev
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return ev

    def clear_cache(self) -> None:
        """Drop every cached passage index."""
        self._cache.clear()

    def check(
        self, response: str, contexts: Sequence[Any], question: str | None = None
    ) -> GroundingResult:
        """Check ``response`` claim by claim against ``contexts``.

        Args:
            response: The generated answer. Empty or whitespace-only gives a result with no
                claims and risk 0.
            contexts: Retrieved documents: strings, LangChain ``Document`` objects, or dicts/lists
                (structured records); a single string counts as one context. No contexts: every
                claim is unsupported.
            question: The user's question; its words count as known, not as evidence.

        Returns:
            The per-claim results, the feature vector and the heuristic risk.

        Raises:
            InputError: A wrong type, a dict/list context nested too deeply to render as JSON,
                an input longer than the configured limits, or an embedder whose output is
                malformed (wrong shape, non-finite, or another width for claims than passages).
        """
        cfg = self.config
        text = normalize_text(response, "response", cfg.max_response_chars)
        texts = normalize_contexts(contexts, cfg.max_context_chars)
        q = normalize_text(question, "question", cfg.max_response_chars) if question else None
        segments = split_claims(text, clause_min_words=cfg.clause_min_words)
        claims = [s for s in segments if s.kind == "claim"]
        skipped = [
            SkippedSegment(text=s.text, start=s.start, end=s.end, kind=s.kind)
            for s in segments
            if s.kind != "claim"
        ]
        ev = self._evidence(texts, q)
        vectors = embed_all(ev.embedder, [c.text for c in claims], "claims")
        scores, ids = ev.search(vectors, cfg.top_k, cfg.search_threads)
        checks = [check_claim(c.text, scores[i], ids[i], ev) for i, c in enumerate(claims)]
        results = [
            ClaimResult(
                text=c.text,
                start=c.start,
                end=c.end,
                support=chk.support,
                supported=chk.support >= cfg.support_threshold,
                similarity=chk.similarity,
                coverage=chk.coverage,
                novel_rate=chk.novel_rate,
                best_passages=[self._ref(ev, pid, score) for pid, score in chk.passages],
                unsupported_numbers=chk.unsupported_numbers,
                unsupported_entities=chk.unsupported_entities,
                novel_words=chk.novel_words,
                negation_unsupported=chk.negation_unsupported,
                field_conflicts=chk.field_conflicts,
                contradictions=[f"{k.kind}: {k.text}" for k in chk.contradictions],
                unsupported_spans=[
                    (c.start + a, c.start + b) for a, b in unsupported_spans(c.text, chk.item_spans)
                ],
            )
            for c, chk in zip(claims, checks, strict=True)
        ]
        n_struct = sum(p.field is not None for p in ev.passages)
        features = grounding_features(
            checks,
            n_non_claims=len(skipped),
            refusal=any(s.kind == "refusal" for s in skipped),
            response_chars=len(text),
            context_chars=ev.n_chars,
            structured_fraction=n_struct / len(ev.passages) if ev.passages else 0.0,
            weak_threshold=cfg.support_threshold,
            n_passages=len(ev.passages),
            has_question=is_question(q),
            novel_token_rate=_novel_token_rate(text, ev),
        )
        risk = heuristic_risk(checks)
        logger.debug(
            "grounding: %d claims, %d passages, risk %.3f", len(claims), len(ev.passages), risk
        )
        return GroundingResult(
            claims=results,
            skipped=skipped,
            risk=risk,
            features=features,
            n_passages=len(ev.passages),
        )

    @staticmethod
    def _ref(ev: Evidence, pid: int, score: float) -> PassageRef:
        p = ev.passages[pid]
        return PassageRef(
            passage_id=pid,
            context_index=p.context_index,
            start=p.start,
            end=p.end,
            field=p.field,
            score=score,
            text=p.text,
        )
