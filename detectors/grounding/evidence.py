"""The evidence of one request: passages, their faiss index, the lexical inventory of the contexts.

Built once per distinct set of contexts (the detector caches it), so that passages are embedded
once however many responses or regenerations are checked against them.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice, pairwise

import faiss
import numpy as np
from numpy.typing import NDArray

from detectors.grounding.embedders import Embedder, RequestFitted, embed_all
from detectors.grounding.fields import BoolField, bool_fields
from detectors.grounding.lexicon import content_stems, prefix, stem, tokens
from detectors.grounding.numbers import (
    NumberMention,
    compatible_kinds,
    find_numbers,
    same_quantity,
)
from detectors.grounding.passages import Passage, split_contexts
from scope_guard.errors import InputError

__all__ = ["Evidence", "NumberIndex", "build_evidence", "contexts_key"]

_OMP_LOCK = threading.Lock()
# Mentions examined per number look-up: thousands of distinct values within one claim's rounding
# (a crafted context) must not make each look-up linear in the context.
_MAX_SCAN = 4096


class NumberIndex:
    """The numbers of the contexts and question, sorted by value for range look-ups.

    A claimed number is looked up in the window its rounding allows, among the kinds it may be
    (:func:`~detectors.grounding.numbers.compatible_kinds`), then checked with
    :func:`~detectors.grounding.numbers.same_quantity`, so a look-up costs ``O(log n)`` plus the
    distinct mentions of that value. A value repeated in one passage is kept once (a context such
    as "1, 1, 1, ..." must not make every look-up walk all of its copies).

    Args:
        mentions: ``(mention, passage id)`` pairs; passage id -1 for the question. Months of ISO
            dates are left out (they are words).
    """

    def __init__(self, mentions: Iterable[tuple[NumberMention, int]]) -> None:
        kept = sorted(
            ((m, pid) for m, pid in mentions if m.kind != "month"), key=lambda x: x[0].value
        )
        self._n = len(kept)
        seen: set[tuple[float, str, int]] = set()
        by_kind: dict[str, list[tuple[float, int, NumberMention, int]]] = defaultdict(list)
        for seq, (m, pid) in enumerate(kept):
            if (m.value, m.kind, pid) not in seen:  # same_quantity reads only value and kind
                seen.add((m.value, m.kind, pid))
                by_kind[m.kind].append((m.value, seq, m, pid))
        self._entries = dict(by_kind)
        self._values = {k: [e[0] for e in v] for k, v in by_kind.items()}

    def __len__(self) -> int:
        return self._n

    def _candidates(self, claimed: NumberMention) -> Iterator[tuple[NumberMention, int]]:
        """Matching mentions in value order (ties in passage order), at most _MAX_SCAN examined."""
        slack = claimed.tol + 1e-9 * max(abs(claimed.value), 1.0) * 2
        windows = []
        for kind in compatible_kinds(claimed.kind):
            values = self._values.get(kind)
            if values:
                lo = bisect_left(values, claimed.value - slack)
                hi = bisect_right(values, claimed.value + slack)
                windows.append(map(self._entries[kind].__getitem__, range(lo, hi)))
        merged = heapq.merge(*windows, key=lambda e: (e[0], e[1]))
        for _, _, m, pid in islice(merged, _MAX_SCAN):
            if same_quantity(claimed, m):
                yield m, pid

    def supports(self, claimed: NumberMention) -> bool:
        """Whether some context (or the question) states the claimed quantity."""
        return next(self._candidates(claimed), None) is not None

    def holders(self, claimed: NumberMention, limit: int) -> list[int]:
        """Up to ``limit`` distinct passages that state the claimed quantity, in passage order."""
        out: set[int] = set()
        for _, pid in self._candidates(claimed):
            if pid >= 0:
                out.add(pid)
                if len(out) >= limit:
                    break
        return sorted(out)


@dataclass(frozen=True)
class Evidence:
    """Everything a claim is checked against. Built by :func:`build_evidence`."""

    passages: list[Passage]
    """The passages, in context order."""
    embedder: Embedder
    """The embedder the passages were embedded with (fitted on them when request-fitted)."""
    index: faiss.IndexFlatIP | None
    """Inner-product index over unit-normalised passage vectors; None when there are no passages."""
    stems: frozenset[str]
    """Stems of every word in the contexts and the question (field names included)."""
    bigrams: frozenset[tuple[str, str]]
    """Adjacent word-stem pairs of the contexts (stopwords included)."""
    numbers: NumberIndex
    """Every number of the contexts and the question, by value."""
    prefixes: frozenset[str]
    """Five-letter prefixes of the context words of six letters or more."""
    fields: list[BoolField]
    """Yes/no/unknown fields of structured contexts."""
    passage_stems: list[frozenset[str]] = field(repr=False)
    """Per passage: its content-word stems."""
    stem_passages: dict[str, list[int]] = field(repr=False)
    """Inverted index: stem -> passages holding it."""
    n_chars: int = 0
    """Total characters of the contexts."""

    def neighbourhood(self, pid: int) -> frozenset[str]:
        """Content stems of passage ``pid`` and its neighbours in the same context (one each side).

        A fact usually sits in one place of a document: a claim whose words are all in the
        contexts, but only scattered far apart, may join things the document keeps apart.
        """
        ci = self.passages[pid].context_index
        near = [
            self.passage_stems[j]
            for j in range(max(pid - 1, 0), min(pid + 2, len(self.passages)))
            if self.passages[j].context_index == ci
        ]
        return frozenset().union(*near)

    def search(
        self, vectors: NDArray[np.float32], k: int, threads: int | None = 1
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Top-``k`` passages by cosine similarity for each row of ``vectors`` ``(n, dim)``.

        Args:
            vectors: Unit-normalised query vectors.
            k: Passages per query.
            threads: OpenMP threads for this search (None: faiss's current setting). A request's
                index is small, and waking a thread team costs more (~5 ms on 2 cores) than the
                search itself, so the default is 1; the previous setting is restored after.

        Returns:
            ``(scores, ids)``, each ``(n, min(k, n_passages))``; scores in [-1, 1].

        Raises:
            InputError: The vectors' width differs from the passages' (an embedder whose output
                width changes between calls).
        """
        n = vectors.shape[0]
        if self.index is None or n == 0:
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        if vectors.ndim != 2 or vectors.shape[1] != self.index.d:
            width = vectors.shape[1] if vectors.ndim == 2 else vectors.shape
            msg = (
                f"embedder returned vectors of width {width} for the claims but {self.index.d} "
                f"for the passages; claims and passages must be embedded in the same space"
            )
            raise InputError(msg)
        if threads is None:
            return self.index.search(vectors, min(k, self.index.ntotal))
        with _OMP_LOCK:
            previous = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(threads)
            try:
                return self.index.search(vectors, min(k, self.index.ntotal))
            finally:
                faiss.omp_set_num_threads(previous)


