"""The embedded default risk log: one SQLite file, one row per record.

Durability: WAL journal with ``synchronous=FULL``; ``write`` returns only after its transaction
committed, so a record whose ``write`` returned survives the process being killed (and, with
FULL, a power cut).

Concurrency: one connection per ``SQLiteRiskLog``, shared by its threads behind a lock, so the
threads of a process queue in Python instead of contending for SQLite's file lock. Processes
(and other ``SQLiteRiskLog`` objects on the same file) contend through SQLite itself: every
write takes the write lock up front (``BEGIN IMMEDIATE``), waits on SQLite's busy timeout, and
is retried with exponential backoff while the database reports "locked"/"busy", for at most
``timeout`` seconds.

Conflicts: ``UNIQUE(request_id, attempt)`` with keep-first (``INSERT OR IGNORE``). Records are
an audit trail of what the guard decided; a second record for the same request and attempt
is a retried write (same content) or a reused request id, and overwriting history would hide
the latter. A dropped duplicate is logged as a warning.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from scope_guard.errors import ArtifactError
from scope_guard.risklog.query import Order, RecordFilter, TimeLike
from scope_guard.risklog.record import RiskRecord
from scope_guard.risklog.sqlite_schema import (
    INSERT_SQL,
    SELECT_SQL,
    check_version,
    from_row,
    migrate,
    schema_version,
    to_row,
)

__all__ = ["SQLiteRiskLog"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SQLiteRiskLog:
    """Risk-log sink and reader on a SQLite file (created with its parents when missing).

    Args:
        path: The database file (``.db``, ``.sqlite``, ``.sqlite3`` by convention).
        timeout: Seconds a write or read may wait for other writers before failing.
        readonly: Open an existing log for reading only (``write`` then fails).

    Raises:
        ArtifactError: The file is not a SQLite database, not a scope-guard risk log, was
            written by a newer schema, or stayed locked for ``timeout`` seconds.
    """

    def __init__(self, path: str | Path, *, timeout: float = 30.0, readonly: bool = False) -> None:
        self.path = Path(path)
        self.timeout = float(timeout)
        self.readonly = readonly
        self._lock = threading.Lock()
        self._closed = False
        if readonly and not self.path.is_file():
            msg = f"risk log {self.path} does not exist"
            raise ArtifactError(msg)
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        target = f"{self.path.resolve().as_uri()}?mode=ro" if readonly else str(self.path)
        try:
            self._conn = sqlite3.connect(
                target,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
                uri=readonly,
            )
        except sqlite3.Error as exc:
            msg = f"cannot open risk log {self.path}: {exc}"
            raise ArtifactError(msg) from exc
        self._conn.row_factory = sqlite3.Row
        try:
            with self._lock:
                self._run(self._setup)
        except BaseException:
            self._conn.close()
            self._closed = True
            raise

    # -- plumbing -------------------------------------------------------------------------------
    def _run(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` (caller holds ``_lock``), retrying while the database is busy."""
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                return operation()
            except sqlite3.OperationalError as exc:
                if self._conn.in_transaction:
                    self._conn.rollback()
                if not _is_busy(exc):
                    msg = f"risk log {self.path}: {exc}"
                    raise ArtifactError(msg) from exc
                if time.monotonic() >= deadline:
                    msg = f"risk log {self.path} stayed locked for {self.timeout:g} s: {exc}"
                    raise ArtifactError(msg) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)
            except sqlite3.DatabaseError as exc:
                if self._conn.in_transaction:
                    self._conn.rollback()
                msg = f"risk log {self.path} is not a readable SQLite risk log: {exc}"
                raise ArtifactError(msg) from exc
            except BaseException:
                # Any other failure inside BEGIN IMMEDIATE (a value sqlite3 cannot bind, an
                # interrupt) must not leave the write lock held: every other writer would wait.
                if self._conn.in_transaction:
                    self._conn.rollback()
                raise

    def _setup(self) -> None:
        if self.readonly:
            self._conn.execute("PRAGMA query_only = ON")
            version = schema_version(self._conn, self.path)
            if version == 0:
                msg = f"{self.path} is an empty database, not a scope-guard risk log"
                raise ArtifactError(msg)
            check_version(version, self.path)
            return
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            logger.warning("risk log %s: WAL unavailable, journal mode is %s", self.path, mode)
        self._conn.execute("PRAGMA synchronous = FULL")
        migrate(self._conn, self.path)

    def _check_open(self) -> None:
        if self._closed:
            msg = f"risk log {self.path} is closed"
            raise ArtifactError(msg)

    # -- writing --------------------------------------------------------------------------------
    def write(self, record: RiskRecord) -> None:
        """Store ``record``; returns once it is committed (durable). Thread- and process-safe."""
        row = to_row(record)
        if self.readonly:
            msg = f"risk log {self.path} was opened read-only"
            raise ArtifactError(msg)

        def insert() -> bool:
            self._conn.execute("BEGIN IMMEDIATE")
            inserted = self._conn.execute(INSERT_SQL, row).rowcount == 1
            self._conn.execute("COMMIT")
            return inserted

        with self._lock:
            self._check_open()
            inserted = self._run(insert)
        if not inserted:
            logger.warning(
                "risk log %s already holds request %s attempt %d: kept the first record",
                self.path,
                record.request_id,
                record.attempt,
            )

    # -- reading --------------------------------------------------------------------------------
    def iter_records(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        action: str | None = None,
        limit: int | None = None,
        order: Order = "desc",
        *,
        batch_size: int = 500,
    ) -> Iterator[RiskRecord]:
        """Records in time order, fetched in pages (the lock is held per page, not throughout)."""
        flt = RecordFilter.build(since, until, action, limit, order)
        where, params = self._where(flt)
        desc = flt.order == "desc"
        remaining = flt.limit
        cursor: tuple[float, int] | None = None
        while remaining is None or remaining > 0:
            page_where, page_params = list(where), list(params)
            if cursor is not None:
                op = "<" if desc else ">"
                page_where.append(f"(created_ts {op} ? OR (created_ts = ? AND id {op} ?))")
                page_params += [cursor[0], cursor[0], cursor[1]]
            size = batch_size if remaining is None else min(batch_size, remaining)
            sql = (
                f"{SELECT_SQL}{' WHERE ' + ' AND '.join(page_where) if page_where else ''} "
                f"ORDER BY created_ts {'DESC' if desc else 'ASC'}, id {'DESC' if desc else 'ASC'} "
                f"LIMIT {int(size)}"
            )
            with self._lock:
                self._check_open()
                rows = self._run(partial(self._fetch, sql, page_params))
            for row in rows:
                yield from_row(row)
            if len(rows) < size:
                return
            cursor = (rows[-1]["created_ts"], rows[-1]["id"])
            if remaining is not None:
                remaining -= len(rows)

    def records(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        action: str | None = None,
        limit: int | None = None,
        order: Order = "desc",
    ) -> list[RiskRecord]:
        """Records created in ``[since, until)``, optionally of one action, newest first."""
        return list(self.iter_records(since, until, action, limit, order))

    def count(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        action: str | None = None,
    ) -> int:
        """How many records match (all of them by default)."""
        where, params = self._where(RecordFilter.build(since, until, action))
        sql = "SELECT COUNT(*) FROM risk_records" + (
            " WHERE " + " AND ".join(where) if where else ""
        )
        with self._lock:
            self._check_open()
            return int(self._run(lambda: self._conn.execute(sql, params).fetchone()[0]))

    def _fetch(self, sql: str, params: list[Any]) -> list[sqlite3.Row]:
        return self._conn.execute(sql, params).fetchall()

    @staticmethod
    def _where(flt: RecordFilter) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if flt.since is not None:
            where.append("created_ts >= ?")
            params.append(flt.since.timestamp())
        if flt.until is not None:
            where.append("created_ts < ?")
            params.append(flt.until.timestamp())
        if flt.action is not None:
            where.append("action = ?")
            params.append(flt.action)
        return where, params

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection; safe to call more than once."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> SQLiteRiskLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteRiskLog({str(self.path)!r})"
