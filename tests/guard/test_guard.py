"""ScopeGuard: decisions, bundles, failure modes, bad inputs, logging, stats."""

from __future__ import annotations

import threading

import pytest
from synthetic_rag import synthetic_rag

from calibration.pipeline import CalibrationSettings, calibrate
from detectors.grounding import GroundingDetector
from detectors.probe import ProbeScore
from scope_guard.errors import ArtifactError, ConfigError, InputError
from scope_guard.guard import ScopeGuard
from scope_guard.policy import Policy
from scope_guard.reader import Reader
from scope_guard.sae import load_sae
from scope_guard.stand_in import miniature_sae_path
from scope_guard.types import Action, Exchange

CONTEXT = (
    "The harbour of Mossbay was designed by Ada Brenner and opened in 1904. "
    "It is 120 metres long and is the best known landmark of the city."
)
GROUNDED = "The harbour of Mossbay opened in 1904 and is 120 metres long."
FABRICATED = (
    "The harbour of Mossbay was designed by Oren Quist in 1962 and cost 80 million dollars."
)


class MemorySink:
    def __init__(self):
        self.records = []
        self.lock = threading.Lock()
        self.closed = False

    def write(self, record):
        with self.lock:
            self.records.append(record)

    def close(self):
        self.closed = True


def _exchange(response, **kw):
    return Exchange(
        question="Tell me about the harbour of Mossbay.",
        contexts=[CONTEXT],
        response=response,
        **kw,
    )


@pytest.fixture(scope="module")
def grounding_bundle(tmp_path_factory):
    result = calibrate(
        synthetic_rag(),
        CalibrationSettings(risk="fabrication", n_bootstrap=20, n_splits=3),
        grounding=GroundingDetector(),
        progress=False,
    )
    path = tmp_path_factory.mktemp("bundle")
    result.bundle.save(path)
    return path, result


def test_heuristic_guard_without_weights():
    sink = MemorySink()
    guard = ScopeGuard(risk_log=sink)
    good, bad = guard.assess(_exchange(GROUNDED)), guard.assess(_exchange(FABRICATED))
    assert good.scores["fabrication"] < bad.scores["fabrication"]
    assert good.decision.action is Action.ALLOW
    assert bad.decision.action.severity >= Action.REGENERATE.severity
    assert bad.flagged_claims
    assert any("1962" in u or "Oren Quist" in u for c in bad.flagged_claims for u in c.unsupported)
    (det,) = bad.detectors
    assert det.detector == "grounding-heuristic"
    assert det.calibrated is False
    assert [r.request_id for r in sink.records] == [good.request_id, bad.request_id]
    assert sink.records[0].response is None  # no raw text unless asked
    assert sink.records[0].response_hash is not None


def test_bundle_guard_matches_the_detector(grounding_bundle):
    path, result = grounding_bundle
    guard = ScopeGuard.from_bundle(path)
    report = guard.assess(_exchange(FABRICATED))
    detector = result.bundle["fabrication"]
    expected = detector.score(
        grounding=GroundingDetector().check(
            FABRICATED, [CONTEXT], question="Tell me about the harbour of Mossbay."
        )
    )
    assert report.scores["fabrication"] == pytest.approx(expected.probability)
    rule = guard.policy.rules["fabrication"]
    assert rule.regenerate == pytest.approx(detector.threshold)
    assert report.versions["bundle"]
    assert set(report.timings_ms) == {"grounding", "read", "detectors", "total"}


def test_bundle_with_the_stand_in_reader(tmp_path):
    reader = Reader.miniature(["resid_post@3"])
    data = synthetic_rag(n_sources=12)
    result = calibrate(
        data,
        CalibrationSettings(risk="fabrication", n_bootstrap=10, n_splits=3),
        reader=reader,
        saes={"resid_post@3": load_sae(miniature_sae_path())},
        grounding=GroundingDetector(),
        progress=False,
    )
    result.bundle.save(tmp_path)
    guard = ScopeGuard.from_bundle(tmp_path)  # loads the miniature reader the bundle names
    assert guard.reader is not None
    assert guard.reader.fingerprint == reader.fingerprint
    report = guard.assess(_exchange(GROUNDED))
    assert report.stand_in is True
    assert {d.detector for d in report.detectors} == {"fabrication", "fabrication-raw"}
    primary = next(d for d in report.detectors if d.detector == "fabrication")
    assert report.scores == {"fabrication": primary.probability}
    assert primary.token_risk is not None
    batch = guard.assess_batch([_exchange(GROUNDED), _exchange(FABRICATED)])
    assert batch[0].scores["fabrication"] == pytest.approx(report.scores["fabrication"], rel=1e-5)


def test_bundle_for_another_reader_is_refused(tmp_path, miniature_dir):
    import torch

    reader = Reader.miniature(["resid_post@3"])
    result = calibrate(
        synthetic_rag(n_sources=12),
        CalibrationSettings(risk="fabrication", n_bootstrap=10, n_splits=3),
        reader=reader,
        saes={"resid_post@3": load_sae(miniature_sae_path())},
        progress=False,
    )
    result.bundle.save(tmp_path)
    other = Reader.from_pretrained(miniature_dir, ["resid_post@3"], dtype="float32")
    with torch.no_grad():
        other.layers[1].mlp.down_proj.weight.mul_(2.0)
    other.__dict__.pop("_digests", None)
    with pytest.raises(ArtifactError, match="fitted with reader"):
        ScopeGuard.from_bundle(tmp_path, reader=other)


