"""Per-token risk as character spans of the response: where it comes from (a detector's token
probe, or the detector itself), that the spans index the response text, the risky runs, the
RiskReport, and what the risk log keeps of them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from miniature_sae import miniature_sae

from detectors.calibration_map import CalibrationMap
from detectors.feature_blocks import BlockKind, FeatureBlock, assemble
from detectors.probe import TOKEN_PROBE_THRESHOLD, ProbeDetector
from detectors.risk_spans import token_spans
from scope_guard.guard import ScopeGuard
from scope_guard.reader import Reader
from scope_guard.risklog.record import RiskRecord
from scope_guard.sae.jumprelu import JumpReLUSAE
from scope_guard.sites import Site
from scope_guard.types import Exchange

SITE = Site.parse("resid_post@3")
LATENTS = [7, 2, 40, 13]
PROMPT = "Context: the bridge opened in 1901. Question: when did it open?"
RESPONSES = [
    "It opened in 1901, according to the passage.",
    "Die Brücke öffnete 1901 — laut   dem Text.\n\nJa!",
    "桥于1901年开放。🌉 The bridge​ opened (zero-width space) e\u0301 in 1901.",
    "",
]


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader.miniature([SITE])


@pytest.fixture(scope="module")
def sae() -> JumpReLUSAE:
    return miniature_sae(SITE)


def sae_detector(sae: JumpReLUSAE, threshold: float = 0.5) -> ProbeDetector:
    return ProbeDetector(
        name="fabrication",
        risk="fabrication",
        blocks=[FeatureBlock(kind=BlockKind.SAE, site=str(SITE), latent_ids=LATENTS)],
        coef=np.array([0.5, -0.25, 0.0, 1.0, 0.1, 0.2, -0.3, 0.0]),
        intercept=-1.0,
        calibration=CalibrationMap(method="sigmoid", a=0.8, b=0.1),
        threshold=threshold,
        saes={SITE: sae.narrow(LATENTS)},
    )


def token_block(seed: int, d: int = 64) -> FeatureBlock:
    rng = np.random.default_rng(seed)
    return FeatureBlock(
        kind=BlockKind.TOKENS,
        site=str(SITE),
        probe_weights=rng.normal(size=d).tolist(),
        probe_mean=rng.normal(size=d).tolist(),
        probe_scale=rng.uniform(0.5, 2.0, size=d).tolist(),
        probe_bias=-0.2,
    )


def token_detector(*blocks: FeatureBlock) -> ProbeDetector:
    return ProbeDetector(
        name="sycophancy",
        risk="sycophancy",
        blocks=list(blocks),
        coef=np.tile([1.0, 0.5, 0.5, 0.25], len(blocks)),
        intercept=-1.0,
        calibration=CalibrationMap(method="sigmoid", a=1.0, b=0.0),
        threshold=0.9,
    )


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def hand_token_scores(block: FeatureBlock, acts: np.ndarray) -> np.ndarray:
    x = (acts.astype(np.float64) - np.array(block.probe_mean)) / np.array(block.probe_scale)
    return sigmoid(x @ np.array(block.probe_weights) + block.probe_bias)


@pytest.mark.parametrize("response", RESPONSES)
def test_spans_index_the_response_text(reader, sae, response):
    reading = reader.read(PROMPT, response)
    score = sae_detector(sae).score(reading)
    assert score.token_risk is not None
    assert score.token_spans is not None
    assert len(score.token_risk) == reading.n_tokens
    wide = [
        (tok, risk)
        for tok, (a, b), risk in zip(reading.tokens, reading.offsets, score.token_risk, strict=True)
        if b > a
    ]
    assert len(score.token_spans) == len(wide)
    for (start, end, span_risk), (token, risk) in zip(score.token_spans, wide, strict=True):
        assert response[start:end] == token
        assert span_risk == risk
    # the spans cover the response text, in order
    if response.strip():
        assert score.token_spans[0][0] <= len(response) - len(response.lstrip()) + 1
        assert all(
            a[0] <= b[0] for a, b in zip(score.token_spans, score.token_spans[1:], strict=False)
        )


def test_without_a_token_probe_the_risk_is_the_detectors_on_each_token(reader, sae):
    det = sae_detector(sae, threshold=0.3)
    reading = reader.read(PROMPT, RESPONSES[0])
    score = det.score(reading)
    rows = assemble(det.blocks, reading=reading, saes=det.saes, per_token=True)
    np.testing.assert_allclose(score.token_risk, det.predict_proba(rows))
    assert score.token_risk_source == "detector"
    assert score.span_threshold == 0.3
    assert score.risky_spans == reference_runs(score.token_spans, 0.3)


def test_with_a_token_probe_the_risk_is_the_probes_own_probability(reader):
    block = token_block(seed=1)
    det = token_detector(block)
    reading = reader.read(PROMPT, RESPONSES[1])
    score = det.score(reading)
    expected = hand_token_scores(block, reading.activation(SITE).float().numpy())
    np.testing.assert_allclose(score.token_risk, expected, rtol=1e-9)
    assert score.token_risk_source == "token_probe"
    assert score.span_threshold == TOKEN_PROBE_THRESHOLD
    # not the combiner's per-token proxy, which is another number
    rows = assemble(det.blocks, reading=reading, per_token=True)
    assert not np.allclose(score.token_risk, det.predict_proba(rows))
    # risky spans: the runs of tokens at or above 0.5, by hand
    risky = [(a, b) for a, b, r in score.token_spans if r >= 0.5]
    assert risky, "the seed gives some risky tokens"
    assert score.risky_spans == reference_runs(score.token_spans, 0.5)
    covered = {c for a, b, _ in score.risky_spans for c in range(a, b)}
    assert all(c in covered for a, b in risky for c in range(a, b))


def test_two_token_probes_average(reader):
    a, b = token_block(seed=1), token_block(seed=2)
    reading = reader.read(PROMPT, RESPONSES[0])
    score = token_detector(a, b).score(reading)
    acts = reading.activation(SITE).float().numpy()
    expected = (hand_token_scores(a, acts) + hand_token_scores(b, acts)) / 2
    np.testing.assert_allclose(score.token_risk, expected, rtol=1e-9)


def test_no_per_token_no_spans(reader, sae):
    score = sae_detector(sae).score(reader.read(PROMPT, RESPONSES[0]), per_token=False)
    assert score.token_risk is None
    assert score.token_spans is None
    assert score.risky_spans == ()
    assert score.span_threshold is None


def reference_runs(spans, threshold):
    """The risky runs, one token at a time (what the vectorized version must equal)."""
    out: list[list[float]] = []
    previous_hot, previous_end = False, 0
    for start, end, risk in spans:
        hot = risk >= threshold
        if hot and previous_hot and start <= previous_end + 1:
            out[-1][1] = max(out[-1][1], end)
            out[-1][2] = max(out[-1][2], risk)
        elif hot:
            out.append([start, end, risk])
        previous_hot, previous_end = hot, end
    return tuple(tuple(run) for run in out)


def test_risky_runs_by_hand():
    offsets = [(0, 3), (3, 7), (8, 12), (12, 12), (13, 15), (16, 20), (20, 25)]
    spans = token_spans(offsets, [0.9, 0.2, 0.6, 0.99, 0.7, 0.1, 0.8], 0.5)
    assert (12, 12, 0.99) not in spans.tokens  # zero-width tokens carry no characters
    assert len(spans.tokens) == 6
    assert spans.risky == ((0, 3, 0.9), (8, 15, 0.7), (20, 25, 0.8))  # 8-15: across a space
    assert token_spans(offsets, [0.9, 0.2, 0.6, 0.99, 0.7, 0.1, 0.8], 0.95).risky == ()
    assert token_spans([], [], 0.5) == ((), ())
    with pytest.raises(ValueError, match="2 token offsets but 1"):
        token_spans([(0, 1), (1, 2)], [0.5], 0.5)


@pytest.mark.parametrize("seed", range(20))
def test_risky_runs_equal_the_one_token_at_a_time_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 60))
    widths = rng.integers(0, 4, size=n)  # some zero-width tokens
    gaps = rng.integers(0, 3, size=n)  # 0: adjacent, 1: a space, 2: a break
    starts = np.cumsum(np.r_[0, (widths + gaps)[:-1]]) if n else np.zeros(0, int)
    offsets = [(int(a), int(a + w)) for a, w in zip(starts, widths, strict=True)]
    risks = rng.uniform(size=n).tolist()
    spans = token_spans(offsets, risks, 0.5)
    assert spans.tokens == tuple(
        (a, b, r) for (a, b), r in zip(offsets, risks, strict=True) if b > a
    )
    assert spans.risky == reference_runs(spans.tokens, 0.5)


# ------------------------------------------------------------------ the report and the log
@pytest.fixture
def guard(reader, sae):
    return ScopeGuard(detectors=[sae_detector(sae, threshold=0.0)], reader=reader)


def test_the_risk_report_carries_spans_of_the_callers_response(guard):
    response = "It opened in 1901 🌉, according to the passage."
    exchange = Exchange(question="When?", contexts=["It opened in 1901."], response=response)
    report = guard.assess(exchange)
    (score,) = report.detectors
    assert score.token_spans is not None
    assert score.token_risk is not None
    assert all(0 <= start < end <= len(response) for start, end, _ in score.token_spans)
    covered = {c for start, end, _ in score.token_spans for c in range(start, end)}
    assert {i for i, ch in enumerate(response) if not ch.isspace()} <= covered
    # threshold 0: every token is risky, and the runs cover the whole response
    assert score.span_threshold == 0.0
    assert [(start, end) for start, end, _ in score.risky_spans] == [(0, len(response))]
    # the JSON a UI reads: [start, end, risk] triples
    dumped = json.loads(report.model_dump_json())["detectors"][0]
    assert dumped["token_spans"][0] == list(score.token_spans[0])
    assert score.token_risk_source == "detector"


@pytest.mark.parametrize("log_text", [False, True])
def test_the_risk_log_keeps_no_token_risk_and_risky_spans_only_with_log_text(guard, log_text):
    exchange = Exchange(question="When?", contexts=["It opened."], response=RESPONSES[0])
    report = guard.assess(exchange)
    explained = report.model_copy(
        update={
            "detectors": [
                d.model_copy(
                    update={
                        "top_latents": [
                            n.model_copy(update={"contexts": ["the [[bridge]] of"]})
                            for n in d.top_latents
                        ]
                    }
                )
                for d in report.detectors
            ]
        }
    )
    assert explained.detectors[0].top_latents
    record = RiskRecord.from_report(exchange, explained, log_text=log_text)
    (entry,) = record.detectors
    assert "token_risk" not in entry
    assert "token_spans" not in entry
    assert all("contexts" not in note for note in entry["top_latents"])
    assert ("risky_spans" in entry) is log_text
    if log_text:
        assert entry["risky_spans"] == [list(s) for s in report.detectors[0].risky_spans]
        assert entry["risky_spans"]
    assert "bridge" not in record.model_dump_json()
