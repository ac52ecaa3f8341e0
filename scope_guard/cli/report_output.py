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


def print_summary(report: EvaluationReport) -> None:
    # the report's own formatting: a missing figure reads "n/a" here as in the HTML / Markdown
    from calibration.report_content import format_interval, format_number
    from calibration.report_reading import reading

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
                format_interval(m.auroc),
                format_interval(m.f1),
                format_interval(m.ece),
                f"{format_number(m.threshold)} ({ev.threshold_rule})",
                ev.calibration_method,
            ]
        )
    out(report.title)
    summary = reading(report)
    if summary:
        out(f"\n{summary}\n")
    out(table(["detector", "inputs", "n", "AUROC", "F1", "ECE", "threshold", "calibration"], rows))
    for ev in report.evaluations:
        for field, values in ev.by_field.items():
            sub = [
                [v, m.n, *(format_interval(x) for x in (m.auroc, m.f1, m.ece))]
                for v, m in values.items()
            ]
            out(f"\n{ev.detector} by {field}")
            out(table([field, "n", "AUROC", "F1", "ECE"], sub))
