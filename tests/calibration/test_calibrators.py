"""Calibration maps: fitting, behaviour, agreement with scikit-learn, JSON round trips."""

from __future__ import annotations

import numpy as np
import pytest
from probe_builders import miscalibrated_scores
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

from calibration.calibrators import calibration_candidates, fit_calibration_map
from detectors.calibration_map import CalibrationMap, stable_sigmoid
from scope_guard.errors import ConfigError, InputError

METHODS = ["sigmoid", "temperature", "isotonic"]


@pytest.mark.parametrize("method", METHODS)
def test_brier_improves_on_a_miscalibrated_score(method):
    scores, y = miscalibrated_scores(6000, seed=0)
    fit, held = slice(0, 3000), slice(3000, None)
    cmap = fit_calibration_map(scores[fit], y[fit], method)
    raw = brier_score_loss(y[held], stable_sigmoid(scores[held]))
    calibrated = brier_score_loss(y[held], cmap.apply(scores[held]))
    assert calibrated < raw - 0.01


def test_label_flip_gives_one_minus_p_for_sigmoid():
    scores, y = miscalibrated_scores(2000, seed=1)
    cmap = fit_calibration_map(scores, y, "sigmoid")
    flipped = fit_calibration_map(scores, 1 - y, "sigmoid")
    np.testing.assert_allclose(flipped.apply(scores), 1.0 - cmap.apply(scores), atol=1e-6)
    assert flipped.a == pytest.approx(-cmap.a, rel=1e-4)


def _frozen_linear(scores, y, *, fit_intercept: bool) -> LogisticRegression:
    # decision_function is an increasing linear function of the score
    lr = LogisticRegression(C=1.0, fit_intercept=fit_intercept).fit(scores[:, None], y)
    assert lr.coef_[0, 0] > 0
    return lr


@pytest.mark.parametrize("method", METHODS)
def test_agrees_with_sklearn_calibrated_classifier(method):
    """Each map gives scikit-learn's probabilities (every method is invariant to how the
    frozen model rescales the score: affine for sigmoid/isotonic, linear for temperature)."""
    scores, y = miscalibrated_scores(3000, seed=2)
    scores = scores / 4.0
    fit, held = slice(0, 1500), slice(1500, None)
    lr = _frozen_linear(scores[fit], y[fit], fit_intercept=method != "temperature")
    ref = CalibratedClassifierCV(FrozenEstimator(lr), method=method)
    ref.fit(scores[fit, None], y[fit])
    expected = ref.predict_proba(scores[held, None])[:, 1]
    ours = fit_calibration_map(scores[fit], y[fit], method).apply(scores[held])
    np.testing.assert_allclose(ours, expected, atol=2e-4)


@pytest.mark.parametrize("method", METHODS)
def test_json_round_trip_applies_identically(method):
    scores, y = miscalibrated_scores(1000, seed=3)
    cmap = fit_calibration_map(scores, y, method)
    again = CalibrationMap.model_validate_json(cmap.model_dump_json())
    assert again == cmap
    grid = np.linspace(scores.min() - 5, scores.max() + 5, 301)
    np.testing.assert_array_equal(again.apply(grid), cmap.apply(grid))


