"""The report renderer: files, tables, escaping, inlined figures, NaN slices, determinism."""

from __future__ import annotations

import base64
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from calibration.metrics import Interval, Metrics
from calibration.report import render_html, render_markdown, write_report
from calibration.report_model import DetectorEvaluation, EvaluationReport, LatentWeight
from calibration.report_plots import figure_names, render_figures
from scope_guard.errors import InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAN = math.nan
NEURONPEDIA = "https://www.neuronpedia.org/gemma-2-2b/20-gemmascope-res-16k/1234"
INJECTED = "<script>alert(1)</script>.jsonl"


def interval(value: float, half_width: float = 0.02) -> Interval:
    return Interval(value=value, low=value - half_width, high=value + half_width)


def metrics(auroc: float, *, n: int = 200, n_positive: int = 60, threshold: float = 0.4) -> Metrics:
    """Every metric at ``auroc`` +- 0.02 except a few fixed ones, so rows are easy to find."""
    return Metrics(
        n=n,
        n_positive=n_positive,
        threshold=threshold,
        auroc=interval(auroc),
        auprc=interval(0.7),
        precision=interval(0.6),
        recall=interval(0.8),
        f1=interval(0.65),
        ece=interval(0.031, 0.01),
        brier=interval(0.12, 0.01),
        tpr_at_1_fpr=interval(0.2),
        tpr_at_5_fpr=interval(0.4),
        n_groups=150,
        n_bootstrap=1000,
    )


def nan_metrics() -> Metrics:
    """A 3-row slice with no positives: AUROC undefined, precision with a value but no interval."""
    nan = Interval(value=NAN, low=NAN, high=NAN)
    return Metrics(
        n=3,
        n_positive=0,
        threshold=0.4,
        auroc=nan,
        auprc=nan,
        precision=Interval(value=0.5, low=NAN, high=NAN),
        recall=nan,
        f1=nan,
        ece=interval(0.1),
        brier=interval(0.1),
        tpr_at_1_fpr=nan,
        tpr_at_5_fpr=nan,
    )


def scored_rows(seed: int, n: int = 200) -> tuple[list[int], list[float]]:
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.0, 1.0, n)
    y = (rng.uniform(0.0, 1.0, n) < probs).astype(int)
    return y.tolist(), probs.round(6).tolist()


def evaluation(detector: str, kind: str, auroc: float, **overrides: object) -> DetectorEvaluation:
    y, probs = scored_rows(seed=len(detector))
    fields: dict[str, object] = {
        "detector": detector,
        "risk": "fabrication",
        "kind": kind,
        "metrics": metrics(auroc),
        "by_field": {"task_type": {"QA": metrics(auroc - 0.05), "Summary": nan_metrics()}},
        "calibration_method": "sigmoid",
        "held_out_log_loss": {"sigmoid": 0.41, "isotonic": 0.43},
        "n_features": 16384,
        "y": y,
        "probs": probs,
    }
    fields.update(overrides)
    return DetectorEvaluation.model_validate(fields)


def make_report(*evaluations: DetectorEvaluation, notes: tuple[str, ...] = ()) -> EvaluationReport:
    if not evaluations:
        sae = evaluation(
            "fabrication",
            "sae",
            0.912,
            n_selected=2,
            top_latents=[
                LatentWeight(
                    site="blocks.20.hook_resid_post",
                    latent=1234,
                    pooling="max",
                    weight=1.25,
                    url=NEURONPEDIA,
                ),
                LatentWeight(
                    site="blocks.20.hook_resid_post",
                    latent=77,
                    pooling="mean",
                    weight=-0.5,
                    url="javascript:alert(2)",
                ),
            ],
        )
        # The raw baseline comes first on purpose: the report must still put the SAE probe first.
        evaluations = (evaluation("fabrication-raw", "raw", 0.871), sae)
        notes = notes or ("reader is a stand-in: latents mean nothing",)
    return EvaluationReport(
        title="fabrication | RAGTruth",
        created="2025-01-01T00:00:00+00:00",
        dataset={
            "source": INJECTED,
            "format": "ragtruth",
            "n": 1000,
            "class_balance": {"fabrication": {"n": 1000, "positive": 300, "negative": 700}},
            "content_hash": "sha256:abc123",
        },
        split={"method": "held-out groups", "n_test": 200},
        evaluations=list(evaluations),
        notes=list(notes),
    )


