"""Group splits keep groups whole; cross-fitted scores come from models that never saw the group."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from calibration.splits import cross_fit_scores, group_folds, group_train_test_split
from scope_guard.errors import ConfigError, InputError

UNSEEN = -1.0


class GroupMemorizer:
    """Scores a row by the mean label of its group id (column 0) as seen in ``fit``.

    A group it never saw scores ``UNSEEN``: any leak of a group into training shows.
    """

    def fit(self, X, y, groups=None):
        self.means_ = {g: float(np.mean(y[X[:, 0] == g])) for g in np.unique(X[:, 0])}
        self.groups_seen_ = groups
        return self

    def decision_function(self, X):
        return np.array([self.means_.get(g, UNSEEN) for g in X[:, 0]])


def _grouped(n_groups=60, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 8, n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    y = (rng.random(groups.size) < np.repeat(rng.uniform(0.1, 0.9, n_groups), sizes)).astype(int)
    return y, groups


def test_train_test_split_keeps_groups_whole_and_stratifies():
    y, groups = _grouped(200)
    train, test = group_train_test_split(y, groups, test_size=0.25, random_state=1)
    assert not set(groups[train]) & set(groups[test])
    np.testing.assert_array_equal(np.sort(np.r_[train, test]), np.arange(y.size))
    assert test.size / y.size == pytest.approx(0.25, abs=0.02)
    assert y[test].mean() == pytest.approx(y.mean(), abs=0.02)


def test_train_test_split_is_seeded():
    y, groups = _grouped(100)
    a = group_train_test_split(y, groups, random_state=0)
    b = group_train_test_split(y, groups, random_state=0)
    c = group_train_test_split(y, groups, random_state=1)
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.test, c.test)


def test_train_test_split_without_groups_and_with_huge_groups():
    y = np.r_[np.zeros(80), np.ones(20)]
    _, test = group_train_test_split(y, None, test_size=0.2)
    assert (test.size, int(y[test].sum())) == (20, 4)
    # both groups larger than the test share: the smaller one is held out
    _, test = group_train_test_split([0, 1, 0, 1, 0], ["a", "a", "a", "b", "b"])
    assert list(test) == [3, 4]


def test_train_test_split_errors():
    with pytest.raises(ConfigError, match="test_size"):
        group_train_test_split([0, 1], [0, 1], test_size=1.0)
    with pytest.raises(InputError, match="2 groups"):
        group_train_test_split([0, 1], ["g", "g"])


def test_folds_partition_rows_and_keep_groups_whole():
    y, groups = _grouped(80)
    folds = group_folds(y, groups, n_splits=5, random_state=0)
    assert len(folds) == 5
    np.testing.assert_array_equal(
        np.sort(np.concatenate([f.test for f in folds])), np.arange(y.size)
    )
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert train.size + test.size == y.size
        assert set(y[train]) == {0, 1}


def test_folds_degrade_with_a_warning_and_fail_below_two():
    y = np.array([0, 1, 0, 1, 0, 1, 0, 0])
    groups = np.array([0, 0, 1, 1, 2, 2, 3, 3])  # positives live in 3 groups
    with pytest.warns(UserWarning, match="3 folds instead of 5"):
        folds = group_folds(y, groups, n_splits=5)
    assert len(folds) == 3
    with pytest.raises(InputError, match="at least 2 groups"):
        group_folds([0, 0, 1, 1], [0, 1, 2, 2])
    with pytest.raises(ConfigError):
        group_folds(y, groups, n_splits=1)


def test_cross_fit_scores_never_come_from_a_model_that_saw_the_group():
    y, groups = _grouped(80, seed=3)
    X = groups[:, None].astype(float)
    scores = cross_fit_scores(GroupMemorizer, X, y, groups, n_splits=5)
    assert np.all(scores == UNSEEN)
    # positive control: in-sample the memorizer does see every group
    assert np.all(GroupMemorizer().fit(X, y).decision_function(X) != UNSEEN)


def test_cross_fit_scores_pass_groups_to_fit():
    y, groups = _grouped(40, seed=4)
    X = groups[:, None].astype(float)
    fitted: list[GroupMemorizer] = []

    def make() -> GroupMemorizer:
        fitted.append(GroupMemorizer())
        return fitted[-1]

    cross_fit_scores(make, X, y, groups, n_splits=4)
    assert len(fitted) == 4
    for model in fitted:
        np.testing.assert_array_equal(np.unique(model.groups_seen_), sorted(model.means_))


def test_cross_fit_scores_with_sparse_input_and_probe():
    import scipy.sparse as sp
    from probe_builders import make_planted

    from calibration.probe import SparseProbe

    data = make_planted(400, n_features=20, seed=5)
    scores = cross_fit_scores(
        lambda: SparseProbe(C=1.0), sp.csr_matrix(data.X), data.y, data.groups, n_splits=3
    )
    assert scores.shape == (400,)
    assert np.all(np.isfinite(scores))


# 37 rows in 11 groups; the positives live only in group 6 (all positive) and group 10 (one of
# six). StratifiedGroupKFold alone puts both in one test fold for about half of all seeds.
MIXED_Y = np.array([0] * 20 + [1] * 6 + [0] * 10 + [1])
MIXED_GROUPS = np.repeat(np.arange(11), [7, 4, 3, 2, 3, 1, 6, 2, 2, 1, 6])


def _check_folds(y, groups, folds):
    np.testing.assert_array_equal(
        np.sort(np.concatenate([f.test for f in folds])), np.arange(y.size)
    )
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert set(y[train]) == set(y)


@pytest.mark.parametrize("seed", range(20))
def test_every_training_side_holds_both_classes_when_groups_mix_labels(seed):
    with pytest.warns(UserWarning, match="only 2 groups hold class 1: using 2 folds"):
        folds = group_folds(MIXED_Y, MIXED_GROUPS, n_splits=5, random_state=seed)
    assert len(folds) == 2
    _check_folds(MIXED_Y, MIXED_GROUPS, folds)
    # two folds: each side is the other's training side, so both sides hold both classes
    assert [set(MIXED_Y[f.test]) for f in folds] == [{0, 1}, {0, 1}]


def test_folds_are_repaired_when_no_seed_spreads_a_class():
    # Groups of distinct label mixes leave the shuffle nothing to reorder: every seed gives
    # the same split, {0, 1} | {2}, whose first training side holds no positive.
    y = np.array([1, 0, 1, 0, 0, 0])
    groups = np.array([0, 1, 1, 2, 2, 2])
    folds = group_folds(y, groups, n_splits=2, random_state=0)
    _check_folds(y, groups, folds)
    assert sorted(sorted(set(groups[f.test])) for f in folds) == [[0, 2], [1]]


def test_folds_are_deterministic_and_refuse_a_class_in_one_group():
    a = group_folds(MIXED_Y, MIXED_GROUPS, n_splits=2, random_state=3)
    b = group_folds(MIXED_Y, MIXED_GROUPS, n_splits=2, random_state=3)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa.test, fb.test)
    one_group = np.where(MIXED_GROUPS == 10, 6, MIXED_GROUPS)  # every positive in group 6
    with pytest.raises(InputError, match="class 1 occurs in only 1 group"):
        group_folds(MIXED_Y, one_group)


def test_random_layouts_always_give_two_class_training_sides():
    rng = np.random.default_rng(0)
    n_split = 0
    for trial in range(300):
        n_groups = int(rng.integers(3, 13))
        sizes = rng.integers(1, 8, n_groups)
        if trial % 2:  # distinct sizes: few ties for the shuffle to break
            sizes = rng.permutation(np.arange(1, n_groups + 1))
        groups = np.repeat(np.arange(n_groups), sizes)
        y = (rng.random(groups.size) < (rng.random(n_groups) ** 3)[groups]).astype(int)
        if y.min() == y.max():
            continue
        groups_per_class = min(np.unique(groups[y == c]).size for c in (0, 1))
        if groups_per_class < 2:
            with pytest.raises(InputError, match="occurs in only 1 group"):
                group_folds(y, groups, n_splits=5, random_state=trial)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            folds = group_folds(y, groups, n_splits=5, random_state=trial)
        _check_folds(y, groups, folds)
        assert len(folds) == min(5, groups_per_class)
        n_split += 1
    assert n_split > 150


def test_cross_fit_scores_refuse_a_single_class():
    y = np.zeros(12, dtype=int)
    groups = np.arange(12) // 2
    with pytest.raises(InputError, match="at least 2 classes"):
        cross_fit_scores(GroupMemorizer, groups[:, None].astype(float), y, groups, n_splits=3)
