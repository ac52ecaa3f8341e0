"""Fitting calibration maps from held-out decision scores to probabilities.

The scores must come from rows the probe never saw (a held-out split or cross-fitted folds, see
:mod:`calibration.splits`). The result is a :class:`~detectors.calibration_map.CalibrationMap`,
which a deployed detector applies without scikit-learn.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from sklearn.isotonic import IsotonicRegression

from calibration._validation import as_binary_labels, as_scores
from calibration.splits import group_folds
from detectors.calibration_map import CalibrationMap, stable_sigmoid
from scope_guard.errors import ConfigError, InputError

__all__ = [
    "METHODS",
    "CalibrationCandidate",
    "calibration_candidates",
    "fit_calibration_map",
]

logger = logging.getLogger(__name__)

FittedMethod = Literal["sigmoid", "isotonic", "temperature"]
METHODS: tuple[FittedMethod, ...] = ("temperature", "sigmoid", "isotonic")
"""The fitted methods, simplest first: ``auto`` breaks exact ties in this order."""

_EPS = 1e-12


class CalibrationCandidate(NamedTuple):
    """Held-out performance of one calibration method (for ``auto`` and the report)."""

    method: str
    """``temperature``, ``sigmoid`` or ``isotonic``."""
    log_loss: float
    """Mean log loss over the held-out rows of every fold (natural log)."""
    brier: float
    """Mean Brier score over the same rows."""


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _fit_sigmoid(s: np.ndarray, y: np.ndarray) -> CalibrationMap:
    # Platt (2000): fit on smoothed targets (N+ + 1)/(N+ + 2) and 1/(N- + 2), the prior Platt
    # derives from a uniform Bayesian prior; it keeps a and b finite on separable data.
    # scikit-learn's CalibratedClassifierCV(method="sigmoid") uses the same targets.
    n_pos = float(y.sum())
    n_neg = float(y.size) - n_pos
    t = np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    scale = max(float(np.max(np.abs(s))), 1.0)  # conditioning only; undone below
    f = s / scale

    def loss_grad(ab: np.ndarray) -> tuple[float, np.ndarray]:
        z = ab[0] * f + ab[1]
        # log(1 + exp(z)) - t*z, and its gradient (p - t) * [f, 1]
        loss = float(np.sum(np.logaddexp(0.0, z) - t * z))
        r = stable_sigmoid(z) - t
        return loss, np.array([r @ f, r.sum()])

    x0 = np.array([0.0, np.log((n_pos + 1.0) / (n_neg + 1.0))])
    res = minimize(
        loss_grad, x0, jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-15}
    )
    return CalibrationMap(method="sigmoid", a=float(res.x[0] / scale), b=float(res.x[1]))


def _fit_temperature(s: np.ndarray, y: np.ndarray) -> CalibrationMap:
    # p = sigmoid(beta * s) with beta = 1/T: the log loss is convex in beta; search log(beta).
    def loss(log_beta: float) -> float:
        z = np.exp(log_beta) * s
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    res = minimize_scalar(loss, bounds=(-10.0, 10.0), method="bounded", options={"xatol": 1e-10})
    return CalibrationMap(method="temperature", temperature=float(np.exp(-res.x)))


def _fit_isotonic(s: np.ndarray, y: np.ndarray) -> CalibrationMap:
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=True)
    iso.fit(s, y.astype(np.float64))
    return CalibrationMap(
        method="isotonic",
        x=[float(v) for v in iso.X_thresholds_],
        y=[float(v) for v in iso.y_thresholds_],
    )


_FITTERS = {"sigmoid": _fit_sigmoid, "temperature": _fit_temperature, "isotonic": _fit_isotonic}


def _inputs(scores: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    y_arr = as_binary_labels(y)
    s = as_scores(scores, y_arr.shape[0])
    if np.unique(y_arr).size < 2:
        msg = "calibration needs both classes among the labels; got only one"
        raise InputError(msg)
    return s, y_arr


def calibration_candidates(
    scores: Any,
    y: Any,
    *,
    groups: Any = None,
    n_splits: int = 5,
    random_state: int = 0,
) -> list[CalibrationCandidate]:
    """Cross-validated held-out log loss and Brier score of every fitted method.

    Each method is fitted on the training folds of the calibration rows and scored on the
    held-out fold; folds keep groups whole (:func:`~calibration.splits.group_folds`).

    Args:
        scores: Held-out decision scores, shape ``(n,)``.
        y: Binary labels, shape ``(n,)``.
        groups: Group label per row, or ``None`` (rows independent).
        n_splits: Number of folds.
        random_state: Seed of the folds.

    Returns:
        One :class:`CalibrationCandidate` per method, in :data:`METHODS` order.
    """
    s, y_arr = _inputs(scores, y)
    folds = group_folds(y_arr, groups, n_splits=n_splits, random_state=random_state)
    out = []
    for method in METHODS:
        probs = np.empty_like(s)
        for train, test in folds:
            probs[test] = _FITTERS[method](s[train], y_arr[train]).apply(s[test])
        brier = float(np.mean((probs - y_arr) ** 2))
        out.append(CalibrationCandidate(method, _log_loss(y_arr, probs), brier))
    return out


def fit_calibration_map(
    scores: Any,
    y: Any,
    method: Literal["sigmoid", "isotonic", "temperature", "auto"] = "auto",
    *,
    groups: Any = None,
    random_state: int = 0,
) -> CalibrationMap:
    """Fit a calibration map on held-out decision scores.

    Methods:
        - ``sigmoid``: Platt scaling, ``p = sigmoid(a * s + b)``, fitted with Platt's smoothed
          targets (as scikit-learn does), so it stays finite on separable scores.
        - ``temperature``: ``p = sigmoid(s / T)``, maximum likelihood over ``T`` (no offset).
        - ``isotonic``: scikit-learn ``IsotonicRegression(out_of_bounds="clip")`` knots.
        - ``auto``: the method with the lowest grouped 5-fold held-out log loss on these rows
          (:func:`calibration_candidates`), refitted on all of them; the losses are recorded in
          the map's ``held_out_log_loss``. When the rows are too few to cross-validate (a class
          in fewer than 2 groups), ``auto`` falls back to ``sigmoid`` and logs a warning.

    Args:
        scores: Decision scores of rows the probe never saw, shape ``(n,)``.
        y: Binary labels, shape ``(n,)``.
        method: One of the methods above.
        groups: Group label per row (only used by ``auto``).
        random_state: Seed of the ``auto`` folds.

    Returns:
        The fitted :class:`~detectors.calibration_map.CalibrationMap`.

    Raises:
        ConfigError: On an unknown method.
        InputError: On bad scores or labels, or labels of one class only.
    """
    if method not in (*METHODS, "auto"):
        msg = f"unknown calibration method {method!r}; valid: {[*METHODS, 'auto']}"
        raise ConfigError(msg)
    s, y_arr = _inputs(scores, y)
    if s.size and s.min() == s.max():
        # Constant scores carry no ranking: any slope is arbitrary (a temperature would be
        # fitted to noise and map every other score to 0 or 1). Predict the base rate.
        n_pos = float(y_arr.sum())
        base = float(np.log((n_pos + 1.0) / (y_arr.size - n_pos + 1.0)))
        logger.warning("calibration scores are constant; the map predicts the base rate")
        return CalibrationMap(method="sigmoid", a=0.0, b=base)
    if method != "auto":
        return _FITTERS[method](s, y_arr)
    try:
        candidates = calibration_candidates(s, y_arr, groups=groups, random_state=random_state)
    except InputError as err:
        logger.warning("auto calibration cannot cross-validate (%s); using sigmoid", err)
        return _fit_sigmoid(s, y_arr)
    best = min(candidates, key=lambda c: c.log_loss)  # first minimum: the simplest method
    chosen = _FITTERS[best.method](s, y_arr)
    losses = {c.method: c.log_loss for c in candidates}
    return chosen.model_copy(update={"held_out_log_loss": losses})
