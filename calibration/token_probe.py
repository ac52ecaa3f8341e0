"""Token-level probes: a logistic probe on each response token's activations, trained on labeled
spans, and its per-token risk aggregated into response-level features.

RAGTruth marks *where* an answer fabricates (character spans). Mean-pooling a layer over the
whole response dilutes a three-token fabrication in a two-hundred-token answer; a per-token
probe trained on the spans keeps it, and its aggregates (the riskiest token, the mean of the
few riskiest, the share of risky tokens) carry it to the response level. The same per-token
scores localize the span (:func:`predicted_spans`, :func:`char_f1`).

Training (:func:`fit_token_probe`): tokens are standardized per dimension (Gemma's residual
stream has outlier dimensions thousands of times the others' spread), negatives are subsampled
(spans are rare: a few percent of tokens) with balanced class weights, and an L2 logistic
regression is fitted. Only tokens of training rows are ever seen: under cross-validation the
caller passes the training rows (see :func:`cross_fit_aggregates`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from calibration.labeled import LabeledSpan
from calibration.splits import group_folds
from detectors.risk_spans import token_spans
from detectors.token_scoring import AGGREGATES, TokenProbe, aggregate_scores
from scope_guard.errors import InputError
from scope_guard.risks import Risk

__all__ = [
    "AGGREGATES",
    "TokenProbe",
    "aggregate_scores",
    "char_f1",
    "cross_fit_aggregates",
    "fit_token_probe",
    "predicted_spans",
    "token_labels",
]


def token_labels(offsets: np.ndarray, spans: Sequence[LabeledSpan], risk: Risk) -> np.ndarray:
    """1 for each token whose characters overlap a labeled span of ``risk``, else 0.

    Args:
        offsets: ``(n_tokens, 2)`` character offsets of the response tokens.
        spans: The example's labeled spans.
        risk: The risk whose spans count.
    """
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    out = np.zeros(offsets.shape[0], dtype=np.int8)
    for span in spans:
        if span.risk is not risk:
            continue
        out |= ((offsets[:, 0] < span.end) & (offsets[:, 1] > span.start)).astype(np.int8)
    return out


def fit_token_probe(
    acts: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    *,
    c: float = 0.05,
    negatives_per_positive: float = 4.0,
    random_state: int = 0,
) -> TokenProbe:
    """Fit a token probe on the tokens of the given examples.

    Args:
        acts: Per example, ``(n_tokens_i, d)`` activations.
        labels: Per example, ``(n_tokens_i,)`` 0/1 token labels (:func:`token_labels`).
        c: Inverse L2 strength of the logistic regression (on standardized inputs).
        negatives_per_positive: Negative tokens kept per positive one (all when fewer).
        random_state: Seed of the negative subsample.

    Raises:
        InputError: lengths disagree, or no positive or no negative token.
    """
    if len(acts) != len(labels):
        msg = f"{len(acts)} activation arrays but {len(labels)} label arrays"
        raise InputError(msg)
    for i, (a, y) in enumerate(zip(acts, labels, strict=True)):
        if a.shape[0] != y.shape[0]:
            msg = f"example {i}: {a.shape[0]} token activations but {y.shape[0]} token labels"
            raise InputError(msg)
    x = np.concatenate([np.asarray(a, dtype=np.float32) for a in acts])
    y = np.concatenate([np.asarray(v, dtype=np.int8) for v in labels])
    positives = np.flatnonzero(y == 1)
    negatives = np.flatnonzero(y == 0)
    if positives.size == 0 or negatives.size == 0:
        msg = "a token probe needs both span tokens and other tokens in its training rows"
        raise InputError(msg)
    rng = np.random.default_rng(random_state)
    keep = int(min(negatives.size, max(1, round(negatives_per_positive * positives.size))))
    rows = np.sort(np.concatenate([positives, rng.choice(negatives, keep, replace=False)]))
    sample = x[rows].astype(np.float64)
    mean = sample.mean(axis=0)
    scale = sample.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=500)
    model.fit((sample - mean) / scale, y[rows])
    return TokenProbe(
        weights=model.coef_.ravel().astype(np.float64),
        bias=float(model.intercept_[0]),
        mean=mean,
        scale=scale,
    )


def cross_fit_aggregates(
    acts: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    y: np.ndarray,
    groups: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    *,
    inner_splits: int = 3,
    c: float = 0.05,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray, TokenProbe]:
    """Token-probe aggregates for the training rows (cross-fitted) and the test rows.

    The combiner fitted on the training rows must see aggregates of the same kind it will meet
    on new rows: scores of a probe that never saw the row. So training rows get theirs from
    ``inner_splits`` grouped folds inside ``train``; test rows from a probe fitted on all of
    ``train``.

    Returns:
        ``(aggregates of train rows, aggregates of test rows, the probe fitted on train)``.
    """
    train = np.asarray(train)
    test = np.asarray(test)
    out_train = np.zeros((train.size, len(AGGREGATES)))
    for inner_train, inner_test in group_folds(
        y[train], groups[train], n_splits=inner_splits, random_state=random_state
    ):
        fit_rows = train[inner_train]
        probe = fit_token_probe([acts[i] for i in fit_rows], [labels[i] for i in fit_rows], c=c)
        for j in inner_test:
            out_train[j] = aggregate_scores(probe.token_scores(acts[train[j]]))
    probe = fit_token_probe([acts[i] for i in train], [labels[i] for i in train], c=c)
    out_test = np.zeros((test.size, len(AGGREGATES)))
    for j, i in enumerate(test):
        out_test[j] = aggregate_scores(probe.token_scores(acts[i]))
    return out_train, out_test, probe


def predicted_spans(
    offsets: np.ndarray, scores: np.ndarray, threshold: float
) -> list[tuple[int, int]]:
    """Character spans of runs of consecutive tokens scoring at least ``threshold`` (the
    guard's own :func:`~detectors.risk_spans.token_spans`, so that the report and the runtime
    highlight the same spans)."""
    pairs = [(int(a), int(b)) for a, b in np.asarray(offsets).reshape(-1, 2)]
    return [(start, end) for start, end, _ in token_spans(pairs, scores, threshold).risky]


def _chars(spans: Sequence[tuple[int, int]]) -> set[int]:
    return {c for start, end in spans for c in range(start, end)}


def char_f1(
    predicted: Sequence[Sequence[tuple[int, int]]], gold: Sequence[Sequence[tuple[int, int]]]
) -> tuple[float, float, float]:
    """Micro precision, recall and F1 of predicted over gold characters, over all responses."""
    tp = fp = fn = 0
    for pred, true in zip(predicted, gold, strict=True):
        p, t = _chars(pred), _chars(true)
        tp += len(p & t)
        fp += len(p - t)
        fn += len(t - p)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
