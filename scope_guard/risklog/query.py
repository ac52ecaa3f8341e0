"""Reading a risk log: time parsing, record filters, the reader protocol, following new records.

Times are compared as UTC instants: a record's ``created`` (ISO 8601) and the ``since`` /
``until`` bounds are all parsed to aware datetimes, naive ones taken as UTC. Ranges are
half-open: ``since <= created < until``.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, Protocol, runtime_checkable

from scope_guard.errors import ConfigError, InputError
from scope_guard.risklog.record import RiskRecord

__all__ = [
    "FOLLOW_SLACK",
    "Order",
    "RecordFilter",
    "RiskLogReader",
    "TimeLike",
    "created_at",
    "follow_records",
    "parse_time",
    "record_key",
]

Order = Literal["asc", "desc"]
TimeLike = datetime | date | str

_ORDERS: tuple[Order, ...] = ("asc", "desc")
#: How far back :func:`follow_records` looks again on each poll, for records written late.
FOLLOW_SLACK = timedelta(minutes=5)


def parse_time(value: TimeLike) -> datetime:
    """An aware UTC datetime from a datetime, a date (its midnight, UTC) or an ISO 8601 string.

    Raises:
        ConfigError: ``value`` is a string that is not ISO 8601.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time.min)
    else:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            msg = f"not an ISO 8601 date or time: {value!r} (e.g. 2025-01-31 or 2025-01-31T12:00Z)"
            raise ConfigError(msg) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def created_at(record: RiskRecord) -> datetime:
    """The record's ``created`` as an aware UTC datetime.

    Raises:
        InputError: ``created`` is not ISO 8601 (such a record cannot be placed in time).
    """
    try:
        return parse_time(record.created)
    except ConfigError:
        msg = (
            f"record {record.request_id!r} (attempt {record.attempt}) has a 'created' that is not "
            f"ISO 8601: {record.created!r}"
        )
        raise InputError(msg) from None


def record_key(record: RiskRecord) -> tuple[str, int]:
    """The identity of a record in every log: ``(request_id, attempt)``."""
    return record.request_id, record.attempt


@dataclass(frozen=True)
class RecordFilter:
    """Which records a read returns, and in which order.

    Attributes:
        since: Keep records created at or after this instant (UTC); ``None``: no lower bound.
        until: Keep records created strictly before this instant (UTC); ``None``: no upper bound.
        action: Keep records with this action (``allow``, ``warn``, ...); ``None``: all.
        limit: At most this many records (after ordering); ``None``: all. Must be >= 0.
        order: ``"desc"`` (newest first) or ``"asc"`` (oldest first); ties keep write order.
    """

    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    limit: int | None = None
    order: Order = "desc"

    def __post_init__(self) -> None:
        if self.order not in _ORDERS:
            msg = f"order must be one of {', '.join(_ORDERS)}, got {self.order!r}"
            raise ConfigError(msg)
        if self.limit is not None and self.limit < 0:
            msg = f"limit must be >= 0, got {self.limit}"
            raise ConfigError(msg)

    @classmethod
    def build(
        cls,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        action: str | None = None,
        limit: int | None = None,
        order: Order = "desc",
    ) -> RecordFilter:
        """A filter from the loose arguments the readers accept (strings, dates, datetimes)."""
        return cls(
            since=parse_time(since) if since is not None else None,
            until=parse_time(until) if until is not None else None,
            action=str(action) if action is not None else None,
            limit=limit,
            order=order,
        )

    def matches(self, record: RiskRecord, moment: datetime | None = None) -> bool:
        """Whether ``record`` passes the bounds and the action (``moment``: its parsed time)."""
        if self.action is not None and record.action != self.action:
            return False
        if self.since is None and self.until is None:
            return True
        moment = moment if moment is not None else created_at(record)
        if self.since is not None and moment < self.since:
            return False
        return self.until is None or moment < self.until

    def apply(self, records: Iterable[RiskRecord]) -> list[RiskRecord]:
        """Filter, order and limit records given in write order (the in-memory path)."""
        timed = [(created_at(r), i, r) for i, r in enumerate(records)]
        kept = [(t, i, r) for t, i, r in timed if self.matches(r, t)]
        kept.sort(key=lambda item: (item[0], item[1]), reverse=self.order == "desc")
        selected = [r for _, _, r in kept]
        return selected if self.limit is None else selected[: self.limit]


@runtime_checkable
class RiskLogReader(Protocol):
    """What the CLI needs from a stored risk log (SQLite and JSONL both provide it)."""

    def records(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        action: str | None = None,
        limit: int | None = None,
        order: Order = "desc",
    ) -> list[RiskRecord]: ...

    def iter_records(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        action: str | None = None,
        limit: int | None = None,
        order: Order = "desc",
    ) -> Iterator[RiskRecord]: ...

    def count(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        action: str | None = None,
    ) -> int: ...

    def close(self) -> None: ...


def follow_records(
    reader: RiskLogReader,
    shown: list[RiskRecord],
    *,
    interval: float,
    action: str | None = None,
    polls: int | None = None,
) -> Iterator[list[RiskRecord]]:
    """Yield, every ``interval`` seconds, the records not yet shown (oldest first).

    Each poll re-reads from :data:`FOLLOW_SLACK` before the newest record shown, so a record
    written late with an earlier ``created`` (a slow assessment) still appears once.

    Args:
        reader: The log.
        shown: Records already shown.
        interval: Seconds between polls.
        action: Only records with this action.
        polls: Stop after this many polls (``None``: until interrupted).
    """
    seen = {record_key(r): created_at(r) for r in shown}
    n = 0
    while polls is None or n < polls:
        _time.sleep(interval)
        n += 1
        since = max(seen.values()) - FOLLOW_SLACK if seen else None
        new = [
            r
            for r in reader.records(since=since, action=action, order="asc")
            if record_key(r) not in seen
        ]
        seen.update({record_key(r): created_at(r) for r in new})
        if seen:
            horizon = max(seen.values()) - FOLLOW_SLACK
            seen = {k: t for k, t in seen.items() if t >= horizon}
        if new:
            yield new
