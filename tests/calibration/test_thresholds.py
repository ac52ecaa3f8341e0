"""Threshold rules on hand-made data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.thresholds import (
    ThresholdChoice,
    choose_threshold,
    threshold_for_f1,
    threshold_for_fpr,
    threshold_for_precision,
)
from scope_guard.errors import ConfigError, InputError

# sorted by probability, descending: 0.95+ 0.9+ 0.8+ 0.7- 0.6+ 0.5- 0.4+ 0.3- 0.2- 0.1-
PROBS = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
Y = np.array([0, 0, 0, 1, 0, 1, 0, 1, 1, 1])


def _rates(probs, y, t):
    flag = probs >= t
    tp, fp = np.sum(flag & (y == 1)), np.sum(flag & (y == 0))
    return fp / np.sum(y == 0), tp / np.sum(y == 1), tp / max(tp + fp, 1)


@pytest.mark.parametrize(("target", "expected"), [(0.0, 0.8), (0.2, 0.6), (0.4, 0.4), (1.0, 0.1)])
def test_fpr_rule_known_answers(target, expected):
    assert threshold_for_fpr(PROBS, Y, target) == expected


@pytest.mark.parametrize(("target", "expected"), [(1.0, 0.8), (0.9, 0.8), (0.8, 0.6), (0.5, 0.1)])
def test_precision_rule_known_answers(target, expected):
    assert threshold_for_precision(PROBS, Y, target) == expected


def test_f1_rule_known_answer():
    # F1: t=0.8 -> 0.75, t=0.6 -> 0.8, t=0.4 -> 10/12: the best
    assert threshold_for_f1(PROBS, Y) == 0.4


def test_fpr_rule_hits_the_target_with_the_most_recall():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3000)
    probs = np.round(np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1), 3)  # with ties
    for target in (0.01, 0.05, 0.2):
        t = threshold_for_fpr(probs, y, target)
        fpr, _, _ = _rates(probs, y, t)
        assert fpr <= target
        lower = probs[probs < t].max()  # the next candidate flags more and breaks the target
        assert _rates(probs, y, lower)[0] > target


def test_precision_rule_hits_the_target():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 3000)
    probs = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    for target in (0.7, 0.8, 0.9):
        t = threshold_for_precision(probs, y, target)
        _, recall, precision = _rates(probs, y, t)
        assert precision >= target
        assert recall > 0


def test_ties_are_flagged_together():
    probs = np.array([0.9, 0.7, 0.7, 0.7, 0.2])
    y = np.array([1, 1, 0, 0, 0])
    assert threshold_for_fpr(probs, y, 0.5) == 0.9  # at 0.7 two of three negatives are flagged
    assert threshold_for_fpr(probs, y, 0.7) == 0.7


def test_unreachable_precision_flags_nothing():
    probs = np.array([0.9, 0.8, 0.3])
    y = np.array([0, 1, 1])
    with pytest.warns(UserWarning, match="flags nothing"):
        t = threshold_for_precision(probs, y, 0.99)
    assert t > probs.max()
    assert threshold_for_fpr(probs, y, 0.0) > probs.max()


def test_choose_threshold_records_the_rule():
    choice = choose_threshold(PROBS, Y, "fpr", 0.2)
    assert choice == ThresholdChoice("fpr", 0.2, 0.6)
    assert choose_threshold(PROBS, Y, "f1") == ThresholdChoice("f1", None, 0.4)
    assert choose_threshold(PROBS, Y, "precision", 0.8).threshold == 0.6


def test_bad_inputs():
    with pytest.raises(ConfigError, match="valid"):
        choose_threshold(PROBS, Y, "recall", 0.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs a target"):
        choose_threshold(PROBS, Y, "fpr")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        threshold_for_fpr(PROBS, Y, 1.5)
    with pytest.raises(InputError, match="both classes"):
        threshold_for_f1(PROBS, np.ones(10))
    with pytest.raises(InputError, match="rows"):
        threshold_for_f1(PROBS[:3], Y)