def test_write_report_writes_every_file(tmp_path: Path) -> None:
    paths = write_report(make_report(), tmp_path / "out")

    assert paths.markdown == tmp_path / "out" / "report.md"
    for path in (paths.markdown, paths.html, paths.json, *paths.images):
        assert path.is_file()
    assert [p.name for p in paths.images] == [
        "fabrication-raw-reliability.png",
        "fabrication-raw-histogram.png",
        "fabrication-reliability.png",
        "fabrication-histogram.png",
    ]
    assert {p.parent for p in paths.images} == {tmp_path / "out" / "images"}


def test_report_json_round_trips_with_nan_slices(tmp_path: Path) -> None:
    report = make_report()
    paths = write_report(report, tmp_path)

    loaded = EvaluationReport.model_validate_json(paths.json.read_text(encoding="utf-8"))
    summary = loaded.evaluations[0].by_field["task_type"]["Summary"]
    assert math.isnan(summary.auroc.value)
    assert loaded.evaluations[0].detector == "fabrication-raw"
    assert loaded.evaluations[1].top_latents == report.evaluations[1].top_latents


def test_markdown_compares_sae_probe_beside_raw_baseline(tmp_path: Path) -> None:
    markdown = write_report(make_report(), tmp_path).markdown.read_text(encoding="utf-8")

    assert "| Detector | Risk | Kind | n (pos.) | AUROC | AUPRC | F1 |" in markdown
    sae_row = "| fabrication | fabrication | sae | 200 (60) | 0.912 [0.892, 0.932] |"
    raw_row = "| fabrication-raw | fabrication | raw | 200 (60) | 0.871 [0.851, 0.891] |"
    assert sae_row in markdown
    assert raw_row in markdown
    assert markdown.index(sae_row) < markdown.index(raw_row)
    assert "| 0.400 | f1 | sigmoid |" in markdown  # threshold, rule, calibration
    assert "- Calibration: sigmoid (held-out log loss: sigmoid 0.410, isotonic 0.430)." in markdown
    assert "- Intervals: 95% bootstrap, 1000 resamples of 150 groups." in markdown
    assert "fabrication \\| RAGTruth" not in markdown.splitlines()[0]  # the title is not a cell
    assert "![fabrication: reliability diagram](images/fabrication-reliability.png)" in markdown


def test_notes_come_first_and_dataset_is_summarised(tmp_path: Path) -> None:
    markdown = write_report(make_report(), tmp_path).markdown.read_text(encoding="utf-8")

    note = "> **Note:** reader is a stand-in: latents mean nothing"
    assert note in markdown
    assert markdown.index(note) < markdown.index("## Dataset") < markdown.index("## Detectors")
    assert "| class_balance | fabrication: n=1000, positive=300, negative=700 |" in markdown
    assert "| content_hash | sha256:abc123 |" in markdown
    assert "| reader | none (grounding features only) |" in markdown


def test_nan_slice_renders_as_na(tmp_path: Path) -> None:
    paths = write_report(make_report(), tmp_path)
    markdown = paths.markdown.read_text(encoding="utf-8")

    assert (
        "| Summary | fabrication | 3 (0) | n/a | n/a | n/a | 0.500 [n/a, n/a] | n/a |" in markdown
    )
    assert "| QA | fabrication | 200 (60) | 0.862 [0.842, 0.882] |" in markdown
    for text in (markdown, paths.html.read_text(encoding="utf-8")):
        assert not re.search(r"\bnan\b", text, flags=re.IGNORECASE)


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    paths = write_report(make_report(), tmp_path)
    page = paths.html.read_text(encoding="utf-8")

    assert page.startswith("<!DOCTYPE html>")
    assert 'src="http' not in page
    assert "<link" not in page
    assert "<script" not in page
    # escaped, whatever line-break opportunities (<wbr>) the renderer puts in long names
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jsonl" in page.replace("<wbr>", "")
    assert "<title>fabrication | RAGTruth</title>" in page
    inlined = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert sorted(base64.b64decode(data) for data in inlined) == sorted(
        p.read_bytes() for p in paths.images
    )


