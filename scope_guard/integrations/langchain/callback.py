"""LangChain callback handlers that assess each root run's answer: monitor or gate.

When the assessment happens: when the ROOT run ends. For a chain that is the chain's
``on_chain_end``, with the last model response of the run (a chain that calls a model to
rewrite the query and then to answer is judged on the answer) and the prompt of that call; for
a bare model call (no chain) it is the model's ``on_llm_end``. Documents retrieved anywhere under
the root count, a retriever called inside a tool included.

What is never assessed (released, counted in ``stats.skipped``, no record):

- a root in which no model call ended: it generated no answer. That covers a bare retriever or
  tool call, a chain whose model emits no callbacks, and the wrapper of
  ``chain.with_fallbacks([...])``: LangChain hands the wrapper's own config to the chain and the
  fallbacks, so each shows up as a root of its own; the chain (and a fallback that calls a
  model) is assessed, gated and logged once, the wrapper and a model-free fallback (a canned
  ``RunnableLambda``) are not. In gate mode a violation of the chain thus makes
  ``with_fallbacks`` serve its fallback;
- a root that ends while a model call is still in flight: a stream the consumer abandoned
  (``break``), whose partial text is not an answer (logged at debug level). An abandoned async
  stream ends in ``GeneratorExit`` instead: skipped too, not counted as a host error.

A root that fails (``on_chain_error``/``on_llm_error``/``on_tool_error``/``on_retriever_error``)
is released and not logged either: the host's own error is the host's to report.

Modes:
- ``"monitor"``: score and log, never interfere. Every hook is wrapped: a bug of the handler
  (or of the guard, with ``raise_errors``) is logged and counted in :attr:`stats`, never raised.
- ``"gate"``: also ``raise_error = True`` and, when the action is regenerate, fallback or block,
  raise :class:`~scope_guard.errors.ScopeViolation` (carrying the decision and the report) from
  the root's end event, so that a wrapper (``with_fallbacks``, a retry loop) can act. Only that
  signal escapes; the handler's own bugs are still swallowed and counted. LangChain drops
  exceptions of *async* handlers driven by a *sync* run, so gate with the async handler only
  for ``ainvoke``/``astream`` runs. In ``stream`` the chunks are out before the root ends: use
  :func:`~scope_guard.integrations.langchain.guard_runnable` to hold them back.

LangChain stops calling the handlers after one that raises, so in gate mode put this handler
last in the ``callbacks`` list (tracers before it still see the root end).

One handler serves any number of concurrent runs (threads or tasks): all state is keyed by run
ids, guarded by a lock, released when the root ends or fails, and bounded for roots that never
end (:class:`~scope_guard.integrations.langchain.collector.RunCollector`). A callback cannot
change an output; the guarded runnable does that. Reports of recent roots are kept (bounded) for
inspection: :meth:`last_report` (by root run id: give the call its own ``config["run_id"]``).
A report's ``outcome`` says what the host served: ``answer`` (a callback cannot change an
output), or ``raised`` when a gate raised ``ScopeViolation`` into the host.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler

from scope_guard.integrations.langchain._handler_core import (
    VIOLATIONS,
    GuardHandlerBase,
    HandlerStats,
    never_raises,
)
from scope_guard.integrations.langchain._hooks import Route, async_hook, forward_hooks, sync_hook
from scope_guard.types import Exchange

__all__ = [
    "VIOLATIONS",
    "AsyncScopeGuardCallbackHandler",
    "HandlerStats",
    "ScopeGuardCallbackHandler",
]


@forward_hooks(sync_hook)
class ScopeGuardCallbackHandler(GuardHandlerBase, BaseCallbackHandler):
    """Synchronous handler: collects per root run, assesses at the root's end (see the module).

    In async runs LangChain calls it in a worker thread, so the event loop is not blocked.

    Args:
        guard: The :class:`~scope_guard.ScopeGuard` (anything with ``assess``/``aassess``).
        mode: ``"monitor"`` (log only) or ``"gate"`` (raise ``ScopeViolation`` on violations).
        max_runs: Most root runs tracked at once (runs that never end are dropped beyond it).
        ttl_s: Seconds after which a root that never ended is dropped (``None``: never).
        max_reports: Most recent reports kept for :meth:`last_report`.
        meta: Extra metadata put in every exchange (and so in every risk record).
    """

    def _forward(
        self, hook: str, route: Route, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        exchange = self._routed(hook, route, args, kwargs)
        if exchange is not None:
            self._assess(exchange)

    @never_raises
    def _assess(self, exchange: Exchange) -> None:
        self._decided(self.guard.assess(exchange, outcome=self._outcome))


@forward_hooks(async_hook)
class AsyncScopeGuardCallbackHandler(GuardHandlerBase, AsyncCallbackHandler):
    """Asynchronous handler: like :class:`ScopeGuardCallbackHandler`, assessing with
    ``await guard.aassess(...)`` (a worker thread), so the event loop is never blocked.

    Takes the same arguments as :class:`ScopeGuardCallbackHandler`.
    """

    async def _aforward(
        self, hook: str, route: Route, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        exchange = self._routed(hook, route, args, kwargs)
        if exchange is not None:
            await self._aassess(exchange)

    @never_raises
    async def _aassess(self, exchange: Exchange) -> None:
        self._decided(await self.guard.aassess(exchange, outcome=self._outcome))
