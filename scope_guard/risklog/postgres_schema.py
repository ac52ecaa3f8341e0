"""The PostgreSQL risk log's schema: the SQLite log's columns, versioned the same way.

``risk_records`` has the SQLite table's columns in the same order, with PostgreSQL's types, and
rows are made and read by the SQLite log's own :func:`~scope_guard.risklog.sqlite_schema.to_row`
and :func:`~scope_guard.risklog.sqlite_schema.from_row`, so both logs hold the same records.
Schema version ``N`` means the same columns in both; ``MIGRATIONS`` here must grow with the
SQLite ones (a test checks that they have the same length).

Differences, and why:

- The JSON columns are ``TEXT``, not ``JSONB``: JSONB reorders object keys and refuses ``\\u0000``,
  and a record must read back exactly as written.
- ``(request_id, attempt)`` is kept unique by a hash exclusion constraint instead of a B-tree
  ``UNIQUE``: a B-tree entry holds at most ~2.7 kB, and request ids are caller-chosen strings of
  any length. ``INSERT ... ON CONFLICT DO NOTHING`` honours it, race-free, as it does a unique
  index (keep-first, like SQLite's ``INSERT OR IGNORE``).
- PostgreSQL text cannot hold NUL: a NUL in a plain column (``request_id``, ``error``, ...) is
  stored as the six characters ``\\u0000``, as lone surrogates are (see ``storable``). The JSON
  columns need nothing: JSON already writes NUL as ``\\u0000``.
- The metadata tables are prefixed ``scope_guard_``: a PostgreSQL database is often shared with
  other applications, where a bare ``schema_version`` may already exist. Tables live in the
  connection's ``search_path`` (choose a schema with ``?options=-csearch_path%3Dmy_schema``).
- ``scope_guard_log_key`` holds the log's HMAC key (one row); see :mod:`.postgres`.
"""

from __future__ import annotations

import sqlite3
from typing import Any, cast

import psycopg

from scope_guard.errors import ArtifactError
from scope_guard.risklog import sqlite_schema
from scope_guard.risklog.record import RiskRecord

__all__ = [
    "INSERT_SQL",
    "KEY_TABLE",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SELECT_SQL",
    "VERSION_TABLE",
    "from_row",
    "migrate",
    "schema_version",
    "to_row",
]

VERSION_TABLE = "scope_guard_schema_version"
KEY_TABLE = "scope_guard_log_key"
#: Any fixed 64-bit number: the advisory lock that serialises migrations across hosts.
_MIGRATION_LOCK = 0x5C09E_6A12D

#: ``MIGRATIONS[v]`` brings a database from version ``v`` to ``v + 1`` (as in SQLite).
MIGRATIONS: tuple[str, ...] = (
    f"""
    CREATE TABLE risk_records (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        request_id TEXT NOT NULL,
        root_run_id TEXT,
        attempt BIGINT NOT NULL,
        created TEXT NOT NULL,
        created_ts DOUBLE PRECISION NOT NULL,
        action TEXT NOT NULL,
        stand_in INTEGER NOT NULL,
        error TEXT,
        question_hash TEXT,
        prompt_hash TEXT,
        response_hash TEXT,
        n_contexts BIGINT NOT NULL,
        scores TEXT NOT NULL,
        detectors TEXT NOT NULL,
        flagged_claims TEXT NOT NULL,
        timings TEXT NOT NULL,
        versions TEXT NOT NULL,
        reasons TEXT NOT NULL,
        meta TEXT NOT NULL,
        texts TEXT,
        extra TEXT,
        CONSTRAINT risk_records_request_attempt
            EXCLUDE USING hash ((attempt::text || ':' || request_id) WITH =)
    );
    CREATE INDEX idx_risk_records_created ON risk_records (created_ts, id);
    CREATE INDEX idx_risk_records_action ON risk_records (action, created_ts, id);
    CREATE INDEX idx_risk_records_root_run ON risk_records (root_run_id);
    CREATE INDEX idx_risk_records_stand_in ON risk_records (stand_in);
    CREATE INDEX idx_risk_records_error ON risk_records (error) WHERE error IS NOT NULL;
    CREATE TABLE {KEY_TABLE} (
        id SMALLINT PRIMARY KEY CHECK (id = 1),
        secret BYTEA NOT NULL CHECK (octet_length(secret) >= 16),
        created TIMESTAMPTZ NOT NULL DEFAULT now()
    )
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = sqlite_schema._COLUMNS  # one column order for both logs
INSERT_SQL = (
    f"INSERT INTO risk_records ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('%s' for _ in _COLUMNS)}) ON CONFLICT DO NOTHING"
)
SELECT_SQL = f"SELECT id, {', '.join(_COLUMNS)} FROM risk_records"


def to_row(record: RiskRecord) -> tuple[Any, ...]:
    """The SQLite row of ``record``, with NUL (which PostgreSQL text refuses) escaped."""
    return tuple(
        value.replace("\x00", "\\u0000") if isinstance(value, str) else value
        for value in sqlite_schema.to_row(record)
    )


def from_row(row: dict[str, Any]) -> RiskRecord:
    """The record of a row fetched as a dict (the SQLite reader only indexes it by name)."""
    return sqlite_schema.from_row(cast(sqlite3.Row, row))


def _exists(conn: psycopg.Connection[Any], table: str) -> bool:
    """Whether ``table`` exists in the schema new tables go to (``current_schema()``).

    A plain query of ``pg_class`` under the statement's snapshot, not ``to_regclass``: the
    latter reads a catalog snapshot that taking an advisory lock does not refresh, so a
    writer that waited for another's migration would not see its tables.
    """
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relname = %s AND n.nspname = current_schema()) "
        "AS found",
        (table,),
    ).fetchone()
    return bool(row and _first(row))


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def schema_version(conn: psycopg.Connection[Any], label: str, *, strict: bool = True) -> int:
    """The schema version of the log in ``conn``'s search path (0: none there yet).

    Args:
        strict: Refuse a ``risk_records`` table without a version. Only meaningful while no
            one can be migrating (under the migration lock, or for a reader): otherwise another
            writer's migration may commit between the two checks.

    Raises:
        ArtifactError: (``strict``) A ``risk_records`` table exists without a version.
    """
    if not _exists(conn, VERSION_TABLE):
        if strict and _exists(conn, "risk_records"):
            msg = f"{label} has a risk_records table but is not a scope-guard risk log"
            raise ArtifactError(msg)
        return 0
    row = conn.execute(f"SELECT MAX(version) AS v FROM {VERSION_TABLE}").fetchone()
    return int(_first(row) or 0) if row else 0


def check_version(version: int, label: str) -> None:
    """Refuse a log written by a newer schema than this code knows."""
    if version > SCHEMA_VERSION:
        msg = (
            f"risk log {label} has schema version {version}; this scope-guard reads up to "
            f"{SCHEMA_VERSION}: upgrade scope-guard"
        )
        raise ArtifactError(msg)


def migrate(conn: psycopg.Connection[Any], label: str) -> None:
    """Bring the log to :data:`SCHEMA_VERSION` in one transaction (``conn`` in autocommit).

    A transaction-scoped advisory lock serialises writers opening the same new database from
    any host: the second one sees the first one's version and applies nothing. A current log is
    left alone without taking the lock. DDL is transactional in PostgreSQL, so a migration
    interrupted half-way leaves the previous version intact.
    """
    version = schema_version(conn, label, strict=False)
    check_version(version, label)
    if version == SCHEMA_VERSION:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        version = schema_version(conn, label)
        check_version(version, label)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
            "(version INTEGER NOT NULL, applied TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (%s)", (step + 1,))
