"""Grouped, nested cross-validation of linear probes over several candidate feature sets.

Per outer fold the recipe is :func:`calibration.pipeline.calibrate`'s: choose the regularization
by grouped CV on the training groups, take the out-of-fold scores there, fit the calibration map
(:func:`~calibration.calibrators.fit_calibration_map`) and the F1 threshold on them, fit on all
training groups, and score the held-out groups once. Run for several candidates (a site and a
pooling each) on the same folds, it also *selects* one per outer fold: the candidate whose
out-of-fold AUROC on that fold's training groups is highest. The test groups never take part in
the choice, so the selected figure is an honest one.

The probe here is a ridge classifier (least squares on standardized features, labels +-1,
classes weighted to balance), solved in closed form from one eigendecomposition per training
side so that the whole grid of penalties costs one solve: on two shared cores the project's
logistic :class:`~calibration.probe.SparseProbe` takes about 40 s per candidate and fold, this
about 2 s, and a sweep has about 40 candidate-folds per set. The final detector of each set is
then fitted by ``calibrate`` itself (see :mod:`benchmarks.detect_behaviours`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from sklearn.metrics import roc_auc_score

from calibration.calibrators import fit_calibration_map
from calibration.metrics import Metrics, compute_metrics
from calibration.splits import group_folds
from calibration.thresholds import choose_threshold

__all__ = [
    "GRID",
    "CandidateResult",
    "NestedResult",
    "Selection",
    "metrics_of",
    "nested_cv",
    "select",
]

GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
"""Ridge penalties searched, as multiples of the mean eigenvalue of the training Gram matrix."""


@dataclass
class CandidateResult:
    """One candidate's held-out scores over all outer folds, and its training-fold AUROCs."""

    probs: np.ndarray
    thresholds: np.ndarray
    inner_auroc: list[float] = field(default_factory=list)
    penalty: list[float] = field(default_factory=list)


@dataclass
class NestedResult:
    """Per candidate its held-out results; the candidate each outer fold selected.

    Attributes:
        candidates: Name -> held-out results over all outer folds.
        selected: Per outer fold, the candidate with the best training-side AUROC.
        selected_probs: Held-out probabilities of the selected candidates.
        selected_thresholds: Their thresholds.
        test_folds: The held-out rows of each outer fold, in order.
    """

    candidates: dict[str, CandidateResult]
    selected: list[str]
    selected_probs: np.ndarray
    selected_thresholds: np.ndarray
    test_folds: list[np.ndarray] = field(default_factory=list)


class Selection(NamedTuple):
    """One candidate per outer fold, chosen among a family; its held-out scores."""

    per_fold: list[str]
    probs: np.ndarray
    thresholds: np.ndarray


