"""Calibration with lookback and token-probe blocks: fitted without leakage, saved, reloaded,
and scored live by the guard exactly as offline."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_rag import synthetic_rag

from calibration.evaluation import evaluate
from calibration.extract import extract_features
from calibration.pipeline import CalibrationSettings, calibrate
from detectors.bundle import DetectorBundle
from detectors.feature_blocks import BlockKind, FeatureBlock
from detectors.grounding import GroundingDetector
from scope_guard.errors import ArtifactError, ConfigError, InputError
from scope_guard.guard import ScopeGuard
from scope_guard.reader import Reader

SITE = "resid_post@2"


@pytest.fixture(scope="module")
def reader():
    return Reader.miniature([SITE], lookback=True)


@pytest.fixture(scope="module")
def data():
    return synthetic_rag(n_sources=16, per_source=4)


@pytest.fixture(scope="module")
def result(reader, data, tmp_path_factory):
    settings = CalibrationSettings(
        risk="fabrication", n_bootstrap=20, n_splits=3, evaluation="cv", n_outer=3, C=1.0
    )
    return calibrate(
        data,
        settings,
        reader=reader,
        grounding=GroundingDetector(),
        cache_dir=tmp_path_factory.mktemp("features"),
        progress=False,
        lookback=True,
        token_sites=[SITE],
    )


def test_reader_blocks_beside_grounding(result, reader):
    primary = result.bundle["fabrication"]
    kinds = [b.kind for b in primary.blocks]
    assert kinds == [BlockKind.LOOKBACK, BlockKind.TOKENS, BlockKind.GROUNDING]
    lookback, tokens = primary.blocks[0], primary.blocks[1]
    assert lookback.width == 3 * 4  # layers 0..2 of the miniature, 4 heads
    assert tokens.width == 4
    assert len(tokens.probe_weights) == reader.site_dim(SITE)
    assert primary.needs_lookback
    assert result.bundle.needs_lookback
    assert {e.kind for e in result.report.evaluations} == {"reader+grounding", "grounding"}


def test_the_guard_scores_live_what_evaluate_scores_offline(result, reader, data, tmp_path):
    path = tmp_path / "bundle"
    result.bundle.save(path)
    guard = ScopeGuard.from_bundle(path, reader=reader, grounding=GroundingDetector())
    offline = evaluate(
        DetectorBundle.load(path),
        data,
        reader=reader,
        grounding=GroundingDetector(),
        n_bootstrap=10,
        progress=False,
    )
    assert offline.evaluations
    detector = DetectorBundle.load(path)["fabrication"]
    feats = extract_features(
        data[:6],
        reader=reader,
        raw_sites=[],
        token_sites=[SITE],
        lookback=True,
        grounding=GroundingDetector(),
        progress=False,
    )
    probe = detector.blocks[1].token_probe
    from detectors.token_scoring import aggregate_scores

    feats.token_aggregates[detector.blocks[1].parsed_site] = np.stack(
        [aggregate_scores(probe.token_scores(a)) for a in feats.tokens[reader.sites[0]]]
    )
    expected = detector.predict_proba(feats.matrix(detector.blocks))
    for i, example in enumerate(data[:6]):
        report = guard.assess(
            {
                "question": example.question,
                "contexts": example.contexts,
                "response": example.response,
            }
        )
        got = report.scores["fabrication"]
        assert got == pytest.approx(expected[i], abs=1e-6)


def test_a_reader_without_lookback_is_refused(result, miniature_dir, tmp_path):
    path = tmp_path / "bundle"
    result.bundle.save(path)
    plain = Reader.miniature([SITE])
    with pytest.raises(ArtifactError, match="lookback=True"):
        ScopeGuard.from_bundle(path, reader=plain, grounding=GroundingDetector())


def test_token_probes_need_spans(reader, tmp_path):
    no_spans = synthetic_rag(n_sources=12, per_source=2)
    no_spans = no_spans._derive(ex.model_copy(update={"spans": []}) for ex in no_spans)
    with pytest.raises(InputError, match="labeled spans"):
        calibrate(
            no_spans,
            CalibrationSettings(risk="fabrication", n_bootstrap=10, n_splits=3, C=1.0),
            reader=reader,
            cache_dir=tmp_path,
            progress=False,
            token_sites=[SITE],
        )


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"kind": "lookback", "site": SITE}, "heads"),
        ({"kind": "tokens", "site": SITE, "probe_weights": [1.0]}, "one length"),
        (
            {
                "kind": "tokens",
                "site": SITE,
                "probe_weights": [1.0],
                "probe_mean": [0.0],
                "probe_scale": [0.0],
            },
            "positive scales",
        ),
        (
            {
                "kind": "tokens",
                "site": SITE,
                "probe_weights": [float("nan")],
                "probe_mean": [0.0],
                "probe_scale": [1.0],
            },
            "finite",
        ),
    ],
)
def test_hostile_blocks_are_refused(fields, match):
    with pytest.raises((ConfigError, ValueError), match=match):
        FeatureBlock(**fields)


def test_a_token_probe_of_another_width_is_a_typed_error(reader):
    from detectors.feature_blocks import assemble

    block = FeatureBlock(
        kind="tokens", site=SITE, probe_weights=[1.0], probe_mean=[0.0], probe_scale=[1.0]
    )
    reading = reader.read("Some context.", "An answer.")
    with pytest.raises(ArtifactError, match="reads width 1"):
        assemble([block], reading=reading)
