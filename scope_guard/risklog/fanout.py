"""Composite sinks: several sinks behind one (``MultiRiskLog``), and none (``NullRiskLog``)."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from scope_guard.risklog.record import RiskLogSink, RiskRecord

__all__ = ["MultiRiskLog", "NullRiskLog"]

logger = logging.getLogger(__name__)


class MultiRiskLog:
    """Writes every record to each of ``sinks``, in order.

    A failing sink does not keep the record from the others: every sink is tried, then the
    first error is raised (the others are logged). ``close`` closes every sink once.
    """

    def __init__(self, *sinks: RiskLogSink) -> None:
        self.sinks: tuple[RiskLogSink, ...] = sinks
        self._closed = False
        self._lock = threading.Lock()

    def write(self, record: RiskRecord) -> None:
        self._each("write", record)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._each("close")

    def _each(self, method: str, *args: RiskRecord) -> None:
        first: BaseException | None = None
        for sink in self.sinks:
            try:
                getattr(sink, method)(*args)
            except Exception as exc:  # every sink gets its turn; the first error is re-raised
                if first is None:
                    first = exc
                else:
                    logger.error("risk log sink %r failed to %s: %s", sink, method, exc)
        if first is not None:
            raise first

    def __enter__(self) -> MultiRiskLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MultiRiskLog({', '.join(repr(s) for s in self.sinks)})"


class NullRiskLog:
    """A sink that keeps nothing: what ``open_risk_log(None)`` gives (logging switched off)."""

    def write(self, record: RiskRecord) -> None:
        """Discard ``record``."""

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> NullRiskLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return "NullRiskLog()"
