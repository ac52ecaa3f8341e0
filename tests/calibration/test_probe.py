"""SparseProbe: the scikit-learn contract, a known-answer recovery test, and its options."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from probe_builders import PlantedData, make_planted
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from calibration.calibrators import fit_calibration_map
from calibration.metrics import expected_calibration_error
from calibration.probe import SparseProbe
from calibration.splits import group_train_test_split
from scope_guard.errors import ConfigError, InputError


@parametrize_with_checks([SparseProbe(Cs=4, cv=3), SparseProbe(penalty="l2", C=1.0)])
def test_sklearn_contract(estimator, check):
    check(estimator)


class KnownAnswer:
    """A probe fitted on planted data, its calibration rows and a fresh evaluation draw."""

    def __init__(self) -> None:
        data = make_planted(8000, seed=1)
        train, cal = group_train_test_split(data.y, data.groups, test_size=5 / 8, random_state=0)
        self.data = data
        self.cal = cal
        self.probe = SparseProbe(random_state=0).fit(
            data.X[train], data.y[train], groups=data.groups[train]
        )
        self.test: PlantedData = make_planted(5000, seed=2)


@pytest.fixture(scope="module")
def known() -> KnownAnswer:
    return KnownAnswer()


def test_recovers_planted_features(known: KnownAnswer):
    probe, planted = known.probe, known.data.planted
    assert set(planted) <= set(probe.selected_)
    weight = np.abs(probe.coef_[0] * probe.scale_)  # weights on the scaled features
    distractor = np.ones(weight.size, dtype=bool)
    distractor[planted] = False
    assert set(np.argsort(-weight)[: planted.size]) == set(planted)
    # the log-loss-optimal L1 probe keeps a few distractors, all with negligible weight
    assert np.count_nonzero(weight[distractor]) <= 0.2 * distractor.sum()
    assert weight[distractor].max() < 0.25 * weight[planted].min()
    assert np.all(np.sign(probe.coef_[0, planted]) == np.sign([4.0, -3.0, 3.0, 5.0, -4.0]))


def test_auroc_close_to_bayes_optimal(known: KnownAnswer):
    test = known.test
    bayes = roc_auc_score(test.y, test.logit)
    probe = roc_auc_score(test.y, known.probe.decision_function(test.X))
    assert bayes - probe <= 0.01


def test_calibrated_on_held_out_rows(known: KnownAnswer):
    cal_X, cal_y = known.data.X[known.cal], known.data.y[known.cal]
    cmap = fit_calibration_map(known.probe.decision_function(cal_X), cal_y, "sigmoid")
    test = known.test
    probs = cmap.apply(known.probe.decision_function(test.X))
    assert test.y.size == 5000
    assert expected_calibration_error(test.y, probs) <= 0.02


def test_coef_in_original_units_and_scale_invariance():
    data = make_planted(600, n_features=30, seed=3)
    X = data.X.toarray()
    probe = SparseProbe(C=0.5).fit(X, data.y)
    np.testing.assert_allclose(
        probe.decision_function(X), X @ probe.coef_[0] + probe.intercept_[0], rtol=1e-12
    )
    stretched = X * np.linspace(0.1, 10.0, X.shape[1])
    other = SparseProbe(C=0.5).fit(stretched, data.y)
    np.testing.assert_allclose(
        other.decision_function(stretched), probe.decision_function(X), atol=1e-8
    )


def test_sparse_and_dense_agree_and_fit_is_deterministic():
    data = make_planted(600, n_features=30, seed=4)
    dense = SparseProbe(Cs=5, cv=3).fit(data.X.toarray(), data.y, groups=data.groups)
    sparse = SparseProbe(Cs=5, cv=3).fit(sp.csr_matrix(data.X), data.y, groups=data.groups)
    again = SparseProbe(Cs=5, cv=3).fit(data.X, data.y, groups=data.groups)
    assert dense.C_ == sparse.C_
    np.testing.assert_allclose(dense.coef_, sparse.coef_, atol=1e-10)
    np.testing.assert_array_equal(sparse.coef_, again.coef_)
    np.testing.assert_array_equal(sparse.cv_scores_, again.cv_scores_)


def test_cv_records_grid_scores_and_chooses_the_minimum():
    data = make_planted(500, n_features=20, seed=5)
    probe = SparseProbe(penalty="l2", Cs=[0.01, 0.1, 1.0], cv=4).fit(
        data.X, data.y, groups=data.groups
    )
    assert probe.cv_scores_.shape == (3, 4)
    best = int(np.argmin(probe.cv_scores_.mean(axis=1)))
    assert probe.Cs_[best] == probe.C_
    assert probe.selected_.size == 20  # L2 keeps every feature
    fixed = SparseProbe(C=0.3).fit(data.X, data.y)
    assert fixed.C_ == 0.3
    assert fixed.Cs_ is None
    assert fixed.cv_scores_ is None


def test_string_labels_and_positive_class():
    data = make_planted(400, n_features=10, seed=6)
    labels = np.where(data.y == 1, "risky", "fine")
    probe = SparseProbe(C=1.0).fit(data.X, labels)
    assert list(probe.classes_) == ["fine", "risky"]
    proba = probe.predict_proba(data.X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(probe.predict(data.X)) <= {"fine", "risky"}


def test_group_cv_needs_two_groups_per_class():
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.r_[np.zeros(10), np.ones(10)]
    groups = np.r_[np.arange(10), np.full(10, 99)]  # every positive in one group
    with pytest.raises(InputError, match="at least 2 groups"):
        SparseProbe().fit(X, y, groups=groups)


@pytest.mark.parametrize(
    "params",
    [{"penalty": "elasticnet"}, {"C": -1.0}, {"Cs": 0}, {"Cs": [1.0, -2.0]}, {"cv": 1}],
)
def test_invalid_hyperparameters(params):
    data = make_planted(100, n_features=10, seed=7)
    with pytest.raises(ConfigError):
        SparseProbe(**params).fit(data.X, data.y)


def test_multiclass_is_refused():
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match="Only binary classification"):
        SparseProbe(C=1.0).fit(X, np.arange(30) % 3)


def test_c_search_with_groups_that_mix_labels():
    # Positives only in groups 6 (all) and 10 (one of six): a naive grouped split can leave a
    # C-search training fold without positives, which scikit-learn refuses with a ValueError.
    y = np.array([0] * 20 + [1] * 6 + [0] * 10 + [1])
    groups = np.repeat(np.arange(11), [7, 4, 3, 2, 3, 1, 6, 2, 2, 1, 6])
    X = np.random.default_rng(0).normal(size=(y.size, 4)) + y[:, None]
    for seed in range(5):
        with pytest.warns(UserWarning, match="2 folds"):
            probe = SparseProbe(Cs=3, random_state=seed).fit(X, y, groups=groups)
        assert probe.cv_scores_ is not None
        assert probe.cv_scores_.shape == (3, 2)
        assert np.all(np.isfinite(probe.cv_scores_))
    with pytest.raises(InputError, match="class 1 occurs in only 1 group"):
        SparseProbe(Cs=3).fit(X, y, groups=np.where(groups == 10, 6, groups))
    with pytest.raises(InputError, match="2 classes"):
        SparseProbe(C=1.0).fit(X, np.zeros(y.size, dtype=int))