def contexts_key(contexts: list[str], question: str | None, embedder: object) -> str:
    """A cache key for the evidence of ``contexts`` (plus question) under ``embedder``."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(embedder).encode("utf-8", "replace"))
    h.update(str(id(embedder)).encode())
    for text in [*contexts, "\x00q", question or ""]:
        h.update(text.encode("utf-8", "replace"))
        h.update(b"\x00")
    return h.hexdigest()


def build_evidence(
    contexts: list[str],
    question: str | None,
    embedder: Embedder | RequestFitted,
    *,
    max_words: int = 60,
) -> Evidence:
    """Split, embed, index and inventory ``contexts``. Time and memory are linear in their size.

    Args:
        contexts: Sanitised context texts.
        question: The user's question, whose words count as known (not as evidence passages).
        embedder: The embedder; a :class:`RequestFitted` one is fitted on the passages first.
        max_words: Longest prose passage in words.

    Returns:
        The evidence.
    """
    passages = split_contexts(contexts, max_words=max_words)
    texts = [p.text for p in passages]
    fitted: Embedder = embedder.fit(texts) if isinstance(embedder, RequestFitted) else embedder
    index = None
    if texts:
        vectors = embed_all(fitted, texts, "passages")
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
    stems: set[str] = set()
    bigrams: set[tuple[str, str]] = set()
    mentions: list[tuple[NumberMention, int]] = []
    prefixes: set[str] = set()
    passage_stems: list[frozenset[str]] = []
    stem_passages: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(texts):
        toks = list(tokens(text))
        words = [stem(t.text) for t in toks]
        stems.update(words)
        prefixes.update(prefix(t.text) for t in toks if len(t.text) >= 6)
        bigrams.update(pairwise(words))
        own = frozenset(s for s, _ in content_stems(text))
        passage_stems.append(own)
        for s in own:
            stem_passages[s].append(i)
        found = find_numbers(text)
        # ISO dates name their month ("2022-01-16" supports "January").
        stems.update(stem(m.text) for m in found if m.kind == "month")
        mentions.extend((m, i) for m in found)
    if question:
        stems.update(stem(t.text) for t in tokens(question))
        mentions.extend((m, -1) for m in find_numbers(question))
    return Evidence(
        passages=passages,
        embedder=fitted,
        index=index,
        stems=frozenset(stems),
        bigrams=frozenset(bigrams),
        numbers=NumberIndex(mentions),
        prefixes=frozenset(prefixes),
        fields=bool_fields(passages),
        passage_stems=passage_stems,
        stem_passages=dict(stem_passages),
        n_chars=sum(len(c) for c in contexts),
    )
