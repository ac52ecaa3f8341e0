"""LangChain integration: the only part of scope-guard that imports ``langchain_core``.

Monitor an existing chain (log only, never interfere)::

    from scope_guard import ScopeGuard
    from scope_guard.integrations.langchain import ScopeGuardCallbackHandler, guard_runnable

    guard = ScopeGuard(risk_log="risk.db")
    chain.invoke(question, config={"callbacks": [ScopeGuardCallbackHandler(guard)]})

Let the guard act (regenerate, then fall back)::

    guarded = guard_runnable(chain, guard, max_attempts=2)
    answer = guarded.invoke(question)
    report = guarded.last_report()  # this thread's / task's last call: report.outcome, ...

What was served is in every report's ``outcome`` (the decision is what the policy
recommended). Under concurrency in one context (``batch``, the guarded runnable as a step of
a larger chain) give each call its own ``config["run_id"]`` and ask
``guarded.report_for(run_id)``; a handler answers ``handler.last_report(run_id)``.

Share one reader among many application servers: give the handler or the runnable a
:class:`RemoteGuard` (a client of ``scope-guard serve``) instead of a local guard
(:mod:`scope_guard.integrations.langchain.remote`).
"""

from __future__ import annotations

from scope_guard.integrations.langchain.callback import (
    VIOLATIONS,
    AsyncScopeGuardCallbackHandler,
    HandlerStats,
    ScopeGuardCallbackHandler,
)
from scope_guard.integrations.langchain.collector import Capture, RunCollector
from scope_guard.integrations.langchain.remote import (
    RemoteGuard,
    RemoteGuardError,
    remote_guard_runnable,
    remote_handler,
)
from scope_guard.integrations.langchain.runnable import (
    ATTEMPT_TAG,
    DEFAULT_FALLBACK,
    REPORT_EVENT,
    GuardedRunnable,
    guard_runnable,
    wrap,
)

__all__ = [
    "ATTEMPT_TAG",
    "DEFAULT_FALLBACK",
    "REPORT_EVENT",
    "VIOLATIONS",
    "AsyncScopeGuardCallbackHandler",
    "Capture",
    "GuardedRunnable",
    "HandlerStats",
    "RemoteGuard",
    "RemoteGuardError",
    "RunCollector",
    "ScopeGuardCallbackHandler",
    "guard_runnable",
    "remote_guard_runnable",
    "remote_handler",
    "wrap",
]
