"""The probe: a sparse logistic regression over pooled SAE codes (or any features).

L1 selects a few latents that can be named and inspected; L2 is the dense baseline. The
regularization strength is chosen by group-aware cross-validation, and the coefficients are
reported in the original feature units, so a deployed detector needs only ``coef_`` and
``intercept_`` (no scaler, no scikit-learn).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from calibration.splits import group_folds
from scope_guard.errors import ConfigError, InputError

__all__ = ["SparseProbe"]


class SparseProbe(ClassifierMixin, BaseEstimator):
    """Binary logistic probe with L1 or L2 penalty and group-aware choice of ``C``.

    Solvers: ``liblinear`` for L1 (exact coordinate descent on sparse CSR input; its intercept is
    lightly penalized, which ``intercept_scaling=10`` makes negligible), ``lbfgs`` for L2.

    Args:
        penalty: ``"l1"`` (sparse, selects features) or ``"l2"``.
        C: Inverse regularization strength; ``None`` chooses it from ``Cs`` by cross-validation.
        Cs: Grid of ``C`` values, or a count of values log-spaced over ``[1e-4, 1e4]``.
        cv: Number of folds when choosing ``C`` (fewer if a class occupies fewer groups).
        class_weight: ``"balanced"``, a ``{label: weight}`` dict, or ``None``. ``"balanced"`` is
            resolved once on the whole training set, so every fold uses the same weights.
        scale: Divide each feature by its largest absolute training value (keeps sparsity).
            A feature whose maximum is one extreme spike is shrunk hard by the L1 penalty;
            clip heavy-tailed inputs first if that matters (a quantile scale was tried and
            made L1 selection much less sparse on planted-feature data).
        max_iter: Solver iteration limit.
        tol: Solver tolerance.
        random_state: Seed of the folds and of liblinear; ``None`` means 0, so fitting is
            deterministic by default.

    Attributes:
        classes_: The two class labels, sorted; ``classes_[1]`` is the positive class.
        coef_: ``(1, n_features)`` weights in the original feature units.
        intercept_: ``(1,)`` intercept.
        C_: The ``C`` used for the final fit.
        Cs_: The grid searched, or ``None`` when ``C`` was given.
        cv_scores_: ``(len(Cs_), n_folds)`` held-out log loss (class-weighted like the fit),
            or ``None`` when ``C`` was given. ``C_`` minimizes the mean over folds.
        selected_: Indices of the non-zero coefficients, ascending.
        scale_: ``(n_features,)`` divisor applied before fitting (ones when ``scale=False``).
        n_features_in_: Number of features seen in ``fit``.
    """

    def __init__(
        self,
        *,
        penalty: Literal["l1", "l2"] = "l1",
        C: float | None = None,
        Cs: int | Sequence[float] = 10,
        cv: int = 5,
        class_weight: dict[Any, float] | str | None = "balanced",
        scale: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-4,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.penalty = penalty
        self.C = C
        self.Cs = Cs
        self.cv = cv
        self.class_weight = class_weight
        self.scale = scale
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_class = False
        return tags

    def _grid(self) -> np.ndarray:
        if isinstance(self.Cs, numbers.Integral):
            if self.Cs < 1:
                msg = f"Cs must be a positive count or a list of C values, got {self.Cs!r}"
                raise ConfigError(msg)
            return np.logspace(-4, 4, int(self.Cs))
        grid = np.asarray(self.Cs, dtype=np.float64).ravel()
        if grid.size == 0 or not np.all(np.isfinite(grid) & (grid > 0)):
            msg = f"Cs must hold positive finite values, got {self.Cs!r}"
            raise ConfigError(msg)
        return np.sort(grid)

    def _check_params(self) -> None:
        if self.penalty not in ("l1", "l2"):
            msg = f"penalty must be 'l1' or 'l2', got {self.penalty!r}"
            raise ConfigError(msg)
        if self.C is not None and not (np.isfinite(self.C) and self.C > 0):
            msg = f"C must be a positive finite float or None, got {self.C!r}"
            raise ConfigError(msg)
        if not isinstance(self.cv, numbers.Integral) or self.cv < 2:
            msg = f"cv must be an integer >= 2, got {self.cv!r}"
            raise ConfigError(msg)

    def _model(self, C: float, class_weight: Any, seed: int) -> LogisticRegression:
        l1 = self.penalty == "l1"
        return LogisticRegression(
            C=C,
            l1_ratio=1.0 if l1 else 0.0,
            solver="liblinear" if l1 else "lbfgs",
            intercept_scaling=10.0 if l1 else 1.0,
            class_weight=class_weight,
            max_iter=self.max_iter,
            tol=self.tol,
            random_state=seed,
        )

    def fit(self, X: Any, y: Any, groups: Any = None) -> SparseProbe:
        """Fit the probe, choosing ``C`` by group-aware cross-validation when ``C`` is None.

        Args:
            X: Features, ``(n_samples, n_features)``, dense or scipy sparse (CSR preferred).
            y: Binary labels, ``(n_samples,)``.
            groups: Group label per row, ``(n_samples,)``; folds keep groups whole
                (``StratifiedGroupKFold``). ``None``: rows are independent (stratified k-fold).

        Returns:
            self.

        Raises:
            ConfigError: On an invalid hyperparameter.
            InputError: If ``y`` does not hold exactly two classes (a ``ValueError``, as
                scikit-learn's estimator checks expect).
        """
        self._check_params()
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64)
        check_classification_targets(y)
        classes = np.unique(y)
        if classes.size > 2:
            msg = (
                "Only binary classification is supported. SparseProbe got "
                f"{classes.size} classes: {classes[:5].tolist()}"
            )
            raise InputError(msg)
        if classes.size < 2:
            msg = f"SparseProbe needs samples of 2 classes; got 1 class: {classes.tolist()}"
            raise InputError(msg)
        self.classes_ = classes
        seed = (
            0
            if self.random_state is None
            else int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        )
        if self.class_weight == "balanced":
            weights = compute_class_weight("balanced", classes=classes, y=y)
            class_weight: Any = {c: float(w) for c, w in zip(classes, weights, strict=True)}
        else:
            class_weight = self.class_weight

        if self.scale:
            col_max = abs(X).max(axis=0)
            col_max = col_max.toarray().ravel() if sp.issparse(col_max) else np.asarray(col_max)
            self.scale_ = np.where(col_max > 0, col_max, 1.0).astype(np.float64).ravel()
        else:
            self.scale_ = np.ones(X.shape[1])
        Xs = (X @ sp.diags(1.0 / self.scale_)).tocsr() if sp.issparse(X) else X / self.scale_

        if self.C is None:
            self.Cs_: np.ndarray | None = self._grid()
            self.cv_scores_: np.ndarray | None = self._cross_validate(
                Xs, y, groups, class_weight, seed
            )
            self.C_ = float(self.Cs_[int(np.argmin(self.cv_scores_.mean(axis=1)))])
        else:
            self.Cs_, self.cv_scores_, self.C_ = None, None, float(self.C)

        model = self._model(self.C_, class_weight, seed).fit(Xs, y)
        self.coef_ = model.coef_ / self.scale_[np.newaxis, :]
        self.intercept_ = np.asarray(model.intercept_, dtype=np.float64).copy()
        self.selected_ = np.flatnonzero(self.coef_[0])
        self.n_iter_ = model.n_iter_
        return self

    def _cross_validate(
        self, Xs: Any, y: np.ndarray, groups: Any, class_weight: Any, seed: int
    ) -> np.ndarray:
        # Every training side holds both classes, or group_folds raises InputError.
        folds = group_folds(y, groups, n_splits=self.cv, random_state=seed)
        grid = self.Cs_ if self.Cs_ is not None else self._grid()
        losses = np.empty((grid.size, len(folds)))
        unconverged = np.zeros(grid.size, dtype=int)
        for j, (train, test) in enumerate(folds):
            y_test = y[test]
            weight = (
                None
                if class_weight is None
                else np.array([class_weight.get(label, 1.0) for label in y_test])
            )
            for i, C in enumerate(grid):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    model = self._model(float(C), class_weight, seed).fit(Xs[train], y[train])
                unconverged[i] += sum(issubclass(w.category, ConvergenceWarning) for w in caught)
                proba = model.predict_proba(Xs[test])
                losses[i, j] = log_loss(y_test, proba, sample_weight=weight, labels=self.classes_)
        best = int(np.argmin(losses.mean(axis=1)))
        if unconverged[best]:
            warnings.warn(
                f"the solver did not converge in {unconverged[best]} CV fits at the chosen "
                f"C={grid[best]:.3g}; consider raising max_iter",
                ConvergenceWarning,
                stacklevel=3,
            )
        return losses

    def decision_function(self, X: Any) -> np.ndarray:
        """Logit of the positive class, ``X @ coef_[0] + intercept_[0]``.

        Args:
            X: Features, ``(n_samples, n_features)``, dense or scipy sparse.

        Returns:
            ``(n_samples,)`` decision scores.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse="csr", dtype=np.float64)
        return np.asarray(X @ self.coef_[0]).ravel() + self.intercept_[0]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, ``(n_samples, 2)``, columns ordered as ``classes_``."""
        p1 = expit(self.decision_function(X))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels, ``(n_samples,)``: ``classes_[1]`` where the score is > 0."""
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]
