"""The LangChain handler and runnable with a remote guard: many application servers, one reader.

The handler and the guarded runnable take any guard-like object; a
:class:`~scope_guard.serve.client.RemoteGuard` is one, whose assessments run on a
``scope-guard serve`` service (one risk record per assessment, written there)::

    from scope_guard.integrations.langchain import RemoteGuard, remote_handler

    guard = RemoteGuard("http://guard.internal:8000", failure_mode="closed")
    chain.invoke(question, config={"callbacks": [remote_handler(guard)]})
    guarded = remote_guard_runnable(chain, guard, max_attempts=2)

The service's failure (refused connection, timeout, 5xx, a malformed reply) follows the remote
guard's ``failure_mode`` exactly as a local guard's failure follows its own: ``"open"`` lets
the answer pass, ``"closed"`` makes the runnable serve the fallback (and a gate handler raise).
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.runnables import Runnable

from scope_guard.integrations.langchain.callback import (
    AsyncScopeGuardCallbackHandler,
    ScopeGuardCallbackHandler,
)
from scope_guard.integrations.langchain.runnable import GuardedRunnable, guard_runnable
from scope_guard.serve.client import RemoteGuard, RemoteGuardError

__all__ = ["RemoteGuard", "RemoteGuardError", "remote_guard_runnable", "remote_handler"]


def _remote(guard: RemoteGuard | str) -> RemoteGuard:
    return RemoteGuard(guard) if isinstance(guard, str) else guard


def remote_handler(
    guard: RemoteGuard | str,
    mode: Literal["monitor", "gate"] = "monitor",
    *,
    asynchronous: bool = False,
    **kwargs: Any,
) -> ScopeGuardCallbackHandler | AsyncScopeGuardCallbackHandler:
    """A callback handler assessing on the service (arguments: ``ScopeGuardCallbackHandler``).

    Args:
        guard: A :class:`RemoteGuard`, or the service's URL (default client settings).
        mode: ``"monitor"`` or ``"gate"``.
        asynchronous: The async handler (for ``ainvoke``/``astream`` runs: it awaits the
            service without a worker thread).
    """
    cls = AsyncScopeGuardCallbackHandler if asynchronous else ScopeGuardCallbackHandler
    return cls(_remote(guard), mode=mode, **kwargs)


def remote_guard_runnable(
    chain: Runnable[Any, Any], guard: RemoteGuard | str, **kwargs: Any
) -> GuardedRunnable:
    """``chain`` under the remote guard (arguments: :func:`guard_runnable`)."""
    return guard_runnable(chain, _remote(guard), **kwargs)
