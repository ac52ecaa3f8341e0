"""Pluggable text embedders for the grounding detector.

An :class:`Embedder` maps a list of texts to a ``(n_texts, dim)`` array. Three kinds plug in:

- the default :class:`TfidfCharEmbedder`, weight-free: TF-IDF over character 3-5-grams, fitted
  on the passages of each request (:class:`RequestFitted` -> ``fit(passages)`` returns an
  embedder for that request);
- any LangChain ``Embeddings`` object (anything with ``embed_documents``), e.g. the one the RAG
  app already uses;
- a plain callable ``list[str] -> array``.

:func:`as_embedder` turns any of these into an :class:`Embedder`; :func:`unit_rows` checks the
output and normalises it for inner-product search. A sentence-transformers model given by local
path can be passed through a callable (``SentenceTransformer(path).encode``); it is an optional
extra and never imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from scope_guard.errors import ConfigError, InputError

__all__ = [
    "CallableEmbedder",
    "Embedder",
    "LangChainEmbedder",
    "RequestFitted",
    "TfidfCharEmbedder",
    "as_embedder",
    "unit_rows",
]


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to vectors."""

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        """Embed ``texts`` into a ``(len(texts), dim)`` array."""
        ...


@runtime_checkable
class RequestFitted(Protocol):
    """An embedder that is fitted on the passages of one request before use."""

    def fit(self, corpus: list[str]) -> Embedder:
        """Return an embedder fitted on ``corpus`` (the passages of one request)."""
        ...


class _FittedTfidf:
    """A TF-IDF embedder fitted on one request's passages; keeps their vectors from the fit."""

    def __init__(self, vectorizer: Any, corpus: list[str], vectors: Any) -> None:
        self.vectorizer = vectorizer
        self._corpus = corpus
        self._vectors = vectors

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        if texts == self._corpus:  # the passages: reuse fit_transform's output
            return np.asarray(self._vectors.toarray(), dtype=np.float32)
        return np.asarray(self.vectorizer.transform(texts).toarray(), dtype=np.float32)


class TfidfCharEmbedder:
    """Weight-free default: TF-IDF over in-word character n-grams, fitted per request.

    Char n-grams match inflections and compounds ("grilling"/"grill") without a stemmer or a
    vocabulary. The vocabulary is capped at ``max_features`` so that memory stays
    ``O(n_passages * max_features)`` for contexts of any size.

    Args:
        ngram_range: Smallest and largest n-gram length.
        max_features: Vocabulary cap (most frequent n-grams in the request's passages).
    """

    def __init__(self, *, ngram_range: tuple[int, int] = (3, 5), max_features: int = 4096) -> None:
        if not 1 <= ngram_range[0] <= ngram_range[1]:
            msg = f"ngram_range must satisfy 1 <= low <= high, got {ngram_range!r}"
            raise ConfigError(msg)
        if max_features < 1:
            msg = f"max_features must be >= 1, got {max_features!r}"
            raise ConfigError(msg)
        self.ngram_range = ngram_range
        self.max_features = max_features

    def fit(self, corpus: list[str]) -> Embedder:
        """Fit the vocabulary and IDF on ``corpus``; returns an embedder for this request."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=self.ngram_range,
            lowercase=True,
            sublinear_tf=True,
            max_features=self.max_features,
            dtype=np.float32,
        )
        if not any(t.strip() for t in corpus):
            vectorizer.fit(["empty"])
            return _FittedTfidf(vectorizer, [], None)
        vectors = vectorizer.fit_transform(corpus)
        return _FittedTfidf(vectorizer, list(corpus), vectors)

    def __repr__(self) -> str:
        return (
            f"TfidfCharEmbedder(ngram_range={self.ngram_range}, max_features={self.max_features})"
        )


class LangChainEmbedder:
    """Adapter for a LangChain ``Embeddings`` object (``embed_documents(list[str])``).

    Args:
        embeddings: The LangChain embeddings object.
    """

    def __init__(self, embeddings: Any) -> None:
        self.embeddings = embeddings

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        """Embed with ``embed_documents`` (claims and passages live in the same space)."""
        return np.asarray(self.embeddings.embed_documents(list(texts)), dtype=np.float32)

    def __repr__(self) -> str:
        return f"LangChainEmbedder({type(self.embeddings).__name__})"


class CallableEmbedder:
    """Adapter for a callable ``list[str] -> array-like of shape (n, dim)``.

    Args:
        fn: The callable.
    """

    def __init__(self, fn: Callable[[list[str]], Any]) -> None:
        self.fn = fn

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        """Call the wrapped function."""
        return np.asarray(self.fn(list(texts)), dtype=np.float32)

    def __repr__(self) -> str:
        return f"CallableEmbedder({getattr(self.fn, '__name__', type(self.fn).__name__)})"


def as_embedder(obj: Any) -> Embedder | RequestFitted:
    """Wrap ``obj`` as an embedder.

    Args:
        obj: None (the default TF-IDF embedder), a :class:`RequestFitted` or :class:`Embedder`,
            a LangChain ``Embeddings`` object, or a callable ``list[str] -> array``.

    Returns:
        Something the detector can use.

    Raises:
        ConfigError: ``obj`` is none of these.
    """
    if obj is None:
        return TfidfCharEmbedder()
    if isinstance(obj, RequestFitted | Embedder):
        return obj
    if callable(getattr(obj, "embed_documents", None)):
        return LangChainEmbedder(obj)
    if callable(obj):
        return CallableEmbedder(obj)
    msg = (
        f"embedder must be None, a LangChain Embeddings object, a callable list[str] -> array, "
        f"or an object with embed() or fit(); got {type(obj).__name__}"
    )
    raise ConfigError(msg)


def unit_rows(vectors: Any, n_rows: int, what: str) -> NDArray[np.float32]:
    """Check an embedder's output and scale each row to unit L2 norm (zero rows stay zero).

    Args:
        vectors: The embedder's output.
        n_rows: How many rows it must have.
        what: What was embedded, for the error message ("claims", "passages").

    Returns:
        A C-contiguous float32 array of shape ``(n_rows, dim)``.

    Raises:
        InputError: Wrong shape or non-finite values.
    """
    arr = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if arr.ndim != 2 or arr.shape[0] != n_rows or arr.shape[1] < 1:
        msg = f"embedder returned shape {arr.shape} for {n_rows} {what}; expected ({n_rows}, dim)"
        raise InputError(msg)
    if not np.isfinite(arr).all():
        msg = f"embedder returned non-finite values for {what}"
        raise InputError(msg)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return np.ascontiguousarray(arr / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def embed_all(embedder: Embedder, texts: Sequence[str], what: str) -> NDArray[np.float32]:
    """Embed ``texts`` in one call and return unit rows (see :func:`unit_rows`)."""
    if not texts:
        return np.zeros((0, 1), dtype=np.float32)
    return unit_rows(embedder.embed(list(texts)), len(texts), what)
