"""calibrate explains its detectors: a self-trained SAE's top contexts travel into the bundle,
the report and the guard's RiskReport; the report shows a few held-out responses with their
per-token risk, scored by detectors that never saw them."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
from synthetic_rag import synthetic_rag

from calibration.data import prompt_of
from calibration.evaluation import evaluate
from calibration.pipeline import CalibrationSettings, calibrate
from calibration.report import write_report
from detectors.bundle import DetectorBundle
from detectors.probe import ProbeDetector
from scope_guard.guard import ScopeGuard
from scope_guard.reader import Reader
from scope_guard.sae import load_sae
from scope_guard.sae.training.explain import EXPLANATIONS_FILE
from scope_guard.stand_in import miniature_sae_path
from scope_guard.types import Exchange

SITE = "resid_post@3"
# L1 at a large C keeps a few latents of the miniature SAE on its own (no grounding block)
SETTINGS = CalibrationSettings(risk="fabrication", n_bootstrap=10, n_splits=3, C=10.0)


def contexts_of(latent: int) -> list[dict[str, object]]:
    return [
        {
            "activation": 3.0 - k,
            "doc": k,
            "position": 2,
            "before": f"ctx{k} ",
            "token": f"L{latent}",
            "after": " end",
        }
        for k in range(5)
    ]


@pytest.fixture(scope="module")
def reader():
    return Reader.miniature([SITE])


@pytest.fixture(scope="module")
def data():
    return synthetic_rag(n_sources=24, per_source=4)


@pytest.fixture(scope="module")
def trained_sae_dir(tmp_path_factory):
    """The miniature SAE as a self-trained one: its folder holds explanations.json."""
    folder = tmp_path_factory.mktemp("sae") / "trained"
    shutil.copytree(miniature_sae_path(), folder)
    latents = {str(i): contexts_of(i) for i in range(512)}
    (folder / EXPLANATIONS_FILE).write_text(json.dumps({"latents": latents}), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def result(reader, data, trained_sae_dir, tmp_path_factory):
    return calibrate(
        data,
        SETTINGS,
        reader=reader,
        saes={SITE: load_sae(trained_sae_dir)},
        cache_dir=tmp_path_factory.mktemp("features"),
        progress=False,
    )


def test_kept_latents_carry_their_top_contexts(result):
    detector = result.bundle["fabrication"]
    (block,) = [b for b in detector.blocks if b.kind == "sae"]
    assert block.latent_ids
    expected = {i: tuple(f"ctx{k} [[L{i}]] end" for k in range(3)) for i in block.latent_ids}
    assert detector.explanations == {SITE: expected}
    (evaluation,) = [e for e in result.report.evaluations if e.detector == "fabrication"]
    assert evaluation.top_latents
    for lw in evaluation.top_latents:
        assert lw.url is None
        assert lw.contexts == list(expected[lw.latent])


def test_contexts_reach_the_report_and_the_guard(result, reader, data, tmp_path):
    markdown = write_report(result.report, tmp_path / "report").markdown.read_text()
    lw = next(e for e in result.report.evaluations if e.detector == "fabrication").top_latents[0]
    literal = f"ctx0 \\[\\[L{lw.latent}\\]\\] end · ctx1"  # brackets escaped: never a link
    assert f"| {lw.latent} | {lw.pooling} | {lw.weight:+.4f} | {literal}" in markdown
    path = result.bundle.save(tmp_path / "bundle")
    guard = ScopeGuard.from_bundle(path, reader=reader)
    example = next(ex for ex in data if ex.label("fabrication") == 1)
    report = guard.assess(
        Exchange(
            question=example.question, contexts=list(example.contexts), response=example.response
        )
    )
    notes = [n for d in report.detectors if d.detector == "fabrication" for n in d.top_latents]
    explained = [n for n in notes if n.latent is not None]
    assert explained, "an active kept latent pushes the score"
    for n in explained:
        assert n.contexts == [f"ctx{k} [[L{n.latent}]] end" for k in range(3)]


def test_a_registry_like_sae_leaves_latents_unexplained(reader, data, tmp_path):
    result = calibrate(
        data,
        SETTINGS,
        reader=reader,
        saes={SITE: load_sae(miniature_sae_path())},
        progress=False,
        cache_dir=tmp_path,
    )
    assert result.bundle["fabrication"].explanations == {}
    assert all(not lw.contexts for e in result.report.evaluations for lw in e.top_latents)


def test_malformed_explanations_beside_the_sae_only_warn(reader, data, tmp_path, caplog):
    folder = tmp_path / "sae"
    shutil.copytree(miniature_sae_path(), folder)
    (folder / EXPLANATIONS_FILE).write_text("{not json", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="calibration.pipeline"):
        result = calibrate(
            data,
            SETTINGS,
            reader=reader,
            saes={SITE: load_sae(folder)},
            progress=False,
            cache_dir=tmp_path / "features",
        )
    assert "left unexplained" in caplog.text
    assert result.bundle["fabrication"].explanations == {}


# ------------------------------------------------------------------ per-token examples
def test_held_out_examples_show_per_token_risk_of_their_own_response(result, reader, data):
    by_response = {ex.response: ex for ex in data}
    for evaluation in result.report.evaluations:
        assert 1 <= len(evaluation.examples) <= SETTINGS.examples
        detector = result.bundle[evaluation.detector]
        for shown in evaluation.examples:
            ex = by_response[shown.response]
            assert shown.label == ex.label("fabrication")
            reading = reader.read(prompt_of(ex), ex.response)
            live = detector.score(reading)
            # the held-out detector: its live score is the held-out probability
            assert live.probability == pytest.approx(shown.probability, abs=1e-9)
            assert list(live.token_spans) == shown.spans
            for start, end, _ in shown.spans:
                assert shown.response[start:end] in reading.tokens
            assert shown.source == "detector"
            assert shown.span_threshold == detector.threshold


def test_examples_zero_keeps_every_text_out_of_the_report(reader, data, tmp_path):
    settings = CalibrationSettings(
        risk="fabrication", n_bootstrap=10, n_splits=3, C=10.0, examples=0
    )
    result = calibrate(
        data,
        settings,
        reader=reader,
        saes={SITE: load_sae(miniature_sae_path())},
        cache_dir=tmp_path / "features",
        progress=False,
    )
    assert all(not e.examples for e in result.report.evaluations)
    paths = write_report(result.report, tmp_path / "report")
    responses = [ex.response for ex in data]
    for path in (paths.markdown, paths.html, paths.json):
        text = path.read_text(encoding="utf-8")
        assert not any(r in text for r in responses)


def test_cross_validated_token_probe_examples_are_scored_by_their_fold(
    reader, data, tmp_path, monkeypatch
):
    """Under cv each shown row is scored by its fold's detector, token probes included: its
    live probability equals the fold's held-out probability for the row."""
    live: dict[str, list[float]] = {}
    score = ProbeDetector.score

    def recording(self, reading=None, grounding=None, **kw):
        out = score(self, reading, grounding, **kw)
        if reading is not None:
            live.setdefault(reading.response, []).append(out.probability)
        return out

    monkeypatch.setattr(ProbeDetector, "score", recording)
    settings = CalibrationSettings(
        risk="fabrication", n_bootstrap=10, n_splits=3, evaluation="cv", n_outer=3, C=1.0
    )
    result = calibrate(
        data, settings, reader=reader, token_sites=[SITE], cache_dir=tmp_path, progress=False
    )
    (evaluation,) = result.report.evaluations
    assert evaluation.examples
    index = {ex.response: i for i, ex in enumerate(data)}
    for shown in evaluation.examples:
        assert shown.source == "token_probe"
        assert shown.span_threshold == 0.5
        row = index[shown.response]
        assert shown.probability == pytest.approx(result.held_out["fabrication"][row])
        assert live[shown.response] == pytest.approx([shown.probability])
        risky = [(s, e) for s, e, r in shown.spans if r >= 0.5]
        covered = {c for s, e, _ in shown.risky for c in range(s, e)}
        assert all(c in covered for s, e in risky for c in range(s, e))


def test_evaluate_shows_examples_scored_by_the_bundle(result, reader, data, tmp_path):
    path = result.bundle.save(tmp_path / "bundle")
    report = evaluate(
        DetectorBundle.load(path), data, reader=reader, n_bootstrap=10, progress=False
    )
    for evaluation in report.evaluations:
        assert evaluation.examples
        assert all(lw.contexts for lw in evaluation.top_latents)
    assert any(e.top_latents for e in report.evaluations)
    quiet = evaluate(
        DetectorBundle.load(path), data, reader=reader, n_bootstrap=10, progress=False, examples=0
    )
    assert all(not e.examples for e in quiet.evaluations)
    probs = np.array(report.evaluations[0].probs)
    assert report.evaluations[0].examples[0].probability == pytest.approx(
        probs[np.array(report.evaluations[0].y) == 1].max()
    )
