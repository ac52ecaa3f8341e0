"""Token-level probes: labels from spans, a planted direction recovered, aggregates by hand,
no leakage from test rows, span localization scored by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from calibration.labeled import LabeledSpan
from calibration.token_probe import (
    AGGREGATES,
    aggregate_scores,
    char_f1,
    cross_fit_aggregates,
    fit_token_probe,
    predicted_spans,
    token_labels,
)
from scope_guard.errors import InputError
from scope_guard.risks import Risk

FAB = Risk.FABRICATION


def test_token_labels_mark_tokens_that_overlap_a_span():
    offsets = np.array([[0, 3], [3, 8], [8, 9], [9, 15], [15, 20]])
    spans = [
        LabeledSpan(start=4, end=9, risk=FAB),
        LabeledSpan(start=15, end=16, risk=Risk.SYCOPHANCY),
    ]
    assert token_labels(offsets, spans, FAB).tolist() == [0, 1, 1, 0, 0]
    assert token_labels(offsets, spans, Risk.SYCOPHANCY).tolist() == [0, 0, 0, 0, 1]
    assert token_labels(np.zeros((0, 2)), spans, FAB).tolist() == []


def _planted(n_examples=60, d=16, seed=0):
    """Span tokens shifted along one direction, on top of an outlier dimension."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)
    acts, labels = [], []
    for i in range(n_examples):
        n = int(rng.integers(10, 30))
        y = np.zeros(n, np.int8)
        if i % 2:
            start = int(rng.integers(0, n - 3))
            y[start : start + 3] = 1
        x = rng.normal(size=(n, d)).astype(np.float32)
        x[:, 0] += 5000.0  # a massive dimension, as in Gemma's residual stream
        x += 2.5 * y[:, None] * direction
        acts.append(x)
        labels.append(y)
    return acts, labels, direction


def test_a_planted_direction_is_recovered_on_unseen_examples():
    acts, labels, direction = _planted()
    probe = fit_token_probe(acts[:40], labels[:40])
    truth = np.concatenate(labels[40:])
    scores = np.concatenate([probe.token_scores(a) for a in acts[40:]])
    best = roc_auc_score(truth, np.concatenate(acts[40:]) @ direction)  # the Bayes direction
    assert roc_auc_score(truth, scores) > best - 0.02
    assert best > 0.9


def test_aggregates_by_hand():
    scores = np.array([0.1, 0.9, 0.2, 0.6, 0.3, 0.05, 0.7])
    got = aggregate_scores(scores)
    assert len(got) == len(AGGREGATES)
    np.testing.assert_allclose(got, [0.9, (0.9 + 0.7 + 0.6 + 0.3 + 0.2) / 5, 3 / 7, scores.mean()])
    np.testing.assert_array_equal(aggregate_scores(np.zeros(0)), np.zeros(len(AGGREGATES)))


def test_test_rows_never_reach_the_probe():
    acts, labels, _ = _planted(n_examples=40)
    y = np.array([int(v.any()) for v in labels])
    groups = np.arange(40) // 2
    train, test = np.arange(0, 30), np.arange(30, 40)
    first = cross_fit_aggregates(acts, labels, y, groups, train, test)
    flipped = [1 - v if i >= 30 else v for i, v in enumerate(labels)]
    second = cross_fit_aggregates(acts, flipped, y, groups, train, test)
    np.testing.assert_array_equal(first[1], second[1])
    np.testing.assert_array_equal(first[0], second[0])
    assert first[0].shape == (30, len(AGGREGATES))
    assert first[1].shape == (10, len(AGGREGATES))


def test_bad_inputs_are_typed_errors():
    acts, labels, _ = _planted(n_examples=4)
    with pytest.raises(InputError, match="label arrays"):
        fit_token_probe(acts, labels[:2])
    with pytest.raises(InputError, match="token labels"):
        fit_token_probe(acts[:1], [labels[1]])
    with pytest.raises(InputError, match="both span tokens"):
        fit_token_probe(acts, [np.zeros_like(v) for v in labels])


def test_spans_from_scores_and_char_f1_by_hand():
    offsets = np.array([[0, 4], [5, 9], [10, 14], [15, 19]])
    spans = predicted_spans(offsets, np.array([0.9, 0.8, 0.1, 0.7]), threshold=0.5)
    assert spans == [(0, 9), (15, 19)]
    precision, recall, f1 = char_f1([spans], [[(5, 14)]])
    # predicted chars 0-8 and 15-18 (13), gold 5-13 (9), overlap 5-8 (4)
    assert (precision, recall) == pytest.approx((4 / 13, 4 / 9))
    assert f1 == pytest.approx(2 * (4 / 13) * (4 / 9) / (4 / 13 + 4 / 9))
    assert char_f1([[]], [[]]) == (0.0, 0.0, 0.0)
