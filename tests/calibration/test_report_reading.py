"""The report's plain-language reading, its table layout, unlabeled risks, and "n/a" everywhere."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from test_report import evaluation, make_report, metrics, nan_metrics

from calibration.metrics import Interval, Metrics
from calibration.report import render_html, render_markdown, write_report
from calibration.report_reading import reading
from scope_guard.cli.report_output import print_summary

NAN = math.nan


def with_auroc(value: float, low: float, high: float) -> Metrics:
    return metrics(value).model_copy(update={"auroc": Interval(value=value, low=low, high=high)})


def test_a_strong_detector_is_read_from_its_figures() -> None:
    text = reading(make_report())
    assert text.startswith(
        "The fabrication detector (sae) separates fabricated from grounded responses well on "
        "200 rows (60 fabricated): AUROC 0.91 (95% interval 0.89 to 0.93)."
    )
    # recall 0.8 of 60 positives at precision 0.6: 80 flags of 200 rows
    assert (
        "At its threshold of 0.40 it flags 40% of the rows, finding 80% of the fabricated " in text
    )
    assert "with 60% of its flags right (precision)." in text
    assert "Its probabilities are well calibrated (ECE 0.031)." in text
    assert "The raw-activation baseline fabrication-raw reaches AUROC 0.87" in text
    assert "the SAE probe does better, beyond the intervals." in text
    assert "rough" not in text  # 60 and 140 rows per class: not a small sample


def test_weak_results_are_called_weak() -> None:
    weak = evaluation("sycophancy", "sae", 0.55, risk="sycophancy")
    weak = weak.model_copy(
        update={
            "metrics": with_auroc(0.55, 0.44, 0.66).model_copy(
                update={"ece": Interval(value=0.18, low=0.1, high=0.2)}
            )
        }
    )
    text = reading(make_report(weak))
    assert "barely separates sycophantic from non-sycophantic responses" in text
    assert "AUROC 0.55 (95% interval 0.44 to 0.66), an interval that includes chance (0.5)." in text
    assert "poorly calibrated (ECE 0.180): read them as a ranking, not as frequencies." in text


@pytest.mark.parametrize(
    ("auroc", "word"),
    [(0.95, "well"), (0.85, "fairly well"), (0.75, "moderately"), (0.65, "weakly")],
)
def test_the_wording_follows_auroc(auroc: float, word: str) -> None:
    det = evaluation("deception", "raw", auroc, risk="deception")
    assert f"separates deceptive from honest responses {word} on" in reading(make_report(det))


@pytest.mark.parametrize(
    ("n", "n_positive", "expected"),
    [
        (80, 12, "With only 12 fabricated rows, these figures are rough: read the intervals"),
        (50, 8, "With only 8 fabricated rows, these figures say little: at this size even the "),
        (200, 195, "With only 5 grounded rows, these figures say little"),
    ],
)
def test_a_small_sample_is_named(n: int, n_positive: int, expected: str) -> None:
    det = evaluation("fabrication", "grounding", 0.8)
    det = det.model_copy(update={"metrics": metrics(0.8, n=n, n_positive=n_positive)})
    text = reading(make_report(det))
    assert f"on {n} rows ({n_positive} fabricated)" in text
    assert expected in text


def test_an_unscorable_detector_says_so_and_nothing_else() -> None:
    det = evaluation("fabrication", "grounding", 0.8)
    det = det.model_copy(update={"metrics": nan_metrics(), "probs": [], "y": []})
    text = reading(make_report(det))
    assert text == (
        "The fabrication detector could not be scored on its 3 rows (0 fabricated): both "
        "classes are needed for AUROC."
    )


def test_level_baseline_and_a_flag_free_threshold() -> None:
    sae = evaluation("fabrication", "sae", 0.86)
    raw = evaluation("fabrication-raw", "raw", 0.85)
    never = metrics(0.86).model_copy(
        update={"recall": Interval(value=0.0, low=0.0, high=0.0), "precision": nan_interval()}
    )
    text = reading(make_report(sae.model_copy(update={"metrics": never}), raw))
    assert "it flags 0% of the rows, so it finds none of the fabricated ones." in text
    assert "the two are level within their intervals." in text


def nan_interval() -> Interval:
    return Interval(value=NAN, low=NAN, high=NAN)


def test_the_reading_leads_the_report_in_both_formats(tmp_path: Path) -> None:
    paths = write_report(make_report(), tmp_path)
    markdown = paths.markdown.read_text(encoding="utf-8")
    page = paths.html.read_text(encoding="utf-8")
    first = "The fabrication detector (sae) separates fabricated"
    assert markdown.index("## In short") < markdown.index(first) < markdown.index("## Dataset")
    assert page.index("<h2>In short</h2>") < page.index(f'<p class="reading">{first}')
    assert page.index('<p class="reading">') < page.index("<h2>Dataset</h2>")


def test_risks_without_labels_are_left_out() -> None:
    report = make_report()
    balance = {
        "fabrication": {"n": 1000, "positive": 300, "negative": 700},
        "sycophancy": {"n": 0, "positive": 0, "negative": 0},
        "deception": {"n": 0, "positive": 0, "negative": 0},
    }
    report = report.model_copy(update={"dataset": {**report.dataset, "class_balance": balance}})
    markdown = render_markdown(report, {})
    page = render_html(report, {})
    assert "| class_balance | fabrication: n=1000, positive=300, negative=700 |" in markdown
    for text in (markdown, page):
        assert "sycophancy" not in text
        assert "deception" not in text
    assert report.dataset["class_balance"]["sycophancy"]["n"] == 0  # the JSON keeps them


LONG = "fabrication_sae_probe_with_grounding_features_resid_post@20_width_16k_l0_71"


def test_wide_tables_can_wrap_instead_of_overflowing() -> None:
    report = make_report(evaluation(LONG, "sae+grounding", 0.8), evaluation("x-raw", "raw", 0.7))
    page = render_html(report, {})
    style = page[page.index("<style>") : page.index("</style>")]
    # no cell refuses to wrap, and a table that still cannot fit scrolls in its own box
    assert "nowrap" not in style
    assert "div.table{max-width:100%;overflow-x:auto" in style
    assert "overflow-wrap:break-word" in style
    tables = re.findall(r"<table>", page)
    assert len(tables) == len(re.findall(r'<div class="table"><table>', page)) > 0
    # an interval sits in its own span, free to go under its value
    assert '<td class="num">0.800 <span class="ci">[0.780, 0.820]</span></td>' in page
    # a long identifier breaks at its joints (line-break opportunities), never loses text
    assert "fabrication_<wbr>sae_<wbr>probe_<wbr>" in page
    assert "resid_<wbr>post@<wbr>20_<wbr>" in page
    assert "<th>TPR@<wbr>1%FPR</th>" in page
    assert LONG in page.replace("<wbr>", "")
    assert f"| {LONG} | fabrication | sae+grounding |" in render_markdown(report, {})


def test_the_cli_spells_missing_figures_like_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    half = metrics(0.8).model_copy(
        update={"auroc": Interval(value=0.8, low=NAN, high=NAN), "f1": nan_interval()}
    )
    det = evaluation("fabrication", "grounding", 0.8).model_copy(update={"metrics": half})
    report = make_report(det)
    print_summary(report)
    printed = capsys.readouterr().out
    assert not re.search(r"\bnan\b", printed, flags=re.IGNORECASE)
    assert "0.800 [n/a, n/a]" in printed
    assert "0.800 [n/a, n/a]" in render_markdown(report, {})
    assert "The fabrication detector (grounding) separates" in printed  # the reading, too
