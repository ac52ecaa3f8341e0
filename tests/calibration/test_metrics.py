"""Metrics agree with scikit-learn; bootstrap intervals behave; slices never crash."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from calibration.metrics import (
    Metrics,
    compute_metrics,
    expected_calibration_error,
    metrics_by,
    reliability_curve,
)
from calibration.thresholds import threshold_for_fpr
from scope_guard.errors import InputError

FIELDS = ("auroc", "auprc", "precision", "recall", "f1", "ece", "brier")


def _data(n=2000, seed=0, decimals=None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = 1.0 / (1.0 + np.exp(-rng.normal(1.5 * y - 0.75, 1.2)))
    return y, (np.round(p, decimals) if decimals else p)


@pytest.mark.parametrize("decimals", [None, 2])  # 2 decimals: many ties
def test_point_values_equal_sklearn(decimals):
    y, p = _data(decimals=decimals)
    m = compute_metrics(y, p, 0.5, n_bootstrap=0)
    pred = p >= 0.5
    assert m.auroc.value == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m.auprc.value == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m.brier.value == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert m.precision.value == pytest.approx(precision_score(y, pred), abs=1e-12)
    assert m.recall.value == pytest.approx(recall_score(y, pred), abs=1e-12)
    assert m.f1.value == pytest.approx(f1_score(y, pred), abs=1e-12)
    assert (m.n, m.n_positive) == (y.size, int(y.sum()))


def test_zero_division_matches_sklearn():
    y, p = _data()
    m = compute_metrics(y, p, 1.01, n_bootstrap=0)  # nothing flagged
    assert m.precision.value == precision_score(y, p >= 1.01, zero_division=0) == 0.0
    assert m.f1.value == 0.0


def test_ece_and_reliability_curve_match_calibration_curve():
    y, p = _data()
    frac, mean = calibration_curve(y, p, n_bins=15, strategy="uniform")
    curve = reliability_curve(y, p, n_bins=15)
    np.testing.assert_allclose(curve.fraction_positive, frac)
    np.testing.assert_allclose(curve.mean_predicted, mean)
    ece = np.sum(curve.counts * np.abs(frac - mean)) / y.size
    assert expected_calibration_error(y, p) == pytest.approx(ece, abs=1e-12)
    assert compute_metrics(y, p, 0.5, n_bootstrap=0).ece.value == pytest.approx(ece, abs=1e-12)


def test_ece_known_answer():
    # one bin [0.4, 0.466..]: 10 rows at 0.45, 7 positive -> |0.7 - 0.45| = 0.25
    assert expected_calibration_error(np.r_[np.ones(7), np.zeros(3)], np.full(10, 0.45)) == (
        pytest.approx(0.25)
    )
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0


def test_tpr_at_fpr_matches_roc_curve_and_threshold_rule():
    y, p = _data(seed=1)
    m = compute_metrics(y, p, 0.5, n_bootstrap=0)
    fpr, tpr, _ = roc_curve(y, p)
    for value, target in ((m.tpr_at_1_fpr.value, 0.01), (m.tpr_at_5_fpr.value, 0.05)):
        assert value == pytest.approx(tpr[fpr <= target].max())
        t = threshold_for_fpr(p, y, target)
        assert value == pytest.approx(np.mean(p[y == 1] >= t))


def test_intervals_contain_the_point_and_are_deterministic():
    y, p = _data(seed=2)
    groups = np.arange(y.size) // 4
    a = compute_metrics(y, p, 0.5, groups=groups, n_bootstrap=300, random_state=3)
    b = compute_metrics(y, p, 0.5, groups=groups, n_bootstrap=300, random_state=3)
    c = compute_metrics(y, p, 0.5, groups=groups, n_bootstrap=300, random_state=4)
    assert a == b
    assert a.auroc != c.auroc
    for name in (*FIELDS, "tpr_at_5_fpr"):
        iv = getattr(a, name)
        assert iv.low <= iv.value <= iv.high, name
        assert iv.low < iv.high, name
    assert a.n_groups == 500
    assert a.n_bootstrap == 300


def test_cluster_bootstrap_widens_intervals_for_correlated_rows():
    y, p = _data(n=400, seed=4)
    y, p = np.repeat(y, 10), np.repeat(p, 10)  # ten identical copies per group
    groups = np.repeat(np.arange(400), 10)
    rows = compute_metrics(y, p, 0.5, n_bootstrap=300)
    clusters = compute_metrics(y, p, 0.5, groups=groups, n_bootstrap=300)
    width = lambda iv: iv.high - iv.low  # noqa: E731
    assert width(clusters.auroc) > 2 * width(rows.auroc)


def test_one_class_data_gives_nan_not_a_crash():
    m = compute_metrics(np.ones(50, dtype=int), np.linspace(0.2, 0.9, 50), 0.5, n_bootstrap=50)
    assert math.isnan(m.auroc.value)
    assert math.isnan(m.tpr_at_1_fpr.low)
    assert m.recall.value == pytest.approx(np.mean(np.linspace(0.2, 0.9, 50) >= 0.5))
    assert not math.isnan(m.brier.value)


def test_metrics_by_slices_small_and_one_class_slices():
    y, p = _data(n=600, seed=5)
    field = np.array(["qa"] * 300 + ["summary"] * 290 + ["data2txt"] * 10)
    y[590:] = 0  # the small slice holds one class only
    out = metrics_by(field, y, p, 0.5, groups=np.arange(600) // 2, n_bootstrap=100)
    assert list(out) == ["data2txt", "qa", "summary"]
    assert out["qa"].n == 300
    assert out["qa"].auroc.value == pytest.approx(roc_auc_score(y[:300], p[:300]))
    small = out["data2txt"]
    assert small.n == 10
    assert math.isnan(small.auroc.value)
    assert math.isnan(small.brier.low)
    assert not math.isnan(small.brier.value)
    assert out["summary"].n_groups == 145


def test_metrics_json_round_trip_with_nan():
    m = compute_metrics(np.r_[0, 0, 1], np.array([0.1, 0.4, 0.8]), 0.5, n_bootstrap=0)
    again = Metrics.model_validate_json(m.model_dump_json())
    assert again.auroc.value == m.auroc.value
    assert math.isnan(again.auroc.low)


def test_bad_inputs():
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        compute_metrics([0, 1], [0.2, 1.2], 0.5)
    with pytest.raises(InputError, match="rows"):
        compute_metrics([0, 1], [0.2], 0.5)
    with pytest.raises(InputError, match="rows"):
        metrics_by(["a"], [0, 1], [0.2, 0.3], 0.5)
