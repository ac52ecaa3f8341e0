"""An append-only JSON Lines risk log: one record per line.

Durability: each ``write`` is one ``os.write`` of the whole line followed by ``os.fsync``, so a
record whose ``write`` returned is on disk. Concurrency: writes of one object are serialised by
a lock; several processes may append to the same file because it is opened with ``O_APPEND``,
which makes the kernel place each single ``write`` at the current end of file as a unit.

A line left incomplete by a crash (torn) is skipped by the reader, counted and logged. When a
writer opens a file whose last line is torn it first ends that line, so the next record does not
glue onto it and get lost too. Like the SQLite log, a repeated ``(request_id, attempt)`` keeps
the first record.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pydantic import ValidationError

from scope_guard.errors import ArtifactError
from scope_guard.risklog.query import Order, RecordFilter, TimeLike, record_key
from scope_guard.risklog.record import RiskRecord

__all__ = ["JSONLReader", "JSONLRiskLog", "ReadStats"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadStats:
    """What a read of a JSONL log found.

    Attributes:
        records: Records returned (after dropping duplicates).
        torn: Lines skipped because they are not complete JSON (a crash mid-write).
        duplicates: Lines skipped because an earlier line has the same request id and attempt.
    """

    records: int
    torn: int
    duplicates: int


class JSONLReader:
    """Reads a JSONL risk log (re-reads the file on every call, so it sees new appends).

    Args:
        path: The ``.jsonl`` file.

    Raises:
        ArtifactError: The file is missing, or a complete JSON line is not a risk record.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.stats = ReadStats(0, 0, 0)

    def _load(self) -> list[RiskRecord]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            msg = f"risk log {self.path} does not exist"
            raise ArtifactError(msg) from None
        records: list[RiskRecord] = []
        seen: set[tuple[str, int]] = set()
        torn = duplicates = 0
        for number, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                payload = json.loads(line)
            except ValueError:  # includes UnicodeDecodeError: a cut inside a multibyte char
                torn += 1
                logger.warning("risk log %s: skipped torn line %d", self.path, number)
                continue
            try:
                record = RiskRecord.model_validate(payload)
            except ValidationError as exc:
                msg = f"risk log {self.path}, line {number}: not a risk record: {exc}"
                raise ArtifactError(msg) from exc
            if record_key(record) in seen:
                duplicates += 1
                continue
            seen.add(record_key(record))
            records.append(record)
        self.stats = ReadStats(len(records), torn, duplicates)
        return records

    def records(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        action: str | None = None,
        limit: int | None = None,
        order: Order = "desc",
    ) -> list[RiskRecord]:
        """Records created in ``[since, until)``, optionally of one action, newest first."""
        return RecordFilter.build(since, until, action, limit, order).apply(self._load())

    def iter_records(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        action: str | None = None,
        limit: int | None = None,
        order: Order = "desc",
    ) -> Iterator[RiskRecord]:
        """Like :meth:`records` (the file is read whole to order it by time)."""
        yield from self.records(since, until, action, limit, order)

    def count(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        action: str | None = None,
    ) -> int:
        """How many records match (all of them by default)."""
        return len(self.records(since, until, action))

    def close(self) -> None:
        """Nothing to release (kept for the reader protocol)."""

    def __enter__(self) -> JSONLReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class JSONLRiskLog(JSONLReader):
    """Risk-log sink appending to a JSONL file (created with its parents when missing).

    Also reads the file back (:meth:`records`, :meth:`count`), as :class:`JSONLReader` does.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            msg = f"cannot open risk log {self.path} for appending: {exc}"
            raise ArtifactError(msg) from exc
        self._end_torn_line()

    def _end_torn_line(self) -> None:
        with open(self.path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) == b"\n":
                return
        logger.warning("risk log %s ends with a torn line: terminating it", self.path)
        self._append(b"\n")

    def _append(self, data: bytes) -> None:
        with self._lock:
            if self._fd is None:
                msg = f"risk log {self.path} is closed"
                raise ArtifactError(msg)
            view = memoryview(data)
            while view:  # one write on local files; a short write (disk full) is continued
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)

    def write(self, record: RiskRecord) -> None:
        """Append ``record`` as one line; returns once it is fsynced. Thread- and process-safe."""
        line = record.model_dump_json().encode("utf-8") + b"\n"
        try:
            self._append(line)
        except OSError as exc:
            msg = f"cannot append to risk log {self.path}: {exc}"
            raise ArtifactError(msg) from exc

    def close(self) -> None:
        """Close the file; safe to call more than once."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> JSONLRiskLog:
        return self

    def __repr__(self) -> str:
        return f"JSONLRiskLog({str(self.path)!r})"
