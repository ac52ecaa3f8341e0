"""Printing an evaluation report on the console (table) or as JSON."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from scope_guard.cli.console import out, table

if TYPE_CHECKING:
    from calibration.report_model import EvaluationReport

__all__ = ["print_summary", "report_payload"]


def report_payload(report: EvaluationReport, **extra: Any) -> dict[str, Any]:
    """The report as JSON-ready data, without the per-row labels and probabilities."""
    data = report.model_dump(mode="json", exclude={"evaluations": {"__all__": {"y", "probs"}}})
    data.update(extra)
    return _strict_json(data)


def _strict_json(value: Any) -> Any:
    """NaN and infinities become null, so strict JSON parsers (jq) accept the output."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict_json(v) for v in value]
    return value


def _cell(interval: Any) -> str:
    value = interval.value
    if value != value:  # NaN
        return "n/a"
    return f"{value:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def print_summary(report: EvaluationReport) -> None:
    for line in report.notes:
        out(f"NOTE: {line}")
    rows = []
    for ev in report.evaluations:
        m = ev.metrics
        rows.append(
            [
                ev.detector,
                ev.kind,
                m.n,
                _cell(m.auroc),
                _cell(m.f1),
                _cell(m.ece),
                f"{m.threshold:.3f} ({ev.threshold_rule})",
                ev.calibration_method,
            ]
        )
    out(report.title)
    out(table(["detector", "inputs", "n", "AUROC", "F1", "ECE", "threshold", "calibration"], rows))
    for ev in report.evaluations:
        for field, values in ev.by_field.items():
            sub = [[v, m.n, _cell(m.auroc), _cell(m.f1), _cell(m.ece)] for v, m in values.items()]
            out(f"\n{ev.detector} by {field}")
            out(table([field, "n", "AUROC", "F1", "ECE"], sub))
