"""LangChain integration: the only part of scope-guard that imports ``langchain_core``.

Monitor an existing chain (log only, never interfere)::

    from scope_guard import ScopeGuard
    from scope_guard.integrations.langchain import ScopeGuardCallbackHandler, guard_runnable

    guard = ScopeGuard(risk_log="risk.db")
    chain.invoke(question, config={"callbacks": [ScopeGuardCallbackHandler(guard)]})

Let the guard act (regenerate, then fall back)::

    guarded = guard_runnable(chain, guard, max_attempts=2)
    answer = guarded.invoke(question)
"""

from __future__ import annotations

from scope_guard.integrations.langchain.callback import (
    VIOLATIONS,
    AsyncScopeGuardCallbackHandler,
    HandlerStats,
    ScopeGuardCallbackHandler,
)
from scope_guard.integrations.langchain.collector import Capture, RunCollector
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
    "RunCollector",
    "ScopeGuardCallbackHandler",
    "guard_runnable",
    "wrap",
]
