"""What ``scope-guard log summary`` reports, computed from records of any risk log.

Days are UTC calendar days of ``created``. Quantiles interpolate linearly between order
statistics (NumPy's default ``linear`` method: the q-quantile of n sorted values sits at
position ``q * (n - 1)``). "Worst" ranks records (one per request and attempt) by their highest
score over all risks.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from scope_guard.risklog.query import created_at
from scope_guard.risklog.record import RiskRecord
from scope_guard.types import Action, Outcome

__all__ = [
    "ActionRates",
    "LogSummary",
    "ScoreStats",
    "WorstRecord",
    "quantile",
    "summarize",
]


def quantile(sorted_values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ascending ``sorted_values`` by linear interpolation."""
    if not sorted_values:
        return math.nan
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    weight = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * weight


@dataclass(frozen=True)
class ActionRates:
    """How often each action was taken over a set of records.

    Attributes:
        day: The UTC day these records are from; ``None`` for all records.
        total: Number of records.
        counts: Records per action; every :class:`Action` appears (0 when unused), plus any
            other action string found in the log.
        rates: ``counts / total`` per action (0.0 when ``total`` is 0).
    """

    day: date | None
    total: int
    counts: dict[str, int]
    rates: dict[str, float]

    @classmethod
    def of(cls, actions: Iterable[str], day: date | None = None) -> ActionRates:
        counter = Counter(actions)
        counts = {a.value: counter.pop(a.value, 0) for a in Action} | dict(sorted(counter.items()))
        total = sum(counts.values())
        rates = {a: (n / total if total else 0.0) for a, n in counts.items()}
        return cls(day, total, counts, rates)


@dataclass(frozen=True)
class ScoreStats:
    """The distribution of one risk's score over one UTC day.

    Attributes:
        risk: The risk name (``fabrication``, ``sycophancy``, ...).
        day: The UTC day.
        count: Records of that day with a score for this risk.
        mean, p50, p90, p99, max: Of those scores (probabilities, 0..1).
    """

    risk: str
    day: date
    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, risk: str, day: date, values: list[float]) -> ScoreStats:
        ordered = sorted(values)
        return cls(
            risk=risk,
            day=day,
            count=len(ordered),
            mean=math.fsum(ordered) / len(ordered),
            p50=quantile(ordered, 0.50),
            p90=quantile(ordered, 0.90),
            p99=quantile(ordered, 0.99),
            max=ordered[-1],
        )


@dataclass(frozen=True)
class WorstRecord:
    """One of the riskiest records: its highest score, which risk it was for, and the verdict."""

    request_id: str
    attempt: int
    created: str
    action: str
    risk: str
    score: float
    scores: dict[str, float]
    reasons: list[str]


@dataclass(frozen=True)
class LogSummary:
    """Everything ``scope-guard log summary`` prints.

    Attributes:
        n_records: Records summarised.
        first, last: ``created`` of the oldest and newest record (``None`` when empty).
        overall: Action rates over all records.
        per_day: Action rates per UTC day, oldest first.
        scores: Score distributions per risk and day (by day, then risk).
        worst: The riskiest records, highest score first (ties: older first).
        n_errors: Records where the guard itself failed (``error`` set).
        errors: How often each error message occurred, most frequent first.
        n_stand_in: Records scored by the miniature stand-in reader (their scores mean nothing).
        outcomes: Records per outcome, what was served after each attempt (every
            :class:`Outcome` appears, 0 when unused; ``"unknown"`` counts records whose writer
            did not say). The final outcomes (all but ``retry``) count requests.
    """

    n_records: int
    first: str | None
    last: str | None
    overall: ActionRates
    per_day: list[ActionRates] = field(default_factory=list)
    scores: list[ScoreStats] = field(default_factory=list)
    worst: list[WorstRecord] = field(default_factory=list)
    n_errors: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    n_stand_in: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (days as ISO dates; NaN never occurs: empty groups are omitted)."""

        def convert(value: Any) -> Any:
            if isinstance(value, date):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            if isinstance(value, list):
                return [convert(v) for v in value]
            return value

        return {k: convert(v) for k, v in asdict(self).items()}


def _worst(record: RiskRecord) -> WorstRecord:
    risk = max(record.scores, key=lambda k: record.scores[k])
    return WorstRecord(
        request_id=record.request_id,
        attempt=record.attempt,
        created=record.created,
        action=record.action,
        risk=risk,
        score=record.scores[risk],
        scores=dict(record.scores),
        reasons=list(record.reasons),
    )


def summarize(records: Iterable[RiskRecord], *, top: int = 10) -> LogSummary:
    """Summarise ``records`` (any order) in one pass.

    Args:
        records: The records to summarise.
        top: How many of the worst records to keep (>= 0).
    """
    timed = sorted(((created_at(r), i, r) for i, r in enumerate(records)), key=lambda t: t[:2])
    by_day: dict[date, list[RiskRecord]] = defaultdict(list)
    values: dict[tuple[date, str], list[float]] = defaultdict(list)
    for moment, _, record in timed:
        day = moment.date()
        by_day[day].append(record)
        for risk, score in record.scores.items():
            if not math.isnan(score):
                values[day, risk].append(score)
    ordered = [r for _, _, r in timed]
    ranked = sorted(
        (r for r in ordered if r.scores), key=lambda r: -max(r.scores.values())
    )  # stable sort: ties stay oldest first
    worst = [_worst(r) for r in ranked[: max(top, 0)]]
    errors = Counter(r.error for r in ordered if r.error is not None)
    return LogSummary(
        n_records=len(ordered),
        first=ordered[0].created if ordered else None,
        last=ordered[-1].created if ordered else None,
        overall=ActionRates.of(r.action for r in ordered),
        per_day=[ActionRates.of((r.action for r in rs), day) for day, rs in sorted(by_day.items())],
        scores=[ScoreStats.of(risk, day, v) for (day, risk), v in sorted(values.items())],
        worst=worst,
        n_errors=sum(errors.values()),
        errors=dict(errors.most_common()),
        n_stand_in=sum(r.stand_in for r in ordered),
        outcomes=_outcomes(ordered),
    )


def _outcomes(records: list[RiskRecord]) -> dict[str, int]:
    counter = Counter(r.outcome or "unknown" for r in records)
    counts = {o.value: counter.pop(o.value, 0) for o in Outcome}
    return counts | {"unknown": counter.pop("unknown", 0)} | dict(sorted(counter.items()))
