"""Metrics for the grounding benchmark: grouped cross-validation of a logistic probe, span F1.

Every threshold is chosen on training folds only (by an inner grouped CV for the probe), never
on the fold being scored; rows that share a source document stay in one fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = [
    "BinaryScores",
    "best_threshold",
    "binary_scores",
    "grouped_cv",
    "span_counts",
    "span_cv",
]

ClaimSpans = list[tuple[float, list[tuple[int, int]]]]
"""Per response, per claim: ``(support, spans to flag when the claim is unsupported)``."""


class BinaryScores(NamedTuple):
    """Response-level scores."""

    n: int
    positives: int
    auroc: float
    f1: float
    precision: float
    recall: float


def _probe() -> object:
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))


def best_threshold(y: NDArray[np.int64], score: NDArray[np.float64]) -> float:
    """The score threshold (predict 1 when ``score >= t``) that maximises F1 on ``(y, score)``."""
    grid = np.unique(np.quantile(score, np.linspace(0.0, 1.0, 101)))
    f1s = [f1_score(y, (score >= t).astype(int), zero_division=0) for t in grid]
    return float(grid[int(np.argmax(f1s))])


def _oof(
    X: NDArray[np.float64], y: NDArray[np.int64], groups: NDArray[np.str_], splitter: object
) -> NDArray[np.float64]:
    prob = np.zeros(len(y))
    for tr, te in splitter.split(X, y, groups):  # type: ignore[attr-defined]
        model = _probe().fit(X[tr], y[tr])  # type: ignore[attr-defined]
        prob[te] = model.predict_proba(X[te])[:, 1]
    return prob


def grouped_cv(
    X: NDArray[np.float64],
    y: NDArray[np.int64],
    groups: NDArray[np.str_],
    *,
    n_splits: int = 5,
    seed: int = 0,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Out-of-fold probabilities and decisions of a standardised logistic regression.

    The decision threshold of each outer fold maximises F1 on out-of-fold predictions of an inner
    3-fold grouped CV over that fold's training rows.

    Args:
        X: Features ``(n, d)``.
        y: Labels ``(n,)``.
        groups: Source ids ``(n,)``.
        n_splits: Outer folds.
        seed: Shuffling seed of the outer split.

    Returns:
        ``(prob, pred)``, each ``(n,)``.
    """
    outer = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    prob = np.zeros(len(y))
    pred = np.zeros(len(y), dtype=np.int64)
    for tr, te in outer.split(X, y, groups):
        inner = _oof(X[tr], y[tr], groups[tr], GroupKFold(n_splits=3))
        t = best_threshold(y[tr], inner)
        model = _probe().fit(X[tr], y[tr])  # type: ignore[attr-defined]
        prob[te] = model.predict_proba(X[te])[:, 1]
        pred[te] = (prob[te] >= t).astype(np.int64)
    return prob, pred


def binary_scores(
    y: NDArray[np.int64], prob: NDArray[np.float64], pred: NDArray[np.int64] | None = None
) -> BinaryScores:
    """AUROC of ``prob``; F1, precision, recall of ``pred`` (NaN when not given or one class)."""
    auroc = float(roc_auc_score(y, prob)) if 0 < y.sum() < len(y) else float("nan")
    if pred is None:
        return BinaryScores(len(y), int(y.sum()), auroc, float("nan"), float("nan"), float("nan"))
    return BinaryScores(
        len(y),
        int(y.sum()),
        auroc,
        float(f1_score(y, pred, zero_division=0)),
        float(precision_score(y, pred, zero_division=0)),
        float(recall_score(y, pred, zero_division=0)),
    )


def span_counts(
    claims: ClaimSpans, gold: Sequence[tuple[int, int]], threshold: float
) -> tuple[int, int, int]:
    """Character counts ``(true positive, predicted, gold)`` for one response.

    Predicted characters are the spans of the claims with support below ``threshold``.
    """
    pred_chars: set[int] = set()
    for support, spans in claims:
        if support < threshold:
            for s, e in spans:
                pred_chars.update(range(s, e))
    gold_chars: set[int] = set()
    for s, e in gold:
        gold_chars.update(range(s, e))
    return len(pred_chars & gold_chars), len(pred_chars), len(gold_chars)


def _f1(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return (2 * p * r / (p + r) if p + r else 0.0), p, r


def span_cv(
    claims: list[ClaimSpans],
    gold: list[list[tuple[int, int]]],
    y: NDArray[np.int64],
    groups: NDArray[np.str_],
    *,
    gate: NDArray[np.bool_] | None = None,
    n_splits: int = 5,
    seed: int = 0,
) -> tuple[dict[int, tuple[int, int, int]], list[float]]:
    """Character-level span scores with the support threshold chosen on training folds.

    With ``gate``, only responses whose gate is True (e.g. flagged by the out-of-fold
    response-level probe) get predicted spans: localise only where the response is flagged.

    Returns:
        Per-response ``(tp, predicted, gold)`` counts and the threshold of each fold.
    """
    grid = np.round(np.arange(0.05, 1.0, 0.025), 3)
    counts: dict[int, tuple[int, int, int]] = {}
    thresholds = []
    outer = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    if gate is not None:
        claims = [c if g else [] for c, g in zip(claims, gate, strict=True)]
    for tr, te in outer.split(np.zeros(len(y)), y, groups):
        best_t, best_f = float(grid[0]), -1.0
        for t in grid:
            tot = np.sum([span_counts(claims[i], gold[i], float(t)) for i in tr], axis=0)
            f = _f1(int(tot[0]), int(tot[1]), int(tot[2]))[0]
            if f > best_f:
                best_t, best_f = float(t), f
        thresholds.append(best_t)
        for i in te:
            counts[int(i)] = span_counts(claims[i], gold[i], best_t)
    return counts, thresholds


def span_f1(counts: Sequence[tuple[int, int, int]]) -> tuple[float, float, float]:
    """Micro ``(f1, precision, recall)`` from per-response character counts."""
    tot = np.sum(list(counts), axis=0) if counts else np.zeros(3)
    return _f1(int(tot[0]), int(tot[1]), int(tot[2]))
