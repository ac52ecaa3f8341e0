"""What ``scope-guard score`` writes per row, and the JSONL / CSV writers that write it.

One :class:`ScoredRow` per input row: the policy's action and reasons, per risk the score the
policy used (whether it is calibrated, whether it crossed the detector's threshold), every
detector's score, and the spans of the claims the grounding check found unsupported. Rows the
reader of the input refused (``--skip-errors``) and rows the guard failed on carry ``error``.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from scope_guard.errors import ConfigError
from scope_guard.types import DetectorScore, FlaggedClaim, RiskReport

__all__ = [
    "OUTPUT_FORMATS",
    "RowWriter",
    "ScoredRow",
    "atomic_output",
    "error_row",
    "output_format",
    "row_writer",
    "scored_row",
]

OutputFormat = Literal["jsonl", "csv"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("jsonl", "csv")
HEURISTIC_DETECTOR = "grounding-heuristic"  # the weight-free guard's fabrication score


class ScoredRow(BaseModel):
    """One input row's result.

    Attributes:
        id: The row's id (``None`` for a row that could not be read).
        source: ``file:line`` of a row that could not be read.
        action: The policy's action (``None`` for a row that could not be read).
        reasons: Why the policy chose the action.
        scores: Per risk, the probability the policy acted on.
        calibrated: Per risk, whether that probability is calibrated (the weight-free guard's
            grounding heuristic is not).
        flagged: Per risk, whether it reached the detector's threshold.
        detectors: Every detector's score (primary and baselines), without per-token risk.
        flagged_claims: Claims the grounding check found unsupported, with their character
            spans ``response[start:end]``.
        labels: The row's labels, when the input had any (for later comparison).
        stand_in: The reader is the random-weight stand-in: its probe scores mean nothing.
        error: Why the row has no scores (unreadable row, or the guard's own failure).
    """

    model_config = ConfigDict(frozen=True)
    id: str | None
    source: str | None = None
    action: str | None = None
    reasons: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    calibrated: dict[str, bool] = Field(default_factory=dict)
    flagged: dict[str, bool] = Field(default_factory=dict)
    detectors: list[DetectorScore] = Field(default_factory=list)
    flagged_claims: list[FlaggedClaim] = Field(default_factory=list)
    labels: dict[str, int] = Field(default_factory=dict)
    stand_in: bool = False
    error: str | None = None


def scored_row(
    report: RiskReport, primary: Mapping[str, str], labels: Mapping[str, int]
) -> ScoredRow:
    """The row of one assessed exchange.

    Args:
        report: The guard's report.
        primary: Per risk, the name of the detector the policy acts on.
        labels: The input row's labels.
    """
    by_name = {d.detector: d for d in report.detectors}
    acted_on = {risk: by_name.get(primary.get(risk, HEURISTIC_DETECTOR)) for risk in report.scores}
    return ScoredRow(
        id=report.request_id,
        action=report.decision.action.value,
        reasons=list(report.decision.reasons),
        scores=dict(report.scores),
        calibrated={r: d.calibrated for r, d in acted_on.items() if d is not None},
        flagged={r: d.flagged for r, d in acted_on.items() if d is not None},
        detectors=[d.model_copy(update={"token_risk": None}) for d in report.detectors],
        flagged_claims=report.flagged_claims,
        labels=dict(labels),
        stand_in=report.stand_in,
        error=report.error,
    )


def error_row(source: str, message: str, row_id: str | None = None) -> ScoredRow:
    """The row of an input record that could not be scored."""
    return ScoredRow(id=row_id, source=source, error=message)


def output_format(path: Path, requested: str | None) -> OutputFormat:
    """``requested``, else the format ``path``'s extension names.

    Raises:
        ConfigError: neither says jsonl or csv.
    """
    name = (requested or path.suffix.lstrip(".")).lower()
    if name == "json":
        name = "jsonl"
    for fmt in OUTPUT_FORMATS:
        if name == fmt:
            return fmt
    msg = f"cannot tell the output format of {path}: name it .jsonl or .csv (or --output-format)"
    raise ConfigError(msg)


class RowWriter(Protocol):
    def write(self, row: ScoredRow) -> None: ...


class _JSONLWriter:
    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle

    def write(self, row: ScoredRow) -> None:
        self._handle.write(row.model_dump_json() + "\n")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class _CSVWriter:
    """Flat rows: per risk ``score_``, ``calibrated_``, ``flagged_`` and ``label_`` columns (the
    risks the guard scores are known up front, so rows stream); claims as JSON spans."""

    def __init__(self, handle: IO[str], risks: Sequence[str]) -> None:
        self._risks = list(risks)
        per_risk = [f"{kind}_{r}" for r in self._risks for kind in ("score", "calibrated")]
        per_risk += [f"{kind}_{r}" for r in self._risks for kind in ("flagged", "label")]
        header = ["id", "source", "action", *per_risk, "n_flagged_claims", "flagged_claims"]
        self._writer = csv.DictWriter(handle, fieldnames=[*header, "reasons", "stand_in", "error"])
        self._writer.writeheader()

    def write(self, row: ScoredRow) -> None:
        spans = [[c.start, c.end] for c in row.flagged_claims]
        flat: dict[str, Any] = {
            "id": row.id,
            "source": row.source,
            "action": row.action,
            "n_flagged_claims": len(row.flagged_claims) if row.action else None,
            "flagged_claims": json.dumps(spans) if row.action else None,
            "reasons": "; ".join(row.reasons),
            "stand_in": int(row.stand_in),
            "error": row.error,
        }
        for risk in self._risks:
            flat[f"score_{risk}"] = row.scores.get(risk)
            flat[f"calibrated_{risk}"] = _flag(row.calibrated.get(risk))
            flat[f"flagged_{risk}"] = _flag(row.flagged.get(risk))
            flat[f"label_{risk}"] = row.labels.get(risk)
        self._writer.writerow({k: _cell(v) for k, v in flat.items()})


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def row_writer(fmt: OutputFormat, handle: IO[str], risks: Sequence[str]) -> RowWriter:
    """A writer of ``fmt`` rows on ``handle`` (``risks``: the CSV's per-risk columns)."""
    return _CSVWriter(handle, risks) if fmt == "csv" else _JSONLWriter(handle)


@contextmanager
def atomic_output(target: Path) -> Iterator[IO[str]]:
    """A text handle whose file replaces ``target`` only when the block succeeds, so an
    interrupted run never leaves half a file under the final name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
