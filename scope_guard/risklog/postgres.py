"""The shared risk log: one PostgreSQL database that the guards of many hosts write to.

``risk_log="postgresql://user@host:5432/db"`` (or ``postgres://``; any libpq URL parameter works,
the password best from ``PGPASSWORD`` or ``~/.pgpass``) stores the same records as the SQLite
log, in the same columns (:mod:`.postgres_schema`), and reads them back through the same
reader protocol, so ``scope-guard log summary|tail|export URL`` works as on a file. The
database must exist; the tables are created on first write.

Durability: every write is one ``INSERT`` in autocommit mode with ``synchronous_commit = on``,
so ``write`` returns after the server has flushed the commit to its WAL on disk: a record whose
``write`` returned survives the writer being killed and the server crashing. (A server run with
``fsync = off`` voids this, as it would for any client.)

Concurrency: a pool of connections per log object (:mod:`.postgres_pool`), so threads commit in
parallel; processes and hosts each have their own pool and meet only in the server. Writers
never wait for each other except on the unique check of the same ``(request_id, attempt)``.
Conflicts keep the first record (``ON CONFLICT DO NOTHING``), as SQLite does. A write that
fails because the connection broke (server restart, failover, network) or a lock or statement
timed out is retried on a fresh connection, with backoff, for up to ``timeout`` seconds; when
the connection broke after the server committed, the retry finds the record already there and
stores nothing: no record is lost or doubled. Each session runs with ``statement_timeout`` and
``lock_timeout`` of ``timeout``, so nothing waits forever.

The hash key: every host's guard must hash with the same key, or their records do not join.
A SQLite log keeps its key in ``<log>.key`` beside the file; a database has no "beside" that
all hosts share, and copying a key file to every host is a deployment step that goes wrong.
So the key lives in the database, in the one-row table ``scope_guard_log_key``, created by the
first writer with ``INSERT ... ON CONFLICT DO NOTHING`` (every concurrent first writer then
reads the winner's row). What this gives up: whoever can read that table can confirm guessed
texts. Keep it apart by privileges instead of by file: the writers' role needs SELECT and
INSERT on it, readers of the log (``scope-guard log``, analysts) need only SELECT on
``risk_records`` and never read the key; ``pg_dump --exclude-table=scope_guard_log_key`` makes a
copy of the log without it. Where the key must not be in the database at all, set
``SCOPE_GUARD_LOG_KEY`` (or ``log_key=``) on every host: it takes precedence, and the table
stays empty.

Passwords: a URL's password never appears in a repr, a log line or an error message
(:mod:`.postgres_url`).
"""

from __future__ import annotations

import logging
import math
import random
import secrets
import time
from collections.abc import Callable, Iterator
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.risklog.keys import LogKey
from scope_guard.risklog.postgres_pool import (
    ConnectFailed,
    ConnectionPool,
    PoolClosed,
    PoolExhausted,
)
from scope_guard.risklog.postgres_schema import (
    INSERT_SQL,
    KEY_TABLE,
    SELECT_SQL,
    check_version,
    from_row,
    migrate,
    schema_version,
    to_row,
)
from scope_guard.risklog.postgres_url import is_postgres_url, redact_url, scrub
from scope_guard.risklog.query import Order, RecordFilter, TimeLike
from scope_guard.risklog.record import RiskRecord