class Exploding:
    name = "exploding"
    risk = "fabrication"
    threshold = 0.5
    needs_reader = False
    needs_grounding = True
    sites = ()
    blocks = ()

    def score(self, *args, **kwargs):
        msg = "boom"
        raise RuntimeError(msg)


@pytest.mark.parametrize(("mode", "action"), [("open", Action.ALLOW), ("closed", Action.FALLBACK)])
def test_failure_modes(mode, action):
    sink = MemorySink()
    guard = ScopeGuard(detectors=[Exploding()], failure_mode=mode, risk_log=sink)
    report = guard.assess(_exchange(GROUNDED))
    assert report.decision.action is action
    assert report.error == "RuntimeError: boom"
    assert guard.stats.failures == 1
    assert sink.records[0].error == "RuntimeError: boom"
    with pytest.raises(RuntimeError, match="boom"):
        ScopeGuard(detectors=[Exploding()], raise_errors=True).assess(_exchange(GROUNDED))


class NotANumber(Exploding):
    """A primary detector that returns a NaN probability instead of raising."""

    name = "fabrication"

    def score(self, *args, **kwargs):
        nan = float("nan")
        return ProbeScore(self.name, self.risk, nan, logit=nan, threshold=0.5, flagged=False)


@pytest.mark.parametrize(("mode", "action"), [("open", Action.ALLOW), ("closed", Action.FALLBACK)])
def test_a_nan_score_is_a_guard_failure(mode, action):
    sink = MemorySink()
    guard = ScopeGuard(detectors=[NotANumber()], failure_mode=mode, risk_log=sink)
    report = guard.assess(_exchange(FABRICATED))
    assert report.decision.action is action
    assert report.error is not None
    assert report.error.startswith("InputError: risk scores must be finite")
    assert guard.stats.failures == 1
    assert sink.records[0].error == report.error


def test_batch_isolates_a_failing_exchange(grounding_bundle):
    path, _ = grounding_bundle
    guard = ScopeGuard.from_bundle(path)
    original = guard.grounding.check

    def flaky(response, contexts, question=None):
        if "poison" in response:
            msg = "bad input inside the detector"
            raise ValueError(msg)
        return original(response, contexts, question=question)

    guard.grounding.check = flaky
    reports = guard.assess_batch([_exchange(GROUNDED), _exchange("poison"), _exchange(FABRICATED)])
    assert [r.error is None for r in reports] == [True, False, True]
    assert reports[0].scores["fabrication"] < reports[2].scores["fabrication"]


def test_empty_and_whitespace_answers_are_allowed_with_a_reason():
    guard = ScopeGuard()
    for text in ("", "   \n"):
        report = guard.assess(_exchange(text))
        assert report.decision.action is Action.ALLOW
        assert report.decision.reasons == ["empty response: nothing to assess"]
        assert report.scores == {}


def test_no_contexts_and_bad_exchanges():
    guard = ScopeGuard()
    report = guard.assess({"question": "q", "response": "Paris has 3 million people."})
    assert report.scores["fabrication"] > 0.5  # nothing retrieved: nothing supports it
    with pytest.raises(InputError, match="response"):
        guard.assess({"question": "q"})
    with pytest.raises(InputError, match="response"):
        guard.assess({"response": 42})
    with pytest.raises(InputError, match="mapping"):
        guard.assess("just text")  # type: ignore[arg-type]


def test_log_text_opt_in_and_log_failures_never_raise():
    sink = MemorySink()
    ScopeGuard(risk_log=sink, log_text=True).assess(_exchange(GROUNDED))
    assert sink.records[0].response == GROUNDED
    assert sink.records[0].contexts == [CONTEXT]

    class Broken(MemorySink):
        def write(self, record):
            msg = "disk full"
            raise OSError(msg)

    guard = ScopeGuard(risk_log=Broken())
    assert guard.assess(_exchange(GROUNDED)).decision.action is Action.ALLOW
    assert guard.stats.log_failures == 1


def test_configuration_errors():
    with pytest.raises(ConfigError, match="failure_mode"):
        ScopeGuard(failure_mode="sideways")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="prompt_mode"):
        ScopeGuard(prompt_mode="guess")  # type: ignore[arg-type]


def test_monitor_policy_and_stats():
    guard = ScopeGuard(policy=Policy.monitor_only())
    report = guard.assess(_exchange(FABRICATED))
    assert report.decision.action is Action.ALLOW
    assert report.scores["fabrication"] > 0.5
    assert guard.stats.assessed == 1
    assert guard.stats.actions["allow"] == 1


async def _aassess(guard):
    return await guard.aassess(_exchange(FABRICATED))


def test_async_assess():
    import asyncio

    report = asyncio.run(_aassess(ScopeGuard()))
    assert report.scores["fabrication"] > 0.5


def test_bundle_with_other_grounding_features_is_refused_at_load(grounding_bundle, tmp_path):
    from detectors.bundle import DetectorBundle

    _, result = grounding_bundle
    detector = result.bundle["fabrication"]
    (block,) = detector.blocks
    stale = block.model_copy(update={"names": [f"old_{n}" for n in block.names], "version": 0})
    detector_v0 = type(detector)(
        name=detector.name,
        risk=detector.risk,
        blocks=[stale],
        coef=detector.coef,
        intercept=detector.intercept,
        calibration=detector.calibration,
        threshold=detector.threshold,
    )
    DetectorBundle([detector_v0]).save(tmp_path)
    with pytest.raises(ArtifactError, match="recalibrate"):
        ScopeGuard.from_bundle(tmp_path)
