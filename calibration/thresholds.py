"""Choosing a decision threshold on calibrated probabilities.

A row is flagged when ``prob >= threshold``. Every rule considers the distinct probabilities of
the given rows as candidate thresholds (tied rows are flagged together), plus one just above the
largest probability, which flags nothing.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, NamedTuple

import numpy as np

from calibration._validation import as_binary_labels, as_scores
from scope_guard.errors import ConfigError, InputError

__all__ = [
    "ThresholdChoice",
    "choose_threshold",
    "threshold_for_f1",
    "threshold_for_fpr",
    "threshold_for_precision",
]

ThresholdRule = Literal["fpr", "precision", "f1"]


class ThresholdChoice(NamedTuple):
    """A chosen threshold and the rule that chose it."""

    rule: str
    """``fpr``, ``precision`` or ``f1``."""
    target: float | None
    """The rule's target (a false-positive rate or a precision); ``None`` for ``f1``."""
    threshold: float
    """Flag a row when its probability is ``>= threshold``."""


class _Curve(NamedTuple):
    thresholds: np.ndarray  # distinct candidate thresholds, descending; the first flags nothing
    tp: np.ndarray  # true positives flagged at each threshold
    fp: np.ndarray  # false positives flagged at each threshold
    n_pos: int
    n_neg: int


def _curve(probs: Any, y: Any) -> _Curve:
    y_arr = as_binary_labels(y)
    p = as_scores(probs, y_arr.shape[0], name="probs")
    n_pos = int(y_arr.sum())
    n_neg = int(y_arr.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        msg = f"threshold selection needs both classes; got {n_pos} positive, {n_neg} negative"
        raise InputError(msg)
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y_arr[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(p_sorted)), p_sorted.size - 1]
    tp = np.cumsum(y_sorted)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    above_all = float(np.nextafter(p_sorted[0], np.inf))
    return _Curve(np.r_[above_all, p_sorted[last_of_tie]], np.r_[0, tp], np.r_[0, fp], n_pos, n_neg)


def _check_target(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        msg = f"{name} must be in [0, 1], got {value!r}"
        raise ConfigError(msg)


def threshold_for_fpr(probs: Any, y: Any, target_fpr: float) -> float:
    """The lowest threshold (highest recall) whose false-positive rate on these rows is <= target.

    Args:
        probs: Calibrated probabilities, shape ``(n,)``.
        y: Binary labels, shape ``(n,)``, both classes present.
        target_fpr: Largest acceptable false-positive rate, in ``[0, 1]``.

    Returns:
        The threshold; just above the largest probability when only flagging nothing qualifies.
    """
    _check_target("target_fpr", target_fpr)
    c = _curve(probs, y)
    ok = np.flatnonzero(c.fp / c.n_neg <= target_fpr)  # fpr rises with index: a prefix
    return float(c.thresholds[ok[-1]])


def threshold_for_precision(probs: Any, y: Any, target_precision: float) -> float:
    """The threshold with the highest recall among those whose precision is >= target.

    Args:
        probs: Calibrated probabilities, shape ``(n,)``.
        y: Binary labels, shape ``(n,)``, both classes present.
        target_precision: Smallest acceptable precision, in ``[0, 1]``.

    Returns:
        The threshold. When no threshold reaches the target, a ``UserWarning`` is issued and the
        threshold that flags nothing is returned.
    """
    _check_target("target_precision", target_precision)
    c = _curve(probs, y)
    flagged = c.tp[1:] + c.fp[1:]
    ok = np.flatnonzero(c.tp[1:] / flagged >= target_precision)
    if ok.size == 0:
        warnings.warn(
            f"no threshold reaches precision {target_precision}; the threshold flags nothing",
            UserWarning,
            stacklevel=2,
        )
        return float(c.thresholds[0])
    return float(c.thresholds[1:][ok[-1]])  # recall rises with index: the last one qualifying


def threshold_for_f1(probs: Any, y: Any) -> float:
    """The threshold that maximizes F1 on these rows (the highest such one on ties).

    Args:
        probs: Calibrated probabilities, shape ``(n,)``.
        y: Binary labels, shape ``(n,)``, both classes present.

    Returns:
        The threshold.
    """
    c = _curve(probs, y)
    tp, fp = c.tp[1:], c.fp[1:]
    f1 = 2.0 * tp / (2.0 * tp + fp + (c.n_pos - tp))
    return float(c.thresholds[1:][int(np.argmax(f1))])


def choose_threshold(
    probs: Any, y: Any, rule: ThresholdRule, target: float | None = None
) -> ThresholdChoice:
    """Apply one threshold rule and record it.

    Args:
        probs: Calibrated probabilities, shape ``(n,)``.
        y: Binary labels, shape ``(n,)``.
        rule: ``fpr`` or ``precision`` (both need ``target``), or ``f1``.
        target: The rule's target.

    Returns:
        The :class:`ThresholdChoice`.

    Raises:
        ConfigError: On an unknown rule or a missing target.
    """
    if rule == "f1":
        return ThresholdChoice("f1", None, threshold_for_f1(probs, y))
    if rule not in ("fpr", "precision"):
        msg = f"unknown threshold rule {rule!r}; valid: ['fpr', 'precision', 'f1']"
        raise ConfigError(msg)
    if target is None:
        msg = f"the {rule!r} threshold rule needs a target"
        raise ConfigError(msg)
    fn = threshold_for_fpr if rule == "fpr" else threshold_for_precision
    return ThresholdChoice(rule, float(target), fn(probs, y, target))
