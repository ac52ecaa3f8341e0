"""What the sync and async scope-guard handlers share: per-root collection, the exchange they
assess, the kept reports, the gate decision, and the wrapper that keeps the handler's own
failures away from the host chain."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar
from uuid import UUID

from scope_guard.errors import ConfigError, ScopeViolation
from scope_guard.integrations.langchain._hooks import Route
from scope_guard.integrations.langchain._text import NO_CONTEXT_REASON
from scope_guard.integrations.langchain.collector import Capture, RunCollector
from scope_guard.types import Action, Exchange, Outcome, RiskReport

__all__ = ["VIOLATIONS", "GuardHandlerBase", "HandlerStats", "never_raises"]

logger = logging.getLogger(__name__)

VIOLATIONS = frozenset({Action.REGENERATE, Action.FALLBACK, Action.BLOCK})
"""Actions on which the gate raises and the guarded runnable acts."""

_F = TypeVar("_F", bound=Callable[..., Any])


class HandlerStats:
    """Thread-safe counters of a handler: roots assessed, violations, skipped roots (no model
    answer to assess), host errors (roots that failed), and the handler's own errors
    (swallowed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.assessed = 0
        self.violations = 0
        self.skipped = 0
        self.host_errors = 0
        self.handler_errors = 0

    def add(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def as_dict(self) -> dict[str, int]:
        names = ("assessed", "violations", "skipped", "host_errors", "handler_errors")
        return {n: getattr(self, n) for n in names}


def never_raises(hook: _F) -> _F:
    """Run a hook; let only ScopeViolation out, log and count anything else."""
    if inspect.iscoroutinefunction(hook):

        @functools.wraps(hook)
        async def awrapper(self: GuardHandlerBase, *args: Any, **kwargs: Any) -> Any:
            try:
                return await hook(self, *args, **kwargs)
            except ScopeViolation:
                raise
            except Exception:
                self._handler_failed(hook.__name__)
                return None

        return awrapper  # type: ignore[return-value]

    @functools.wraps(hook)
    def wrapper(self: GuardHandlerBase, *args: Any, **kwargs: Any) -> Any:
        try:
            return hook(self, *args, **kwargs)
        except ScopeViolation:
            raise
        except Exception:
            self._handler_failed(hook.__name__)
            return None

    return wrapper  # type: ignore[return-value]


class GuardHandlerBase:
    """State and decisions shared by the sync and async handlers."""

    raise_error: bool

    def __init__(
        self,
        guard: Any,
        *,
        mode: Literal["monitor", "gate"] = "monitor",
        max_runs: int = 1024,
        ttl_s: float | None = 3600.0,
        max_reports: int = 1024,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if mode not in ("monitor", "gate"):
            msg = f"mode must be 'monitor' or 'gate', got {mode!r}"
            raise ConfigError(msg)
        self.guard = guard
        self.mode = mode
        self.raise_error = mode == "gate"
        self.meta = dict(meta or {})
        self.collector = RunCollector(max_runs=max_runs, ttl_s=ttl_s)
        self.stats = HandlerStats()
        self.max_reports = max_reports
        self._reports: OrderedDict[str, RiskReport] = OrderedDict()
        self._reports_lock = threading.Lock()

    # ------------------------------------------------------------------ inspection
    def last_report(self, root_run_id: UUID | str | None = None) -> RiskReport | None:
        """The report of a root run (by id), or the most recent one; ``None`` when unknown.

        Under concurrency ask by id: give the call its own ``run_id`` and look it up::

            run_id = uuid.uuid4()
            answer = chain.invoke(q, config={"callbacks": [handler], "run_id": run_id})
            report = handler.last_report(run_id)  # report.outcome, report.decision, ...

        Only the last ``max_reports`` reports are kept.
        """
        with self._reports_lock:
            if root_run_id is None:
                return next(reversed(self._reports.values()), None)
            return self._reports.get(str(root_run_id))

    @property
    def reports(self) -> list[RiskReport]:
        """The kept reports, oldest first."""
        with self._reports_lock:
            return list(self._reports.values())

    # ------------------------------------------------------------------ collecting
    def _routed(
        self, hook: str, route: Route, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Exchange | None:
        """Forward one event to the collector; the exchange to assess when a root ended with
        an answer. Never raises: the handler's own failure is logged and counted."""
        try:
            routed = route(self.collector, *args, **kwargs)
            if routed is None:
                return None
            if routed.error is not None:
                self._root_failed(routed.failed, routed.error)
            return self._exchange(routed.capture) if routed.capture is not None else None
        except Exception:
            self._handler_failed(hook)
            return None

    def _outcome(self, report: RiskReport) -> Outcome:
        """What a handler serves: the host's answer (it cannot change an output), or in gate
        mode the ScopeViolation it raises into the host on a violation."""
        if self.mode == "gate" and report.decision.action in VIOLATIONS:
            return Outcome.RAISED
        return Outcome.ANSWER

    def _exchange(self, capture: Capture) -> Exchange | None:
        if capture.response is None:
            self.stats.add("skipped")
            return None
        meta = {"source": "langchain-callback", "mode": self.mode, **self.meta}
        if capture.model:
            meta["model"] = capture.model
        root = str(capture.root_run_id)
        return Exchange(
            request_id=root,
            root_run_id=root,
            question=capture.question,
            contexts=list(capture.contexts),
            prompt=capture.prompt,
            response=capture.response,
            meta=meta,
            no_context_reason=None if capture.contexts else NO_CONTEXT_REASON,
        )

    def _decided(self, report: RiskReport) -> None:
        """Keep the report; in gate mode, raise on a violation."""
        self.stats.add("assessed")
        with self._reports_lock:
            self._reports[report.root_run_id or report.request_id] = report
            while len(self._reports) > self.max_reports:
                self._reports.popitem(last=False)
        if report.decision.action in VIOLATIONS:
            self.stats.add("violations")
            if self.mode == "gate":
                raise ScopeViolation(report.decision, report=report)

    def _root_failed(self, released: bool, error: BaseException) -> None:
        if not released:
            return
        # an async stream the consumer abandoned ends in GeneratorExit: not a host failure
        self.stats.add("skipped" if isinstance(error, GeneratorExit) else "host_errors")

    def _handler_failed(self, hook: str) -> None:
        self.stats.add("handler_errors")
        logger.exception("scope-guard callback %s failed; the host chain goes on", hook)