class _Ridge:
    """Ridge solutions for every penalty of :data:`GRID` from one eigendecomposition.

    Primal (``d <= n``) or dual (``d > n``, e.g. pooled SAE codes), whichever is smaller.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        std = X.std(axis=0)
        # Constant columns standardize to zero and add nothing; leaving them out is the same
        # solution for less work (most of the SAE's pooled latents are zero on a small set).
        self.cols = np.flatnonzero(std > 0)
        X = X[:, self.cols]
        self.mean, self.std = X.mean(axis=0), std[self.cols]
        Z = (X - self.mean) / self.std
        pos = y == 1
        # Balanced classes: each class carries half the weight, as class_weight="balanced".
        w = np.where(pos, 0.5 / max(pos.mean(), 1e-12), 0.5 / max((~pos).mean(), 1e-12))
        t = np.where(pos, 1.0, -1.0)
        sw = np.sqrt(w)
        self.Zw, self.tw, self.dual = Z * sw[:, None], t * sw, Z.shape[1] > Z.shape[0]
        gram = self.Zw @ self.Zw.T if self.dual else self.Zw.T @ self.Zw
        self.evals, self.evecs = np.linalg.eigh(gram)
        self.evals = np.clip(self.evals, 0.0, None)
        # No varying column: every score is 0 (a defined, uninformative probe).
        self.scale = max(float(self.evals.mean()), 1e-12) if self.evals.size else 1.0
        rhs = self.tw if self.dual else self.Zw.T @ self.tw
        self.proj = self.evecs.T @ rhs

    def scores(self, X: np.ndarray) -> np.ndarray:
        """``(n_rows, len(GRID))`` decision scores of ``X``, one column per penalty."""
        Z = (X[:, self.cols] - self.mean) / self.std
        left = (Z @ self.Zw.T) @ self.evecs if self.dual else Z @ self.evecs
        lam = np.asarray(GRID) * self.scale
        return left @ (self.proj[:, None] / (self.evals[:, None] + lam[None, :]))


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else float("nan")


def _fold(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    seed: int,
    n_inner: int,
) -> tuple[np.ndarray, float, float, float]:
    """Held-out probabilities, threshold, training-fold OOF AUROC and penalty of one fold."""
    X_tr, y_tr, g_tr = X[train], y[train], groups[train]
    oof = np.full((len(train), len(GRID)), np.nan)
    for inner_train, inner_test in group_folds(y_tr, g_tr, n_splits=n_inner, random_state=seed):
        oof[inner_test] = _Ridge(X_tr[inner_train], y_tr[inner_train]).scores(X_tr[inner_test])
    aucs = [_auroc(y_tr, oof[:, j]) for j in range(len(GRID))]
    best = int(np.nanargmax(aucs))
    cmap = fit_calibration_map(oof[:, best], y_tr, "auto", groups=g_tr, random_state=seed)
    threshold = choose_threshold(cmap.apply(oof[:, best]), y_tr, "f1").threshold
    probs = cmap.apply(_Ridge(X_tr, y_tr).scores(X[test])[:, best])
    return probs, threshold, aucs[best], GRID[best]


def nested_cv(
    candidates: Mapping[str, np.ndarray],
    y: np.ndarray,
    groups: np.ndarray,
    *,
    n_outer: int = 5,
    n_inner: int = 5,
    seed: int = 0,
    progress: Any = None,
) -> NestedResult:
    """Every candidate through the same outer grouped folds; one selected per fold.

    Args:
        candidates: Name -> ``(n, d)`` features, rows aligned with ``y``.
        y: Binary labels.
        groups: Group of each row; no group is on both sides of any split.
        n_outer: Outer folds (every group is held out once).
        n_inner: Folds of the penalty search and the out-of-fold scores inside a training side.
        seed: Seed of every split.
        progress: A tqdm bar to advance once per candidate-fold, or ``None``.
    """
    folds = group_folds(y, groups, n_splits=n_outer, random_state=seed)
    n = len(y)
    results = {name: CandidateResult(np.full(n, np.nan), np.full(n, np.nan)) for name in candidates}
    for train, test in folds:
        for name, X in candidates.items():
            probs, thr, auc, penalty = _fold(X, y, groups, train, test, seed, n_inner)
            res = results[name]
            res.probs[test], res.thresholds[test] = probs, thr
            res.inner_auroc.append(auc)
            res.penalty.append(penalty)
            if progress is not None:
                progress.update(1)
    tests = [test for _, test in folds]
    chosen = _select(results, tests, list(candidates))
    return NestedResult(results, chosen.per_fold, chosen.probs, chosen.thresholds, tests)


def select(result: NestedResult, names: Sequence[str]) -> Selection:
    """The nested selection restricted to a family of candidates, without refitting anything.

    Per outer fold the family's candidate with the best out-of-fold AUROC on that fold's
    training groups (ties: the first in ``names``); its held-out scores on that fold's test
    groups. The test groups take no part in the choice, as in :func:`nested_cv`.

    Raises:
        KeyError: No names, or a name that is not a candidate of ``result``.
    """
    missing = [name for name in names if name not in result.candidates]
    if missing or not names:
        msg = f"not candidates of this result: {missing or 'none given'}"
        raise KeyError(msg)
    return _select(result.candidates, result.test_folds, list(names))


def _select(
    results: Mapping[str, CandidateResult], tests: Sequence[np.ndarray], names: list[str]
) -> Selection:
    n = len(next(iter(results.values())).probs)
    probs, thresholds = np.full(n, np.nan), np.full(n, np.nan)
    per_fold = []
    for k, test in enumerate(tests):
        best, best_auc = names[0], -np.inf
        for name in names:
            if results[name].inner_auroc[k] > best_auc:  # NaN never wins
                best, best_auc = name, results[name].inner_auroc[k]
        per_fold.append(best)
        probs[test] = results[best].probs[test]
        thresholds[test] = results[best].thresholds[test]
    return Selection(per_fold, probs, thresholds)


def metrics_of(
    y: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray,
    groups: np.ndarray,
    n_bootstrap: int,
    seed: int,
) -> Metrics:
    """The project's metrics (with group-bootstrap intervals) of held-out probabilities."""
    return compute_metrics(
        y, probs, thresholds, groups=groups, n_bootstrap=n_bootstrap, random_state=seed
    )
