"""The SQLite risk log's schema: migrations, and the mapping between a record and a row.

One row per record. Columns the queries filter on are plain, indexed columns; the rest of the
record is JSON. ``texts`` holds the raw texts only when the record has them. Fields added to
:class:`RiskRecord` after the current schema are kept in ``extra`` until a migration gives them
columns, so an older schema never drops data.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from scope_guard.errors import ArtifactError
from scope_guard.risklog.query import created_at
from scope_guard.risklog.record import RiskRecord

__all__ = [
    "INSERT_SQL",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SELECT_SQL",
    "check_version",
    "from_row",
    "migrate",
    "schema_version",
    "to_row",
]

#: Migrations, in order: ``MIGRATIONS[v]`` brings a database from version ``v`` to ``v + 1``.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE risk_records (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id TEXT NOT NULL,
        root_run_id TEXT,
        attempt INTEGER NOT NULL,
        created TEXT NOT NULL,
        created_ts REAL NOT NULL,
        action TEXT NOT NULL,
        stand_in INTEGER NOT NULL,
        error TEXT,
        question_hash TEXT,
        prompt_hash TEXT,
        response_hash TEXT,
        n_contexts INTEGER NOT NULL,
        scores TEXT NOT NULL,
        detectors TEXT NOT NULL,
        flagged_claims TEXT NOT NULL,
        timings TEXT NOT NULL,
        versions TEXT NOT NULL,
        reasons TEXT NOT NULL,
        meta TEXT NOT NULL,
        texts TEXT,
        extra TEXT,
        UNIQUE (request_id, attempt)
    );
    CREATE INDEX idx_risk_records_created ON risk_records (created_ts);
    CREATE INDEX idx_risk_records_action ON risk_records (action, created_ts);
    CREATE INDEX idx_risk_records_root_run ON risk_records (root_run_id);
    CREATE INDEX idx_risk_records_stand_in ON risk_records (stand_in);
    CREATE INDEX idx_risk_records_error ON risk_records (error) WHERE error IS NOT NULL;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_SCALARS = (
    "request_id", "root_run_id", "attempt", "created", "action", "stand_in", "error",
    "question_hash", "prompt_hash", "response_hash", "n_contexts",
)  # fmt: skip
#: RiskRecord field -> JSON column.
_JSON = {
    "scores": "scores", "detectors": "detectors", "flagged_claims": "flagged_claims",
    "timings_ms": "timings", "versions": "versions", "reasons": "reasons", "meta": "meta",
}  # fmt: skip
_TEXTS = ("question", "prompt", "response", "contexts")
_COLUMNS = (*_SCALARS, "created_ts", *_JSON.values(), "texts", "extra")
INSERT_SQL = (
    f"INSERT OR IGNORE INTO risk_records ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
SELECT_SQL = f"SELECT id, {', '.join(_COLUMNS)} FROM risk_records"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def to_row(record: RiskRecord) -> tuple[Any, ...]:
    # Through the record's own JSON: non-finite scores become "NaN"/"Infinity" strings, which
    # SQLite's JSON functions accept and which validate back to floats.
    data = json.loads(record.model_dump_json())
    texts = {k: data.pop(k) for k in _TEXTS if data.get(k) is not None}
    for k in _TEXTS:
        data.pop(k, None)
    scalars = [data.pop(k) for k in _SCALARS]
    scalars[_SCALARS.index("stand_in")] = int(scalars[_SCALARS.index("stand_in")])
    blobs = [_dumps(data.pop(field)) for field in _JSON]
    # Fields added to RiskRecord after this schema survive in ``extra`` until a migration.
    return (
        *scalars,
        created_at(record).timestamp(),
        *blobs,
        _dumps(texts) if texts else None,
        _dumps(data) if data else None,
    )


def from_row(row: sqlite3.Row) -> RiskRecord:
    data: dict[str, Any] = {k: row[k] for k in _SCALARS}
    data["stand_in"] = bool(data["stand_in"])
    data.update({field: json.loads(row[col]) for field, col in _JSON.items()})
    data.update(json.loads(row["texts"]) if row["texts"] else {})
    data.update(json.loads(row["extra"]) if row["extra"] else {})
    return RiskRecord.model_validate(data)


def schema_version(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of an open database (0 for a new, empty one).

    Raises:
        ArtifactError: The database has tables but no ``schema_version``: not a risk log.
    """
    try:
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        if conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
            msg = f"{path} is a SQLite database but not a scope-guard risk log"
            raise ArtifactError(msg) from exc
        return 0
    return int(row[0] or 0)


def check_version(version: int, path: Path) -> None:
    """Refuse a database written by a newer schema than this code knows."""
    if version > SCHEMA_VERSION:
        msg = (
            f"risk log {path} has schema version {version}; this scope-guard reads up to "
            f"{SCHEMA_VERSION}: upgrade scope-guard"
        )
        raise ArtifactError(msg)


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the database to :data:`SCHEMA_VERSION` in one write transaction.

    ``BEGIN IMMEDIATE`` serialises processes opening the same new file: the second one sees the
    first one's version and applies nothing. A current database is left alone without taking
    the write lock. The caller retries on "database is locked".
    """
    if schema_version(conn, path) == SCHEMA_VERSION:
        return  # the common case: no write lock needed to open a current log
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn, path)
        check_version(current, path)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER NOT NULL, applied TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        for version in range(current, SCHEMA_VERSION):
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version + 1,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
