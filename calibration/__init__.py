"""Calibration: labeled data, feature extraction, probe fitting, calibration, metrics, reports.

``import calibration`` stays light (pydantic and numpy, no torch or scikit-learn): the
labeled-data API is imported eagerly; the rest is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from calibration.data import (
    ClassBalance,
    DataError,
    DataProblem,
    LabeledDataset,
    LabeledExample,
    LabeledSpan,
    available_formats,
    load_dataset,
    prompt_of,
    read_jsonl,
    render_prompt,
)

_LAZY = {
    "SparseProbe": "calibration.probe",
    "fit_calibration_map": "calibration.calibrators",
    "calibration_candidates": "calibration.calibrators",
    "group_train_test_split": "calibration.splits",
    "group_folds": "calibration.splits",
    "cross_fit_scores": "calibration.splits",
    "choose_threshold": "calibration.thresholds",
    "threshold_for_fpr": "calibration.thresholds",
    "threshold_for_precision": "calibration.thresholds",
    "threshold_for_f1": "calibration.thresholds",
    "Metrics": "calibration.metrics",
    "compute_metrics": "calibration.metrics",
    "metrics_by": "calibration.metrics",
    "expected_calibration_error": "calibration.metrics",
    "extract_features": "calibration.extract",
    "FeatureCache": "calibration.feature_cache",
    "CalibrationSettings": "calibration.pipeline",
    "CalibrationResult": "calibration.pipeline",
    "calibrate": "calibration.pipeline",
    "evaluate": "calibration.evaluation",
    "EvaluationReport": "calibration.report_model",
    "write_report": "calibration.report",
}

__all__ = [
    "ClassBalance",
    "DataError",
    "DataProblem",
    "LabeledDataset",
    "LabeledExample",
    "LabeledSpan",
    "available_formats",
    "load_dataset",
    "prompt_of",
    "read_jsonl",
    "render_prompt",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'calibration' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(module), name)
