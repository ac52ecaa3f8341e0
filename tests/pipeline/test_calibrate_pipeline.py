"""calibrate -> bundle -> evaluate, end to end, on synthetic data with a known answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic_rag import synthetic_rag

from calibration import pipeline
from calibration.evaluation import evaluate
from calibration.extract import extract_features
from calibration.pipeline import CalibrationSettings, _threshold, calibrate
from calibration.report import write_report
from calibration.thresholds import threshold_for_fpr
from detectors.bundle import DetectorBundle
from detectors.grounding import GroundingDetector
from scope_guard.errors import ConfigError, InputError
from scope_guard.reader import Reader
from scope_guard.sae import load_sae
from scope_guard.stand_in import miniature_sae_path

SETTINGS = CalibrationSettings(risk="fabrication", n_bootstrap=50, n_splits=3)


@pytest.fixture(scope="module")
def dataset():
    return synthetic_rag()


@pytest.fixture(scope="module")
def grounding_result(dataset, tmp_path_factory):
    cache = tmp_path_factory.mktemp("features")
    result = calibrate(
        dataset, SETTINGS, grounding=GroundingDetector(), cache_dir=cache, progress=False
    )
    return result, cache


def test_grounding_only_detects_the_planted_fabrications(grounding_result):
    result, _ = grounding_result
    (evaluation,) = result.report.evaluations
    assert evaluation.kind == "grounding"
    assert evaluation.metrics.auroc.value > 0.9
    assert evaluation.metrics.n == len(evaluation.y) == result.bundle["fabrication"].info["n_test"]
    assert set(evaluation.by_field["task_type"]) == {"QA", "Summary"}
    assert result.bundle.reader is None


def test_split_keeps_groups_whole(grounding_result, dataset):
    result, _ = grounding_result
    info = result.bundle["fabrication"].info
    assert info["n_train"] + info["n_test"] == len(dataset)
    assert info["n_test"] % 4 == 0  # four responses per source, never split


def test_bundle_round_trip_reproduces_held_out_probabilities(grounding_result, dataset, tmp_path):
    result, cache = grounding_result
    result.bundle.save(tmp_path / "bundle")
    loaded = DetectorBundle.load(tmp_path / "bundle")
    report = evaluate(
        loaded,
        dataset,
        grounding=GroundingDetector(),
        cache_dir=cache,
        n_bootstrap=20,
        progress=False,
    )
    (evaluation,) = report.evaluations
    # Scoring the whole dataset with the loaded detector: the held-out rows get exactly the
    # probabilities the pipeline computed for them.
    held_out = result.held_out["fabrication"]
    probs = np.array(evaluation.probs)
    assert np.isin(np.round(held_out, 12), np.round(probs, 12)).all()
    assert evaluation.metrics.auroc.value > 0.9


def test_feature_cache_avoids_recomputation(grounding_result, dataset):
    _, cache = grounding_result
    again = extract_features(
        dataset, grounding=GroundingDetector(), cache_dir=cache, progress=False
    )
    assert again.n_computed == 0
    assert again.grounding is not None
    assert again.grounding.shape[0] == len(dataset)


def test_reader_probes_sit_beside_the_raw_baseline(dataset, tmp_path):
    reader = Reader.miniature(["resid_post@3"])
    sae = load_sae(miniature_sae_path())
    small = dataset.subset(range(48))
    result = calibrate(
        small,
        SETTINGS,
        reader=reader,
        saes={"resid_post@3": sae},
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    kinds = {e.detector: e.kind for e in result.report.evaluations}
    assert kinds == {"fabrication": "sae", "fabrication-raw": "raw"}
    assert any("stand-in" in note for note in result.report.notes)
    det = result.bundle["fabrication"]
    (block,) = det.blocks  # the SAE block, narrowed to the latents the L1 probe kept
    assert det.coef.reshape(2, -1).any(axis=0).all()  # every kept latent carries a weight
    assert 0 < len(block.latent_ids) < sae.n_latents
    assert det.saes[block.parsed_site].latent_ids.tolist() == block.latent_ids
    result.bundle.save(tmp_path / "bundle")
    loaded = DetectorBundle.load(tmp_path / "bundle", reader=reader)
    rep = evaluate(
        loaded, small, reader=reader, cache_dir=tmp_path / "cache", n_bootstrap=10, progress=False
    )
    assert {e.detector for e in rep.evaluations} == {"fabrication", "fabrication-raw"}
    paths = write_report(rep, tmp_path / "report")
    assert "fabrication-raw" in paths.markdown.read_text()
    assert json.loads(paths.json.read_text())["evaluations"]


def test_bad_inputs(dataset):
    with pytest.raises(InputError, match="at least 20"):
        calibrate(dataset.subset(range(8)), SETTINGS, grounding=GroundingDetector(), progress=False)
    with pytest.raises(ConfigError, match="nothing to fit"):
        calibrate(dataset, SETTINGS, progress=False)
    with pytest.raises(ConfigError, match="needs a threshold_target"):
        CalibrationSettings(risk="fabrication", threshold_rule="fpr")
    with pytest.raises(ConfigError, match="unknown risk"):
        CalibrationSettings(risk="lying")


def test_cache_keys_cover_embedder_and_reader_dtype(dataset, tmp_path):
    class Shuffled:
        """Another embedder: features must be recomputed, not read from the TF-IDF cache."""

        def __call__(self, texts):
            rng = np.random.default_rng(0)
            return rng.normal(size=(len(texts), 8))

    small = dataset.subset(range(12))
    first = extract_features(
        small, grounding=GroundingDetector(), cache_dir=tmp_path, progress=False
    )
    other = extract_features(
        small, grounding=GroundingDetector(embedder=Shuffled()), cache_dir=tmp_path, progress=False
    )
    unique = len({(ex.response, tuple(ex.contexts), ex.question) for ex in small})
    assert first.n_computed == other.n_computed == unique
    sae = load_sae(miniature_sae_path())
    computed = []
    for dtype in ("float32", "bfloat16", "float32"):
        reader = Reader.miniature(["resid_post@3"], dtype=dtype)
        got = extract_features(
            small, reader=reader, saes={"resid_post@3": sae}, cache_dir=tmp_path, progress=False
        )
        computed.append(got.n_computed)
    # bf16 never reuses fp32 activations; the second fp32 run reuses the first one's.
    assert computed[0] == computed[1] > 0
    assert computed[2] == 0


def test_probe_that_keeps_no_feature_gives_a_working_detector(dataset):
    """C so small that L1 zeroes every coefficient: an intercept-only detector, not a crash."""
    reader = Reader.miniature(["resid_post@3"])
    settings = CalibrationSettings(risk="fabrication", C=1e-6, n_bootstrap=10, n_splits=3)
    result = calibrate(
        dataset.subset(range(48)),
        settings,
        reader=reader,
        saes={"resid_post@3": load_sae(miniature_sae_path())},
        progress=False,
    )
    det = result.bundle["fabrication"]
    assert det.blocks == ()
    assert not det.needs_reader
    score = det.score()
    assert 0.0 <= score.probability <= 1.0


def test_cross_validated_evaluation_scores_every_row(dataset, grounding_result):
    _, cache = grounding_result
    settings = CalibrationSettings(
        risk="fabrication", n_bootstrap=20, n_splits=3, evaluation="cv", n_outer=4
    )
    result = calibrate(
        dataset, settings, grounding=GroundingDetector(), cache_dir=cache, progress=False
    )
    (evaluation,) = result.report.evaluations
    assert evaluation.metrics.n == len(dataset)  # every row held out once
    assert result.report.split["n_folds"] == 4
    detector = result.bundle["fabrication"]
    assert detector.info["n_train"] == len(dataset)  # the bundle is fitted on all rows
    assert evaluation.metrics.auroc.value > 0.9
    # Each row was flagged by its own fold's threshold: the reported threshold is their mean,
    # close to (not necessarily equal to) the final detector's.
    assert 0.0 < evaluation.metrics.threshold <= 1.0
    with pytest.raises(ConfigError, match="evaluation"):
        CalibrationSettings(risk="fabrication", evaluation="bootstrap")


def test_fpr_target_zero_is_kept_not_replaced_by_a_default():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    probs = np.clip(0.5 * y + 0.6 * rng.random(400), 0.0, 1.0)
    settings = CalibrationSettings(risk="fabrication", threshold_rule="fpr", threshold_target=0.0)
    threshold = _threshold(settings, probs, y)
    assert threshold == threshold_for_fpr(probs, y, 0.0)
    assert threshold != threshold_for_fpr(probs, y, 0.05)  # the old fallback target
    assert not np.any((probs >= threshold) & (y == 0))


@pytest.mark.parametrize(
    ("rule", "target"),
    [("fpr", -0.01), ("fpr", 1.01), ("fpr", float("nan")), ("precision", 0.0), ("precision", 2.0)],
)
def test_out_of_range_threshold_targets_are_refused(rule, target):
    with pytest.raises(ConfigError, match="threshold_target must be in"):
        CalibrationSettings(risk="fabrication", threshold_rule=rule, threshold_target=target)


@pytest.mark.parametrize(("rule", "target"), [("fpr", 0.0), ("fpr", 1.0), ("precision", 1.0)])
def test_boundary_threshold_targets_are_accepted(rule, target):
    settings = CalibrationSettings(risk="fabrication", threshold_rule=rule, threshold_target=target)
    assert settings.threshold_target == target


def test_unknown_threshold_rule_is_refused():
    with pytest.raises(ConfigError, match="valid"):
        CalibrationSettings(risk="fabrication", threshold_rule="recall")  # type: ignore[arg-type]


@pytest.mark.parametrize("nested", [True, False])
def test_cross_fitted_probes_choose_c_on_their_own_folds(dataset, grounding_result, nested):
    _, cache = grounding_result
    fits: list[tuple[int, float | None, float]] = []

    class RecordingProbe(pipeline.SparseProbe):
        def fit(self, X, y, groups=None):
            super().fit(X, y, groups=groups)
            fits.append((len(y), self.C, self.C_))
            return self

    settings = CalibrationSettings(risk="fabrication", n_bootstrap=10, n_splits=3, nested_c=nested)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "SparseProbe", RecordingProbe)
        result = calibrate(
            dataset, settings, grounding=GroundingDetector(), cache_dir=cache, progress=False
        )
    (final_rows, final_c, final_c_), *copies = fits
    assert final_c is None
    assert final_rows == result.bundle["fabrication"].info["n_train"]
    assert len(copies) == 3
    assert all(rows < final_rows for rows, _, _ in copies)
    if nested:  # each copy searched C itself, on its own training rows only
        assert all(c is None for _, c, _ in copies)
    else:  # each copy reused the C the final probe chose on all the rows
        assert all(c == final_c_ for _, c, _ in copies)


def test_a_target_with_the_f1_rule_is_refused():
    with pytest.raises(ConfigError, match="takes no threshold_target"):
        CalibrationSettings(risk="fabrication", threshold_rule="f1", threshold_target=0.05)
