"""Group-aware splits: rows sharing a group (a source document, a question) stay on one side.

Probe fitting and calibration must never see the same rows, and labeled examples drawn from one
source document are not independent: a split that puts one of them on each side leaks. Every split
here keeps each group whole and stratifies by label as far as the groups allow.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.model_selection import StratifiedGroupKFold

from calibration._validation import as_group_codes
from scope_guard.errors import ConfigError, InputError

__all__ = ["Split", "cross_fit_scores", "group_folds", "group_train_test_split", "take_rows"]


class Split(NamedTuple):
    """Row indices of one split; no group has rows in both."""

    train: np.ndarray
    """Sorted indices of the training rows, int64."""
    test: np.ndarray
    """Sorted indices of the held-out rows, int64."""


def _labels(y: Any) -> tuple[np.ndarray, int]:
    arr = np.asarray(y)
    if arr.ndim != 1:
        msg = f"y must be one-dimensional, got shape {arr.shape}"
        raise InputError(msg)
    _, codes = np.unique(arr, return_inverse=True)
    return codes.ravel(), int(codes.max()) + 1 if codes.size else 0


def group_train_test_split(
    y: Any, groups: Any, *, test_size: float = 0.25, random_state: int = 0
) -> Split:
    """One train/test split that keeps groups whole and balances labels across the sides.

    Groups are visited largest first (ties in a seeded random order) and each goes to the test
    side when that brings the test side's per-class counts closer to ``test_size`` times the
    totals, so the test side gets about ``test_size`` of the rows of every class.

    Args:
        y: Class label per row, shape ``(n,)``.
        groups: Group label per row, shape ``(n,)``; ``None`` treats every row as its own group.
        test_size: Fraction of rows to hold out, in ``(0, 1)``.
        random_state: Seed for the order of equal-sized groups.

    Returns:
        The :class:`Split`.

    Raises:
        ConfigError: If ``test_size`` is not in ``(0, 1)``.
        InputError: If there are fewer than two groups.
    """
    if not 0.0 < test_size < 1.0:
        msg = f"test_size must be in (0, 1), got {test_size!r}"
        raise ConfigError(msg)
    codes, n_classes = _labels(y)
    g = as_group_codes(groups, codes.shape[0])
    n_groups = int(g.max()) + 1 if g.size else 0
    if n_groups < 2:
        msg = f"a group split needs at least 2 groups, got {n_groups}"
        raise InputError(msg)
    counts = np.zeros((n_groups, n_classes))
    np.add.at(counts, (g, codes), 1.0)
    totals = counts.sum(axis=0)
    target = test_size * totals
    norm = np.maximum(totals, 1.0)

    rng = np.random.default_rng(random_state)
    shuffled = rng.permutation(n_groups)
    order = shuffled[np.argsort(-counts[shuffled].sum(axis=1), kind="stable")]
    in_test = np.zeros(n_groups, dtype=bool)
    test_counts = np.zeros(n_classes)
    for grp in order:
        now = np.abs(test_counts - target) / norm
        after = np.abs(test_counts + counts[grp] - target) / norm
        if after.sum() < now.sum():
            in_test[grp] = True
            test_counts += counts[grp]
    if not in_test.any():  # every group is larger than the test share: hold out the smallest
        in_test[order[-1]] = True
    test_rows = in_test[g]
    return Split(np.flatnonzero(~test_rows), np.flatnonzero(test_rows))


def group_folds(y: Any, groups: Any, n_splits: int = 5, random_state: int = 0) -> list[Split]:
    """Stratified group k-fold splits (scikit-learn's ``StratifiedGroupKFold``, shuffled).

    When some class occurs in fewer than ``n_splits`` groups, the number of folds drops to that
    count (with a ``UserWarning``), so that every class can appear in every training side.

    Args:
        y: Class label per row, shape ``(n,)``.
        groups: Group label per row, shape ``(n,)``; ``None`` treats every row as its own group.
        n_splits: Requested number of folds, at least 2.
        random_state: Seed for the shuffling of groups.

    Returns:
        One :class:`Split` per fold; the test sides partition the rows.

    Raises:
        ConfigError: If ``n_splits < 2``.
        InputError: If fewer than 2 folds are possible (a class lives in fewer than 2 groups).
    """
    if n_splits < 2:
        msg = f"n_splits must be at least 2, got {n_splits}"
        raise ConfigError(msg)
    codes, n_classes = _labels(y)
    g = as_group_codes(groups, codes.shape[0])
    if n_classes == 0:
        msg = "cannot split an empty dataset"
        raise InputError(msg)
    groups_per_class = [np.unique(g[codes == k]).size for k in range(n_classes)]
    possible = min(groups_per_class)
    if possible < 2:
        msg = (
            f"group cross-validation needs every class in at least 2 groups; "
            f"groups per class: {groups_per_class}"
        )
        raise InputError(msg)
    k = min(n_splits, possible)
    if k < n_splits:
        warnings.warn(
            f"only {possible} groups hold the rarest class: using {k} folds instead of {n_splits}",
            UserWarning,
            stacklevel=2,
        )
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=random_state)
    folds = splitter.split(np.zeros((codes.shape[0], 1)), codes, g)
    return [Split(np.sort(tr), np.sort(te)) for tr, te in folds if te.size]


def take_rows(X: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of a dense array or a scipy sparse matrix (returned as CSR)."""
    if sp.issparse(X):
        return sp.csr_matrix(X)[idx]
    return np.asarray(X)[idx]


def _score(estimator: Any, X: Any) -> np.ndarray:
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X), dtype=np.float64).ravel()
    return np.asarray(estimator.predict_proba(X), dtype=np.float64)[:, 1]


def cross_fit_scores(
    make_estimator: Callable[[], Any],
    X: Any,
    y: Any,
    groups: Any,
    n_splits: int = 5,
    random_state: int = 0,
) -> np.ndarray:
    """Out-of-fold decision scores: each row is scored by a model that never saw its group.

    Args:
        make_estimator: Returns a fresh unfitted estimator; its ``fit`` gets ``groups=`` too when
            it accepts that argument (so a probe can run its own group-aware CV inside).
        X: Features, shape ``(n, n_features)``, dense or scipy sparse.
        y: Labels, shape ``(n,)``.
        groups: Group label per row, shape ``(n,)``, or ``None`` (rows independent).
        n_splits: Number of folds (see :func:`group_folds`).
        random_state: Seed of the fold assignment.

    Returns:
        ``(n,)`` float64 scores: ``decision_function`` when the estimator has one, else the
        positive-class probability.
    """
    y_arr = np.asarray(y)
    n = y_arr.shape[0]
    n_x = X.shape[0] if hasattr(X, "shape") else len(X)
    if n_x != n:
        msg = f"X has {n_x} rows but y has {n}"
        raise InputError(msg)
    g = as_group_codes(groups, n)
    out = np.full(n, np.nan)
    for train, test in group_folds(y_arr, g, n_splits=n_splits, random_state=random_state):
        est = make_estimator()
        kwargs = {"groups": g[train]} if "groups" in inspect.signature(est.fit).parameters else {}
        est.fit(take_rows(X, train), y_arr[train], **kwargs)
        out[test] = _score(est, take_rows(X, test))
    return out
