"""What a report explains: latents by their top contexts (or Neuronpedia), lookback heads,
token probes, and a few responses with their per-token risk, escaped in both formats."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from calibration.metrics import Interval, Metrics
from calibration.report import render_html, render_markdown, write_report
from calibration.report_examples import MAX_EXAMPLES, check_examples, pick_rows
from calibration.report_model import (
    DetectorEvaluation,
    EvaluationReport,
    HeadWeight,
    LatentWeight,
    TokenExample,
    TokenProbeFacts,
)
from scope_guard.errors import ConfigError

NEURONPEDIA = "https://www.neuronpedia.org/gemma-2-2b/20-gemmascope-res-16k/1234"
RESPONSE = "The <b>bridge</b> was built by *Oren* | Quist in 1962."


def _metrics() -> Metrics:
    iv = Interval(value=0.8, low=0.7, high=0.9)
    return Metrics(
        n=40,
        n_positive=20,
        threshold=0.42,
        **dict.fromkeys(("auroc", "auprc", "precision", "recall", "f1", "ece", "brier"), iv),
        tpr_at_1_fpr=iv,
        tpr_at_5_fpr=iv,
    )


def _spans(text: str, risky_words: set[str]) -> list[tuple[int, int, float]]:
    """One span per word, risk 0.9 for ``risky_words`` and 0.1 for the rest."""
    return [
        (m.start(), m.end(), 0.9 if m.group() in risky_words else 0.1)
        for m in re.finditer(r"\S+", text)
    ]


def _example() -> TokenExample:
    spans = _spans(RESPONSE, {"*Oren*", "|", "Quist"})
    start = RESPONSE.index("*Oren*")
    end = RESPONSE.index("Quist") + len("Quist")
    return TokenExample(
        label=1,
        probability=0.93,
        why="the highest-scoring risky row",
        response=RESPONSE,
        spans=spans,
        risky=[(start, end, 0.9)],
        span_threshold=0.5,
        source="token_probe",
    )


def _report(**overrides: object) -> EvaluationReport:
    fields: dict[str, object] = {
        "detector": "fabrication",
        "risk": "fabrication",
        "kind": "sae+grounding",
        "metrics": _metrics(),
        "top_latents": [
            LatentWeight(
                site="resid_post@9", latent=1234, pooling="max", weight=1.5, url=NEURONPEDIA
            ),
            LatentWeight(
                site="resid_post@9",
                latent=77,
                pooling="mean",
                weight=-0.75,
                contexts=["the old [[bridge]] of", "<img src=x onerror=alert(1)> [[a]]"],
            ),
            LatentWeight(site="resid_post@9", latent=5, pooling="max", weight=0.25),
        ],
        "top_heads": [
            HeadWeight(layer=3, head=1, weight=0.5),
            HeadWeight(layer=0, head=2, weight=-0.25),
        ],
        "token_probes": [
            TokenProbeFacts(
                site="resid_post@9",
                width=640,
                weights={"max": 1.0, "top5_mean": 0.5, "frac_above_half": 0.0, "mean": -0.25},
            )
        ],
        "examples": [_example()],
    }
    fields.update(overrides)
    return EvaluationReport(
        title="t",
        created="2025-01-01T00:00:00+00:00",
        dataset={"source": "mine.jsonl", "n": 40},
        evaluations=[DetectorEvaluation.model_validate(fields)],
    )


def test_latents_show_neuronpedia_or_else_their_top_contexts():
    markdown = render_markdown(_report(), {})
    page = render_html(_report(), {})
    assert "| # | Site | Latent | Pooling | Weight | Neuronpedia / top contexts |" in markdown
    assert (
        f"| 1 | resid_post@9 | 1234 | max | +1.5000 | [resid_post@9/1234]({NEURONPEDIA}) |"
        in markdown
    )
    contexts = r"the old \[\[bridge\]\] of · &lt;img src=x onerror=alert(1)&gt; \[\[a\]\]"
    assert f"| 2 | resid_post@9 | 77 | mean | -0.7500 | {contexts} |" in markdown
    assert "| 3 | resid_post@9 | 5 | max | +0.2500 | none |" in markdown
    assert "<td>the old [[bridge]] of · &lt;img src=<wbr>x" in page
    assert "<img" not in page
    assert "<img" not in markdown


def test_lookback_heads_and_token_probes_are_shown():
    markdown = render_markdown(_report(), {})
    assert "### Top lookback heads" in markdown
    assert "| 1 | 3 | 1 | +0.5000 |" in markdown
    assert "| 2 | 0 | 2 | -0.2500 |" in markdown
    assert "### Token probes" in markdown
    assert "| Site | Width | Weight on max | Weight on top5_mean |" in markdown
    assert "| resid_post@9 | 640 | +1.0000 | +0.5000 | +0.0000 | -0.2500 |" in markdown


def test_per_token_risk_is_marked_in_markdown():
    markdown = render_markdown(_report(), {})
    assert "### Per-token risk" in markdown
    assert "the token probe's probability" in markdown
    caption = (
        "**the highest-scoring risky row: labeled risky, probability 0.930 (threshold 0.420)**"
    )
    assert caption in markdown
    quoted = (
        "> The &lt;b&gt;bridge&lt;/b&gt; was built by **⟦\\*Oren\\* \\| Quist⟧** (0.90) in 1962."
    )
    assert quoted in markdown
    assert "<b>" not in markdown


def test_per_token_risk_is_shaded_in_html():
    page = render_html(_report(), {})
    tokens = re.search(r'<p class="tokens">(.*?)</p>', page, re.S)
    assert tokens is not None
    body = tokens.group(1)
    risky = 'class="risky" style="background:rgba(214,39,40,0.59)" title="risk 0.900"'
    assert f"<span {risky}>Quist</span>" in body
    calm = 'style="background:rgba(214,39,40,0.07)" title="risk 0.100"'
    assert f"<span {calm}>&lt;b&gt;bridge&lt;/b&gt;</span>" in body
    assert "<b>" not in page
    # every character of the response is there, in order, once
    text = re.sub(r"<[^>]+>", "", body)
    assert text.replace("&lt;", "<").replace("&gt;", ">").replace("&#x27;", "'") == RESPONSE
    assert body.count('class="risky"') == 3


def test_no_examples_no_texts(tmp_path: Path):
    paths = write_report(_report(examples=[]), tmp_path)
    for path in (paths.markdown, paths.html, paths.json):
        text = path.read_text(encoding="utf-8")
        assert "Per-token risk" not in text
        assert "Quist" not in text


def test_overlapping_token_offsets_keep_the_text_once():
    """Byte tokens of one character share its offsets: the text must still appear once."""
    text = "a 🌉 b"
    spans = [(0, 1, 0.2), (2, 3, 0.9), (2, 3, 0.1), (4, 5, 0.3)]
    example = _example().model_copy(
        update={"response": text, "spans": spans, "risky": [(2, 3, 0.9)]}
    )
    page = render_html(_report(examples=[example]), {})
    body = re.search(r'<p class="tokens">(.*?)</p>', page, re.S)
    assert body is not None
    assert re.sub(r"<[^>]+>", "", body.group(1)) == text


def test_pick_rows_shows_hits_false_alarms_and_misses():
    y = np.array([0, 1, 0, 1, 1, 0])
    probs = np.array([0.9, 0.8, 0.1, 0.2, 0.95, 0.3])
    assert pick_rows(y, probs, 3) == [
        (4, "the highest-scoring risky row"),
        (0, "the highest-scoring safe row"),
        (3, "the lowest-scoring risky row"),
    ]
    assert [i for i, _ in pick_rows(y, probs, 5)] == [4, 0, 3, 1, 5]
    assert pick_rows(y, probs, 0) == []
    assert [i for i, _ in pick_rows(np.array([1, 1]), np.array([0.5, 0.7]), 3)] == [1, 0]


@pytest.mark.parametrize("n", [-1, MAX_EXAMPLES + 1, 2.5, True, "3"])
def test_the_number_of_examples_is_bounded(n):
    with pytest.raises(ConfigError, match="examples"):
        check_examples(n)  # type: ignore[arg-type]


def test_a_risky_run_of_spaces_marks_nothing_in_markdown():
    text = "a   b"
    example = _example().model_copy(
        update={"response": text, "spans": [(1, 4, 0.9)], "risky": [(1, 4, 0.9)]}
    )
    markdown = render_markdown(_report(examples=[example]), {})
    assert "⟦⟧" not in markdown
    assert "> a   b" in markdown


def test_a_context_cannot_become_a_markdown_image_or_link():
    hostile = ["![t](https://evil.example/beacon.png) [[x]]", "[click](javascript:alert(1))"]
    latent = LatentWeight(
        site="resid_post@9", latent=9, pooling="max", weight=1.0, contexts=hostile
    )
    markdown = render_markdown(_report(top_latents=[latent]), {})
    assert "](https://evil" not in markdown.replace("\\]", "")
    assert r"\!\[t\](https://evil.example/beacon.png)" in markdown
    assert r"\[click\](javascript:alert(1))" in markdown
