"""The guard's boundary: odd text is scored (cut and cleaned), bad ``meta`` is refused."""

from __future__ import annotations

import math

import pytest

from detectors.grounding import GroundingConfig, GroundingDetector
from detectors.probe import ProbeScore
from scope_guard.errors import ConfigError, InputError
from scope_guard.guard import ScopeGuard
from scope_guard.guard_inputs import InputLimits, prepare_exchange
from scope_guard.reader import Reader
from scope_guard.types import Exchange

CONTEXTS = ["A ticket costs 5 euros."]
SURROGATE = "A ticket costs 7.20 euros.\ud800"


class ReadingDetector:
    """A detector that reads activations: its score is the mean activation of the reading, so
    it fails exactly when the reader cannot read the text."""

    name = risk = "fabrication"
    threshold = 0.5
    needs_reader = True
    needs_grounding = False
    blocks = ()

    def __init__(self, reader):
        self.sites = tuple(reader.sites)
        self.read = []

    def score(self, reading, grounding, **kwargs):
        self.read.append(reading)
        value = float(next(iter(reading.activations.values())).float().abs().mean())
        p = 1 / (1 + math.exp(-value))
        return ProbeScore(self.name, self.risk, p, logit=value, threshold=0.5, flagged=p >= 0.5)


@pytest.fixture(scope="module")
def reader():
    return Reader.miniature(["resid_post@3"])


def test_a_lone_surrogate_is_scored_without_a_reader():
    report = ScopeGuard().assess({"contexts": CONTEXTS, "response": SURROGATE})
    assert report.error is None
    assert "fabrication" in report.scores


def test_a_lone_surrogate_is_scored_by_a_guard_with_a_reader(reader):
    detector = ReadingDetector(reader)
    guard = ScopeGuard(detectors=[detector], reader=reader)
    for text in (SURROGATE, "\udc80" * 5, "x\ud83d\ude00y\ud83d"):
        for field in ("response", "question", "contexts"):
            exchange = {"contexts": CONTEXTS, "response": "It costs 5 euros.", field: text}
            if field == "contexts":
                exchange["contexts"] = [text]
            report = guard.assess(exchange)
            assert report.error is None, (field, text, report.error)
            assert "fabrication" in report.scores
    observed = ScopeGuard(detectors=[detector], reader=reader, prompt_mode="observed")
    report = observed.assess({"prompt": "P\udfff", "response": SURROGATE})
    assert report.error is None


def test_over_long_inputs_are_cut_scored_and_flagged():
    # A grounding check with small limits stands for the default one (200,000 characters of
    # response, 5 M of contexts) at a test's cost: inputs past its limits used to fail open.
    small = GroundingDetector(config=GroundingConfig(max_response_chars=2_000))
    guard = ScopeGuard(grounding=small)
    assert guard.input_limits.response_chars == guard.input_limits.question_chars == 2_000
    long_response = "A ticket costs 7.20 euros. " * 100  # 2,700 characters
    report = guard.assess({"contexts": CONTEXTS, "response": long_response})
    assert report.error is None
    assert report.truncated == {"response": len(long_response)}
    assert report.scores["fabrication"] > 0.5  # the start it kept is unsupported
    report = guard.assess({"question": "q" * 3_000, "contexts": CONTEXTS, "response": "It is 5."})
    assert (report.error, report.truncated) == (None, {"question": 3_000})


def test_default_limits_cut_what_the_grounding_check_refuses():
    guard = ScopeGuard()
    limits = guard.input_limits
    config = guard.grounding.config
    assert limits.response_chars <= config.max_response_chars
    assert limits.question_chars <= config.max_response_chars
    assert limits.context_chars <= config.max_context_chars
    exchange = Exchange(
        question="q" * 300_000,
        contexts=["c" * 1_500_000] * 4,
        prompt="p" * 500_000,
        response="r" * 250_000 + "\ud800",
    )
    prepared, truncated = prepare_exchange(exchange, limits)
    assert truncated == {
        "response": 250_001,
        "question": 300_000,
        "prompt": 500_000,
        "contexts": 6_000_000,
    }
    assert prepared.response == "r" * limits.response_chars  # the start is kept
    assert prepared.prompt == "p" * limits.prompt_chars  # the end is kept
    assert [len(c) for c in prepared.contexts] == [1_500_000, 500_000]
    assert sum(map(len, prepared.contexts)) == limits.context_chars
    tail, _ = prepare_exchange(exchange.model_copy(update={"response": "ok\ud800"}), limits)
    assert tail.response == "ok\ufffd"  # cleaned one for one: offsets unchanged


def test_the_cut_is_recorded_and_limits_are_settable(tmp_path):
    from scope_guard.risklog import read_risk_log

    limits = InputLimits(response_chars=50, prompt_chars=10, contexts=1)
    with ScopeGuard(risk_log=tmp_path / "r.jsonl", input_limits=limits) as guard:
        report = guard.assess({"contexts": ["a", "b"], "prompt": "p" * 11, "response": "y" * 51})
    assert report.truncated == {"response": 51, "prompt": 11, "contexts": 2}
    (record,) = read_risk_log(tmp_path / "r.jsonl").records()
    assert record.truncated == report.truncated
    assert record.n_contexts == 2  # the record describes what the caller gave
    with pytest.raises(ConfigError, match="response_chars"):
        InputLimits(response_chars=0)


def test_the_reader_reads_the_kept_start_of_a_long_response(reader):
    detector = ReadingDetector(reader)
    limits = InputLimits(response_chars=40)
    guard = ScopeGuard(detectors=[detector], reader=reader, input_limits=limits)
    report = guard.assess({"contexts": CONTEXTS, "response": "word " * 1_000})
    assert report.error is None
    assert report.truncated == {"response": 5_000}
    assert detector.read[-1].response_truncated is False  # 40 characters fit the reader


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({"user": object()}, r"meta\['user'\] is of type object"),
        ({"x": math.nan}, "not a finite number"),
        ({"x": [1, math.inf]}, r"meta\['x'\]\[1\] is inf"),
        ({"x": 1 << 70}, "beyond 64 bits"),
        ({"x": {1: "a"}}, "key of type int"),
        ({"x": b"bytes"}, "of type bytes"),
        ({"x": {"y": {"z": [[[[[[[1]]]]]]]}}}, "deeper than 8"),
        ({f"k{i}": i for i in range(1_001)}, "more than 1000 values"),
        ({"x": "a" * 70_000}, "longer than 65536"),
        ({"x": {1, 2}}, "of type set"),
    ],
)
def test_meta_that_is_not_bounded_json_is_refused(meta, match):
    guard = ScopeGuard()
    with pytest.raises(InputError, match=match):
        guard.assess({"response": "Fine.", "meta": meta})
    with pytest.raises(InputError, match=match):  # an Exchange object is checked the same way
        guard.assess(Exchange.model_construct(response="Fine.", meta=meta, contexts=[]))


def test_valid_meta_is_logged_as_given():
    records = []

    class Sink:
        def write(self, record):
            records.append(record)

        def close(self):
            pass

    meta = {"user": "u1", "n": 3, "score": 0.5, "ok": True, "none": None, "tags": ["a", {"b": 1}]}
    report = ScopeGuard(risk_log=Sink()).assess({"response": "Fine.", "meta": meta})
    assert report.error is None
    assert records[0].meta == meta
