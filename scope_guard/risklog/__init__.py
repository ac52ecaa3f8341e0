"""The risk log: one record per assessed response, written to pluggable sinks and read back.

Sinks: :class:`SQLiteRiskLog` (the embedded default), :class:`JSONLRiskLog`,
:class:`LoggingRiskLog`, :class:`MultiRiskLog` (several at once) and :class:`NullRiskLog`; any
object with ``write(record)`` and ``close()`` satisfies :class:`RiskLogSink`.
:func:`open_risk_log` picks one from a setting, :func:`read_risk_log` opens a stored log for
reading, and :func:`summarize` computes what ``scope-guard log summary`` prints. Text hashes
are keyed (:mod:`scope_guard.risklog.keys`); raw texts are stored only with ``log_text=True``.
"""

from __future__ import annotations

from scope_guard.risklog.fanout import MultiRiskLog, NullRiskLog
from scope_guard.risklog.jsonl import JSONLReader, JSONLRiskLog, ReadStats
from scope_guard.risklog.keys import KEY_ENV, LogKey, key_path, resolve_log_key
from scope_guard.risklog.logging_sink import LoggingRiskLog
from scope_guard.risklog.open import open_risk_log, read_risk_log
from scope_guard.risklog.query import RecordFilter, RiskLogReader, follow_records, parse_time
from scope_guard.risklog.record import RiskLogSink, RiskRecord, text_hash
from scope_guard.risklog.sqlite import SQLiteRiskLog
from scope_guard.risklog.summary import (
    ActionRates,
    LogSummary,
    ScoreStats,
    WorstRecord,
    quantile,
    summarize,
)

__all__ = [
    "KEY_ENV",
    "ActionRates",
    "JSONLReader",
    "JSONLRiskLog",
    "LogKey",
    "LogSummary",
    "LoggingRiskLog",
    "MultiRiskLog",
    "NullRiskLog",
    "ReadStats",
    "RecordFilter",
    "RiskLogReader",
    "RiskLogSink",
    "RiskRecord",
    "SQLiteRiskLog",
    "ScoreStats",
    "WorstRecord",
    "follow_records",
    "key_path",
    "open_risk_log",
    "parse_time",
    "quantile",
    "read_risk_log",
    "resolve_log_key",
    "summarize",
    "text_hash",
]
