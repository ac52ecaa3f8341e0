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


def _labels(y: Any) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct labels of ``y`` and each row's index into them."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        msg = f"y must be one-dimensional, got shape {arr.shape}"
        raise InputError(msg)
    classes, codes = np.unique(arr, return_inverse=True)
    return classes, codes.ravel()


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
    classes, codes = _labels(y)
    n_classes = classes.size
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


_SEEDS_PER_FOLD_COUNT = 10
"""Seeds :func:`group_folds` tries at one fold count before it repairs a split."""


def _assign_groups(codes: np.ndarray, g: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold of each group, ``(n_groups,)``, by scikit-learn's shuffled StratifiedGroupKFold."""
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    fold_of = np.empty(int(g.max()) + 1, dtype=np.int64)
    for i, (_, test) in enumerate(splitter.split(np.zeros((codes.shape[0], 1)), codes, g)):
        fold_of[g[test]] = i
    return fold_of


def _spread(fold_of: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Number of folds holding each class, ``(n_classes,)``; ``present`` is (group, class)."""
    return np.array([np.unique(fold_of[col]).size for col in present.T])


def _repair(fold_of: np.ndarray, present: np.ndarray, sizes: np.ndarray) -> np.ndarray | None:
    """Move groups until no class has all its groups in one fold, or ``None`` if stuck.

    A class confined to one fold is missing from that fold's training side. Each step moves
    the smallest group of such a class, out of that fold, to the smallest fold that lowers the
    number of confined classes without emptying a fold; the count falls at every step, so this
    ends. With two classes some move always helps (each class lives in at least 2 groups).
    """
    fold_of = fold_of.copy()
    folds = np.unique(fold_of)
    confined = int((_spread(fold_of, present) < 2).sum())
    while confined:
        fold_rows = np.array([sizes[fold_of == f].sum() for f in folds])
        stuck_classes = np.flatnonzero(_spread(fold_of, present) < 2)
        candidates = np.flatnonzero(present[:, stuck_classes].any(axis=1))
        for grp in candidates[np.argsort(sizes[candidates], kind="stable")]:
            if (fold_of == fold_of[grp]).sum() < 2:
                continue
            for target in folds[np.argsort(fold_rows, kind="stable")]:
                trial = fold_of.copy()
                trial[grp] = target
                now = int((_spread(trial, present) < 2).sum())
                if now < confined:
                    fold_of, confined = trial, now
                    break
            else:
                continue
            break
        else:
            return None
    return fold_of


def group_folds(y: Any, groups: Any, n_splits: int = 5, random_state: int = 0) -> list[Split]:
    """Stratified group k-fold splits in which every training side holds every class.

    Folds come from scikit-learn's shuffled ``StratifiedGroupKFold``, whose greedy assignment
    does not promise that: when groups mix labels, all the groups holding the rarest class can
    land in one test fold, whose training side then lacks the class. So each split is checked.
    Up to ten seeds are tried (``random_state``, ``random_state + 1``, ...); the first split
    whose training and test sides all hold every class is taken, else the first whose training
    sides do, else the first split is repaired by moving groups between folds. Only if that
    fails (possible with more than two classes) is one fold fewer tried. The result is
    deterministic given ``random_state``.

    The fold count starts at ``n_splits``, or at the number of groups holding the rarest class
    when that is smaller. A ``UserWarning`` says when fewer than ``n_splits`` folds are used.

    Args:
        y: Class label per row, shape ``(n,)``.
        groups: Group label per row, shape ``(n,)``; ``None`` treats every row as its own group.
        n_splits: Requested number of folds, at least 2.
        random_state: Seed for the shuffling of groups.

    Returns:
        One :class:`Split` per fold; the test sides partition the rows, and every training side
        holds every class.

    Raises:
        ConfigError: If ``n_splits < 2``.
        InputError: If a class lives in a single group, or (more than two classes) no split
            gives every training side every class.
    """
    if n_splits < 2:
        msg = f"n_splits must be at least 2, got {n_splits}"
        raise ConfigError(msg)
    classes, codes = _labels(y)
    g = as_group_codes(groups, codes.shape[0])
    if classes.size == 0:
        msg = "cannot split an empty dataset"
        raise InputError(msg)
    present = np.zeros((int(g.max()) + 1, classes.size), dtype=bool)
    present[g, codes] = True
    groups_per_class = present.sum(axis=0)
    rarest = int(np.argmin(groups_per_class))
    possible = int(groups_per_class[rarest])
    label = classes.tolist()[rarest]
    if possible < 2:
        msg = (
            f"class {label!r} occurs in only {possible} group; group cross-validation needs "
            "every class in at least 2 groups"
        )
        raise InputError(msg)

    start = min(n_splits, possible)
    for k in range(start, 1, -1):
        first: np.ndarray | None = None
        chosen: np.ndarray | None = None
        for attempt in range(_SEEDS_PER_FOLD_COUNT):
            fold_of = _assign_groups(codes, g, k, (random_state + attempt) % 2**32)
            spread = _spread(fold_of, present)
            if spread.min() == np.unique(fold_of).size:  # every side holds every class
                chosen = fold_of
                break
            if chosen is None and spread.min() >= 2:  # every training side does
                chosen = fold_of
            if first is None:
                first = fold_of
        if chosen is None and first is not None:
            chosen = _repair(first, present, np.bincount(g))
        if chosen is None:
            continue
        row_fold = chosen[g]
        splits = [
            Split(np.flatnonzero(row_fold != f), np.flatnonzero(row_fold == f))
            for f in np.unique(chosen)
        ]
        if len(splits) < n_splits:
            why = (
                f"only {possible} groups hold class {label!r}"
                if len(splits) == start
                else "no split into more folds left every class in every training side"
            )
            warnings.warn(
                f"{why}: using {len(splits)} folds instead of {n_splits}",
                UserWarning,
                stacklevel=2,
            )
        return splits
    msg = (
        "no grouped split leaves every class in every training fold; groups holding each "
        f"class: {dict(zip(classes.tolist(), groups_per_class.tolist(), strict=True))}"
    )
    raise InputError(msg)


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

    Raises:
        InputError: If ``X`` and ``y`` differ in length, ``y`` holds one class, or the groups
            cannot give every training fold every class (see :func:`group_folds`).
    """
    y_arr = np.asarray(y)
    n = y_arr.shape[0]
    n_x = X.shape[0] if hasattr(X, "shape") else len(X)
    if n_x != n:
        msg = f"X has {n_x} rows but y has {n}"
        raise InputError(msg)
    labels = np.unique(y_arr)
    if labels.size < 2:
        msg = f"cross-fitting needs at least 2 classes in y; got only {labels.tolist()}"
        raise InputError(msg)
    g = as_group_codes(groups, n)
    out = np.full(n, np.nan)
    # Every training side holds every class (group_folds raises InputError otherwise), so no
    # fold hands a one-class training set to the estimator.
    for train, test in group_folds(y_arr, g, n_splits=n_splits, random_state=random_state):
        est = make_estimator()
        kwargs = {"groups": g[train]} if "groups" in inspect.signature(est.fit).parameters else {}
        est.fit(take_rows(X, train), y_arr[train], **kwargs)
        out[test] = _score(est, take_rows(X, test))
    return out