def test_auto_round_trip_keeps_the_record():
    scores, y = miscalibrated_scores(1500, seed=4)
    cmap = fit_calibration_map(scores, y, "auto", groups=np.arange(1500) // 3)
    assert set(cmap.held_out_log_loss) == set(METHODS)
    assert CalibrationMap.model_validate_json(cmap.model_dump_json()) == cmap


def test_isotonic_is_monotone_and_clips():
    scores, y = miscalibrated_scores(3000, seed=5)
    cmap = fit_calibration_map(scores, y, "isotonic")
    grid = np.linspace(scores.min() - 10, scores.max() + 10, 2001)
    p = cmap.apply(grid)
    assert np.all(np.diff(p) >= 0)
    assert p[0] == cmap.y[0]
    assert p[-1] == cmap.y[-1]
    assert 0.0 <= p.min() <= p.max() <= 1.0


def test_auto_picks_isotonic_for_a_non_sigmoid_shape():
    rng = np.random.default_rng(6)
    scores = rng.uniform(-3, 3, 4000)
    y = (rng.random(4000) < np.where(scores > 0.5, 0.9, 0.1)).astype(int)  # a step
    cmap = fit_calibration_map(scores, y, "auto")
    assert cmap.method == "isotonic"
    assert cmap.held_out_log_loss["isotonic"] == min(cmap.held_out_log_loss.values())


def test_auto_avoids_temperature_when_the_score_is_shifted():
    scores, y = miscalibrated_scores(3000, seed=7)  # 3 * logit + 1: needs an offset
    candidates = calibration_candidates(scores, y)
    losses = {c.method: c.log_loss for c in candidates}
    assert losses["sigmoid"] < losses["temperature"]
    assert fit_calibration_map(scores, y).method != "temperature"


def test_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(8)
    logit = rng.normal(0, 2, 20000)
    y = (rng.random(logit.size) < stable_sigmoid(logit)).astype(int)
    cmap = fit_calibration_map(3.0 * logit, y, "temperature")
    assert cmap.temperature == pytest.approx(3.0, rel=0.05)


def test_auto_with_too_few_groups_falls_back_to_sigmoid(caplog):
    scores = np.array([-2.0, -1.0, 0.5, 1.0, 2.0, 3.0])
    y = np.array([0, 0, 1, 0, 1, 1])
    cmap = fit_calibration_map(scores, y, "auto", groups=[0, 0, 1, 1, 1, 1])
    assert cmap.method == "sigmoid"
    assert "cannot cross-validate" in caplog.text


def test_bad_inputs():
    with pytest.raises(ConfigError, match="valid"):
        fit_calibration_map([0.0, 1.0], [0, 1], "beta")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="both classes"):
        fit_calibration_map([0.0, 1.0], [1, 1], "sigmoid")
    with pytest.raises(InputError, match="finite"):
        fit_calibration_map([0.0, np.nan], [0, 1], "sigmoid")
    with pytest.raises(InputError, match="0 and 1"):
        fit_calibration_map([0.0, 1.0], [0, 2], "sigmoid")


def test_map_apply_refuses_nan_and_identity_checks_range():
    with pytest.raises(InputError, match="NaN"):
        CalibrationMap(method="sigmoid").apply(np.array([0.0, np.nan]))
    identity = CalibrationMap(method="identity")
    np.testing.assert_array_equal(identity.apply(np.array([0.0, 0.3, 1.0])), [0.0, 0.3, 1.0])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        identity.apply(np.array([1.5]))


def test_map_validation():
    with pytest.raises(ValueError, match="non-decreasing"):
        CalibrationMap(method="isotonic", x=[1.0, 0.0], y=[0.2, 0.3])
    with pytest.raises(ValueError, match="equal"):
        CalibrationMap(method="isotonic", x=[0.0, 1.0], y=[0.2])
    with pytest.raises(ValueError, match="only used by the isotonic"):
        CalibrationMap(method="sigmoid", x=[0.0], y=[0.5])
    with pytest.raises(ValueError, match="greater than 0"):
        CalibrationMap(method="temperature", temperature=0.0)
    sig = CalibrationMap(method="sigmoid", a=2.0, b=-1.0)
    np.testing.assert_allclose(sig.apply(np.array([0.5, -np.inf, np.inf])), [0.5, 0.0, 1.0])


def test_candidates_fit_every_method_on_both_classes(monkeypatch):
    import calibration.calibrators as calibrators

    # Positives only in groups 6 (all) and 10 (one of six): before group_folds checked its
    # splits, seed 0 fitted every method on a training fold of negatives only.
    y = np.array([0] * 20 + [1] * 6 + [0] * 10 + [1])
    groups = np.repeat(np.arange(11), [7, 4, 3, 2, 3, 1, 6, 2, 2, 1, 6])
    scores = np.random.default_rng(1).normal(size=y.size) + y
    seen: list[set[int]] = []

    def recording(fit):
        def fit_and_record(s, y_train):
            seen.append(set(y_train.tolist()))
            return fit(s, y_train)

        return fit_and_record

    fitters = {name: recording(fit) for name, fit in calibrators._FITTERS.items()}
    monkeypatch.setattr(calibrators, "_FITTERS", fitters)
    with pytest.warns(UserWarning, match="2 folds"):
        candidates = calibration_candidates(scores, y, groups=groups, random_state=0)
    assert len(seen) == 3 * 2  # three methods, two folds
    assert all(classes == {0, 1} for classes in seen)
    assert all(np.isfinite(c.log_loss) for c in candidates)
