"""A risk-log sink that emits one structured line per record through Python ``logging``.

The message is ``risk_record <json>`` (the record without its empty/None fields), and the same
data rides along as ``extra={"risk_record": {...}}`` for handlers that format structured logs
(JSON formatters, OpenTelemetry). Raw texts appear only when the record holds them, which it
does only when the guard was told to log text.
"""

from __future__ import annotations

import json
import logging
from types import TracebackType

from scope_guard.risklog.record import RiskRecord

__all__ = ["LoggingRiskLog"]


class LoggingRiskLog:
    """Risk-log sink writing to a logger; durability is whatever its handlers provide.

    Args:
        logger_name: The logger to write to, or a :class:`logging.Logger`.
        level: The level of each record's line (``logging.INFO`` by default).
    """

    def __init__(
        self, logger_name: str | logging.Logger = "scope_guard.risk", level: int = logging.INFO
    ) -> None:
        self.logger = (
            logger_name
            if isinstance(logger_name, logging.Logger)
            else logging.getLogger(logger_name)
        )
        self.level = level

    def write(self, record: RiskRecord) -> None:
        """Emit one log line for ``record`` (thread-safe, as ``logging`` is)."""
        if not self.logger.isEnabledFor(self.level):
            return
        payload = json.loads(record.model_dump_json(exclude_none=True))  # strict JSON: no NaN
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        self.logger.log(self.level, "risk_record %s", text, extra={"risk_record": payload})

    def close(self) -> None:
        """Nothing to release: the logger and its handlers belong to the application."""

    def __enter__(self) -> LoggingRiskLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LoggingRiskLog({self.logger.name!r}, level={logging.getLevelName(self.level)})"
