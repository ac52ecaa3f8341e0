"""Turning a user's ``risk_log=`` setting into a sink, and a stored log into a reader."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.risklog.fanout import NullRiskLog
from scope_guard.risklog.jsonl import JSONLReader, JSONLRiskLog
from scope_guard.risklog.logging_sink import LoggingRiskLog
from scope_guard.risklog.postgres_url import is_postgres_url
from scope_guard.risklog.query import RiskLogReader
from scope_guard.risklog.record import RiskLogSink
from scope_guard.risklog.sqlite import SQLiteRiskLog

if TYPE_CHECKING:
    from scope_guard.risklog.postgres import PostgresRiskLog

__all__ = ["JSONL_SUFFIXES", "SQLITE_SUFFIXES", "open_risk_log", "read_risk_log"]

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
JSONL_SUFFIXES = (".jsonl",)
_SQLITE_MAGIC = b"SQLite format 3\x00"
_OPTIONS = (
    "a path ending in .db, .sqlite or .sqlite3 (SQLite, the default), a path ending in .jsonl "
    "(JSON Lines), a postgresql:// URL (PostgreSQL), 'logging' or 'logging:<logger name>' "
    "(Python logging), None (no log), or an object with write(record) and close()"
)


def open_risk_log(target: str | os.PathLike[str] | RiskLogSink | None) -> RiskLogSink:
    """The sink a ``risk_log=`` setting names.

    Args:
        target: ``*.db`` / ``*.sqlite`` / ``*.sqlite3`` -> :class:`SQLiteRiskLog`; ``*.jsonl`` ->
            :class:`JSONLRiskLog`; ``postgresql://...`` / ``postgres://...`` ->
            :class:`~scope_guard.risklog.postgres.PostgresRiskLog`; ``"logging"`` (or
            ``"logging:<name>"``) -> :class:`LoggingRiskLog`; ``None`` -> :class:`NullRiskLog`;
            any object with ``write`` and ``close`` is returned as is.

    Raises:
        ConfigError: ``target`` is none of these (the message lists them), or a PostgreSQL URL
            without the ``postgres`` extra installed.
        ArtifactError: The file or database exists but cannot be used (not a risk log, newer
            schema, unreachable server).
    """
    if target is None:
        return NullRiskLog()
    if is_postgres_url(target):
        return _postgres(str(target), readonly=False)
    if isinstance(target, str) and (target == "logging" or target.startswith("logging:")):
        name = target.partition(":")[2] or "scope_guard.risk"
        return LoggingRiskLog(name)
    if isinstance(target, str | os.PathLike):
        path = Path(target)
        suffix = path.suffix.lower()
        if suffix in SQLITE_SUFFIXES:
            return SQLiteRiskLog(path)
        if suffix in JSONL_SUFFIXES:
            return JSONLRiskLog(path)
        msg = f"unknown risk log target {str(target)!r}: use {_OPTIONS}"
        raise ConfigError(msg)
    if isinstance(target, RiskLogSink):
        return target
    msg = f"unknown risk log target of type {type(target).__name__}: use {_OPTIONS}"
    raise ConfigError(msg)


def _postgres(url: str, *, readonly: bool) -> PostgresRiskLog:
    try:
        from scope_guard.risklog.postgres import PostgresRiskLog
    except ImportError as exc:  # psycopg is the optional ``postgres`` extra
        msg = f"a PostgreSQL risk log needs psycopg: pip install 'scope-guard[postgres]' ({exc})"
        raise ConfigError(msg) from None
    return PostgresRiskLog(url, readonly=readonly)


def read_risk_log(path: str | os.PathLike[str]) -> RiskLogReader:
    """A reader of a stored SQLite, JSONL or PostgreSQL risk log (opened read-only).

    A ``postgresql://`` URL opens the database with read-only transactions. A file's kind is
    taken from its first bytes (SQLite's header), then its suffix.

    Raises:
        ArtifactError: The file or database does not exist, or is not a readable risk log.
        ConfigError: The file is neither SQLite nor named ``*.jsonl``.
    """
    if is_postgres_url(path):
        return _postgres(str(path), readonly=True)
    path = Path(path)
    if not path.is_file():
        msg = f"risk log {path} does not exist"
        raise ArtifactError(msg)
    with path.open("rb") as handle:
        head = handle.read(len(_SQLITE_MAGIC))
    suffix = path.suffix.lower()
    if head == _SQLITE_MAGIC or suffix in SQLITE_SUFFIXES:
        return SQLiteRiskLog(path, readonly=True)
    if suffix in JSONL_SUFFIXES:
        return JSONLReader(path)
    msg = f"{path} is not a risk log this reads: expected a SQLite file or a .jsonl file"
    raise ConfigError(msg)