__all__ = ["PostgresRiskLog"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
Connection = psycopg.Connection[Any]


class PostgresRiskLog:
    """Risk-log sink and reader on a PostgreSQL database.

    Args:
        url: A ``postgresql://`` or ``postgres://`` URL of an existing database.
        timeout: Seconds a connection, write or read may take, retries included.
        readonly: Open an existing log for reading only (read-only transactions; ``write``
            fails; the schema is checked, never created).
        pool_size: Most connections this object opens at once (>= 1).

    Raises:
        ConfigError: ``url`` is not a PostgreSQL URL, or ``pool_size`` < 1.
        ArtifactError: The server cannot be reached or refuses the login, the database holds
            another application's ``risk_records``, a newer schema, or (``readonly``) no risk
            log yet.
    """

    def __init__(
        self, url: str, *, timeout: float = 30.0, readonly: bool = False, pool_size: int = 4
    ) -> None:
        if not is_postgres_url(url):
            msg = f"not a PostgreSQL URL: {redact_url(url)!r} (postgresql://user@host/db)"
            raise ConfigError(msg)
        if pool_size < 1:
            msg = f"pool_size must be >= 1, got {pool_size}"
            raise ConfigError(msg)
        self._url = url
        self.url = redact_url(url)  # the only form of the URL ever shown
        self.timeout = float(timeout)
        self.readonly = readonly
        self._pool = ConnectionPool(self._connect, pool_size, self.timeout)
        try:
            self._run(self._setup, retry_connect=False)
        except BaseException:
            self._pool.close()
            raise

    # -- plumbing -------------------------------------------------------------------------------
    def _connect(self) -> Connection:
        conn = psycopg.connect(
            self._url,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=max(2, math.ceil(self.timeout)),
            application_name="scope-guard",
        )
        try:
            ms = str(max(1, int(self.timeout * 1000)))
            conn.execute(
                "SELECT set_config('synchronous_commit', 'on', false), "
                "set_config('statement_timeout', %s, false), "
                "set_config('lock_timeout', %s, false), "
                "set_config('default_transaction_read_only', %s, false)",
                (ms, ms, "on" if self.readonly else "off"),
            )
        except BaseException:
            conn.close()
            raise
        return conn

    def _error(self, what: str, exc: BaseException) -> ArtifactError:
        return ArtifactError(f"risk log {self.url}: {what}: {scrub(str(exc).strip(), self._url)}")

    def _run(self, operation: Callable[[Connection, int], T], *, retry_connect: bool = True) -> T:
        """Run ``operation(conn, attempt)`` on a pooled connection, retrying transient failures.

        Driver errors are re-raised as :class:`ArtifactError` *from None*: the driver's own
        message may repeat the URL, password included, and a chained traceback would show it.
        """
        deadline = time.monotonic() + self.timeout
        delay, attempt = 0.01, 0
        while True:
            attempt += 1
            try:
                with self._pool.connection() as conn:
                    return operation(conn, attempt)
            except ConnectFailed as failed:
                cause = failed.__cause__ or failed
                if not retry_connect or time.monotonic() >= deadline:
                    raise self._error("cannot connect", cause) from None
                error: BaseException = cause
            except PoolClosed:
                msg = f"risk log {self.url} is closed"
                raise ArtifactError(msg) from None
            except PoolExhausted:
                msg = f"risk log {self.url}: no free connection for {self.timeout:g} s"
                raise ArtifactError(msg) from None
            except psycopg.OperationalError as exc:
                # A broken connection, a server going down or starting up, a lock or statement
                # timeout, a serialisation failure: worth another try on a fresh connection.
                if time.monotonic() >= deadline:
                    raise self._error(f"gave up after {attempt} attempt(s)", exc) from None
                error = exc
            except psycopg.Error as exc:
                raise self._error("query failed", exc) from None
            logger.info("risk log %s: retrying (%s)", self.url, scrub(str(error), self._url))
            time.sleep(min(delay * (0.5 + random.random()), max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)

    def _setup(self, conn: Connection, _attempt: int) -> None:
        if self.readonly:
            version = schema_version(conn, self.url)
            if version == 0:
                msg = f"{self.url} holds no scope-guard risk log (nothing was written to it yet)"
                raise ArtifactError(msg)
            check_version(version, self.url)
            return
        migrate(conn, self.url)

    # -- writing --------------------------------------------------------------------------------
    def write(self, record: RiskRecord) -> None:
        """Store ``record``; returns once the server committed it. Thread- and process-safe."""
        row = to_row(record)
        if self.readonly:
            msg = f"risk log {self.url} was opened read-only"
            raise ArtifactError(msg)

        def insert(conn: Connection, attempt: int) -> tuple[bool, int]:
            return conn.execute(INSERT_SQL, row).rowcount == 1, attempt

        inserted, attempts = self._run(insert)
        if inserted:
            return
        if attempts > 1:  # the broken attempt had committed; the retry found it
            logger.info("risk log %s: request %s stored by an earlier try", self.url, row[0])
            return
        logger.warning(
            "risk log %s already holds request %s attempt %d: kept the first record",
            self.url,
            record.request_id,
            record.attempt,
        )

    def stored_log_key(self) -> LogKey:
        """The log's HMAC key from ``scope_guard_log_key``, created once for all writers.

        Raises:
            ArtifactError: The log is read-only, or the key row is unreadable or refused.
        """
        if self.readonly:
            msg = f"risk log {self.url} was opened read-only: it hands out no key"
            raise ArtifactError(msg)

        def fetch(conn: Connection, _attempt: int) -> bytes:
            query = f"SELECT secret FROM {KEY_TABLE} WHERE id = 1"
            row = conn.execute(query).fetchone()
            if row is None:  # first use: one writer's row wins, every other reads it
                conn.execute(
                    f"INSERT INTO {KEY_TABLE} (id, secret) VALUES (1, %s) "
                    "ON CONFLICT (id) DO NOTHING",
                    (secrets.token_bytes(32),),
                )
                row = conn.execute(query).fetchone()
            if row is None:
                msg = f"risk log {self.url}: the key row vanished while it was created"
                raise ArtifactError(msg)
            return bytes(row["secret"])

        return LogKey(self._run(fetch), f"table:{KEY_TABLE} in {self.url}")

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
        """Records in time order, fetched in keyset pages (a connection is held per page)."""
        flt = RecordFilter.build(since, until, action, limit, order)
        where, params = self._where(flt)
        desc = flt.order == "desc"
        direction = "DESC" if desc else "ASC"
        remaining = flt.limit
        cursor: tuple[float, int] | None = None
        while remaining is None or remaining > 0:
            page_where, page_params = list(where), list(params)
            if cursor is not None:
                page_where.append(f"(created_ts, id) {'<' if desc else '>'} (%s, %s)")
                page_params += [cursor[0], cursor[1]]
            size = batch_size if remaining is None else min(batch_size, remaining)
            sql = (
                f"{SELECT_SQL}{' WHERE ' + ' AND '.join(page_where) if page_where else ''} "
                f"ORDER BY created_ts {direction}, id {direction} LIMIT {int(size)}"
            )
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
        sql = "SELECT COUNT(*) AS n FROM risk_records" + (
            " WHERE " + " AND ".join(where) if where else ""
        )
        return int(self._run(partial(self._fetch, sql, params))[0]["n"])

    @staticmethod
    def _fetch(sql: str, params: list[Any], conn: Connection, _attempt: int) -> list[Any]:
        return conn.execute(sql, params).fetchall()

    @staticmethod
    def _where(flt: RecordFilter) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if flt.since is not None:
            where.append("created_ts >= %s")
            params.append(flt.since.timestamp())
        if flt.until is not None:
            where.append("created_ts < %s")
            params.append(flt.until.timestamp())
        if flt.action is not None:
            where.append("action = %s")
            params.append(flt.action.replace("\x00", "\\u0000"))  # as stored
        return where, params

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connections; safe to call more than once."""
        self._pool.close()

    def __enter__(self) -> PostgresRiskLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresRiskLog({self.url!r})"
