"""Bad inputs the calibration layer must refuse clearly or handle sensibly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calibration.adapters import load_dataset
from calibration.calibrators import fit_calibration_map
from calibration.data import LabeledExample
from calibration.metrics import compute_metrics, metrics_by
from calibration.report import write_report
from calibration.report_model import DetectorEvaluation, EvaluationReport
from scope_guard.errors import ConfigError, InputError


def test_lone_surrogates_are_replaced_keeping_offsets(tmp_path):
    example = LabeledExample(id="a", response="x\ud800y", contexts=["c\udc00"], question="q\ud801")
    assert example.response == "x\ufffdy"
    assert example.contexts == ["c\ufffd"]
    assert example.question == "q\ufffd"
    row = {
        "id": "r1",
        "task_type": "QA",
        "model": "m",
        "temperature": 0.7,
        "quality": "good",
        "split": "test",
        "query": "q",
        "context": "ctx \ud800",
        "response": "an answer",
        "labels": [],
        "hallucinated": False,
    }
    path = tmp_path / "rt.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")  # JSON escapes the surrogate
    data = load_dataset(path, "ragtruth")
    assert data[0].contexts == ["ctx \ufffd"]
    assert len(data.content_hash()) == 64


def test_metrics_refuse_bad_threshold_and_groups():
    y, p = np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8])
    with pytest.raises(ConfigError, match="finite"):
        compute_metrics(y, p, float("nan"), n_bootstrap=0)
    with pytest.raises(InputError, match="groups has 3 rows"):
        metrics_by(["a", "a", "b", "b"], y, p, 0.5, groups=[1, 2, 3], n_bootstrap=0)


def test_constant_scores_calibrate_to_the_base_rate():
    y = np.r_[np.ones(10), np.zeros(30)]
    for method in ("auto", "temperature", "isotonic", "sigmoid"):
        cmap = fit_calibration_map(np.zeros(40), y, method)
        np.testing.assert_allclose(cmap.apply(np.array([-3.0, 0.0, 7.0])), 11 / 42)


def _evaluation(name: str) -> DetectorEvaluation:
    from calibration.metrics import compute_metrics as cm

    y, p = [0, 1, 0, 1], [0.1, 0.9, 0.3, 0.7]
    return DetectorEvaluation(
        detector=name,
        risk="fabrication",
        kind="grounding",
        metrics=cm(y, p, 0.5, n_bootstrap=0),
        y=y,
        probs=p,
    )


def test_report_figure_names_never_collide(tmp_path):
    report = EvaluationReport(
        title="t",
        created="now",
        dataset={},
        evaluations=[_evaluation(n) for n in ("x", "x-2", "x")],
    )
    paths = write_report(report, tmp_path)
    assert len(paths.images) == len(set(paths.images)) == 6


def test_per_row_thresholds_flag_each_row_by_its_own():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.6, 0.6, 0.4, 0.1])
    # One threshold per row: row 0 flagged (0.6 >= 0.5), row 1 not (0.6 < 0.7), row 2 flagged.
    m = compute_metrics(y, p, np.array([0.5, 0.7, 0.3, 0.3]), n_bootstrap=0)
    assert m.precision.value == 1.0
    assert m.recall.value == 1.0
    assert m.threshold == pytest.approx(0.45)
    with pytest.raises(ConfigError, match="one per row"):
        compute_metrics(y, p, np.array([0.5, 0.5]), n_bootstrap=0)
