"""Calibration with the surprisal block: it joins the reader detector, the bundle asks for a
surprisal reader, and the guard built from the bundle alone scores live what the detector gives
on the calibration features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from synthetic_rag import synthetic_rag

from calibration.data import LabeledDataset
from calibration.extract import extract_features
from calibration.pipeline import CalibrationResult, CalibrationSettings, calibrate
from detectors.bundle import DetectorBundle
from detectors.feature_blocks import BlockKind
from detectors.grounding import GroundingDetector
from scope_guard.errors import ArtifactError
from scope_guard.guard import ScopeGuard, bundle_reader_sites
from scope_guard.reader import Reader
from scope_guard.risks import Risk
from scope_guard.sites import Site

SITE = Site.parse("resid_post@2")
SETTINGS = CalibrationSettings(
    risk=Risk.FABRICATION, n_bootstrap=10, n_splits=3, C=1.0, nested_c=False, examples=1
)


@pytest.fixture(scope="module")
def reader(miniature_dir: Path) -> Reader:
    return Reader.miniature([SITE], surprisal=True)


@pytest.fixture(scope="module")
def data() -> LabeledDataset:
    return synthetic_rag(n_sources=10, per_source=4)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("features")


def _calibrate(reader: Reader, data: LabeledDataset, cache: Path, **kw: Any) -> CalibrationResult:
    return calibrate(data, SETTINGS, reader=reader, cache_dir=cache, progress=False, **kw)


@pytest.fixture(scope="module")
def result(reader: Reader, data: LabeledDataset, cache: Path) -> CalibrationResult:
    grounding = GroundingDetector()
    return _calibrate(reader, data, cache, raw_sites=[SITE], grounding=grounding, surprisal=True)


def _live_scores(guard: ScopeGuard, data: LabeledDataset, rows: int) -> list[float]:
    reports = guard.assess_batch(
        [
            {"question": ex.question, "contexts": ex.contexts, "response": ex.response}
            for ex in data[:rows]
        ]
    )
    return [r.scores["fabrication"] for r in reports]


def test_the_surprisal_block_joins_the_reader_detector(result, reader):
    primary = result.bundle["fabrication"]
    kinds = [b.kind for b in primary.blocks]
    assert kinds == [BlockKind.RAW, BlockKind.SURPRISAL, BlockKind.GROUNDING]
    assert primary.needs_surprisal
    assert not result.bundle["fabrication-grounding"].needs_surprisal
    assert result.bundle.needs_surprisal
    assert result.bundle.reader is not None
    assert result.bundle.reader.surprisal_fingerprint == reader.surprisal_fingerprint
    assert {e.kind for e in result.report.evaluations} == {"raw+grounding", "grounding"}
    assert result.report.reader is not None
    assert result.report.reader["reader_blocks"] == ["surprisal"]
    shown = {e.detector: len(e.examples) for e in result.report.evaluations}
    assert shown == {"fabrication": 1, "fabrication-grounding": 0}  # read with surprisal


def test_the_guard_from_the_bundle_alone_scores_as_the_calibration_features(
    result, reader, data, tmp_path
):
    path = result.bundle.save(tmp_path / "bundle")
    guard = ScopeGuard.from_bundle(path, grounding=GroundingDetector())  # loads its own reader
    assert guard.reader is not None
    assert guard.reader.surprisal
    assert guard.reader.surprisal_fingerprint == reader.surprisal_fingerprint
    detector = DetectorBundle.load(path)["fabrication"]
    features = extract_features(
        data[:5],
        reader=reader,
        raw_sites=[SITE],
        grounding=GroundingDetector(),
        progress=False,
        surprisal=True,
    )
    expected = detector.predict_proba(features.matrix(detector.blocks))
    assert np.ptp(expected) > 0  # the rows differ, so a constant score would fail
    assert _live_scores(guard, data, 5) == pytest.approx(expected, abs=1e-6)
    plain = Reader.miniature([SITE])
    with pytest.raises(ArtifactError, match="surprisal=True"):
        ScopeGuard.from_bundle(path, reader=plain, grounding=GroundingDetector())


def test_surprisal_alone_is_a_reader_detector_the_guard_can_load(reader, data, cache, tmp_path):
    alone = _calibrate(reader, data, cache, surprisal=True)
    detector = alone.bundle["fabrication"]
    assert [b.kind for b in detector.blocks] == [BlockKind.SURPRISAL]
    assert alone.bundle.sites == ()
    path = alone.bundle.save(tmp_path / "bundle")
    loaded = DetectorBundle.load(path)
    assert bundle_reader_sites(loaded) == (Site.parse(f"resid_post@{reader.n_layers - 1}"),)
    guard = ScopeGuard.from_bundle(path)
    assert guard.reader is not None
    assert guard.reader.surprisal
    features = extract_features(
        data[:4], reader=reader, raw_sites=[], surprisal=True, progress=False
    )
    expected = detector.predict_proba(features.matrix(detector.blocks))
    assert np.count_nonzero(detector.coef) > 0
    assert np.ptp(expected) > 0
    assert _live_scores(guard, data, 4) == pytest.approx(expected, abs=1e-6)