def test_markdown_neutralises_injected_html(tmp_path: Path) -> None:
    markdown = write_report(make_report(), tmp_path).markdown.read_text(encoding="utf-8")

    assert "<script>" not in markdown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jsonl" in markdown


def test_top_latents_link_to_neuronpedia_and_drop_unsafe_urls(tmp_path: Path) -> None:
    paths = write_report(make_report(), tmp_path)
    markdown = paths.markdown.read_text(encoding="utf-8")
    page = paths.html.read_text(encoding="utf-8")

    link = f"[blocks.20.hook_resid_post/1234]({NEURONPEDIA})"
    assert f"| 1 | blocks.20.hook_resid_post | 1234 | max | +1.2500 | {link} |" in markdown
    assert "| 2 | blocks.20.hook_resid_post | 77 | mean | -0.5000 | none |" in markdown
    assert f'<a href="{NEURONPEDIA}" rel="noopener">blocks.20.hook_resid_post/1234</a>' in page
    assert "javascript:" not in markdown
    assert "javascript:" not in page
    assert page.count("<h3>Top latents</h3>") == 1  # the raw baseline has none


def test_pngs_decode_and_are_deterministic(tmp_path: Path) -> None:
    from matplotlib.image import imread

    first = write_report(make_report(), tmp_path / "a")
    second = write_report(make_report(), tmp_path / "b")

    for a, b in zip(first.images, second.images, strict=True):
        data = a.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert data == b.read_bytes()
        assert imread(a).shape[:2] == (420, 500)  # 5 x 4.2 inches at 100 dpi


def test_missing_raw_baseline_is_flagged() -> None:
    report = make_report(evaluation("fabrication", "sae+grounding", 0.9))
    markdown = render_markdown(report, {})

    assert "> **Note:** fabrication: the SAE probe has no raw-activation baseline" in markdown
    assert "![" not in markdown  # no image names given, no figures linked


def test_raw_baseline_with_grounding_counts_as_baseline() -> None:
    report = make_report(
        evaluation("fabrication", "sae+grounding", 0.9),
        evaluation("fabrication-raw", "raw+grounding", 0.85),
    )

    page = render_html(report, {})
    assert "no raw-activation baseline" not in page  # no warning
    assert "The raw-activation baseline fabrication-raw reaches AUROC 0.85" in page  # the reading


def test_detector_without_scored_rows_has_no_figures(tmp_path: Path) -> None:
    report = make_report(evaluation("fabrication", "grounding", 0.8, y=[], probs=[]))
    paths = write_report(report, tmp_path)

    assert paths.images == ()
    assert "data:image/png" not in paths.html.read_text(encoding="utf-8")


def test_figure_names_are_safe_and_unique() -> None:
    report = make_report(
        evaluation("fabrication", "sae", 0.9), evaluation("Fabrication!", "raw", 0.8)
    )
    names = figure_names(report)

    assert [pair.reliability for pair in names if pair] == [
        "fabrication-reliability.png",
        "fabrication-1-reliability.png",
    ]


def test_mismatched_scores_are_an_input_error() -> None:
    report = make_report(evaluation("fabrication", "sae", 0.9, y=[0, 1, 1], probs=[0.2, 0.7]))

    with pytest.raises(InputError, match="3 labels but 2 probabilities"):
        render_figures(report)


def test_importing_the_renderer_does_not_import_matplotlib() -> None:
    code = "import sys, calibration.report; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
