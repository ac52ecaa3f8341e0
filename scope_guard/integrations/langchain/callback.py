"""LangChain callback handlers that assess each root run's answer: monitor or gate.

When the assessment happens: when the ROOT run ends. For a chain that is the chain's
``on_chain_end``, with the last model response of the run (a chain that calls a model to
rewrite the query and then to answer is judged on the answer) and the prompt of that call; for
a bare model call (no chain) it is the model's ``on_llm_end``. A root with no model call is
judged on its text output (a string, a message, or a dict's ``answer``/``output``... key), and
not at all when it has none. A root that fails (``on_chain_error``/``on_llm_error``) is released
and not logged: there is no answer to assess, and the host's own error is the host's to report.

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
inspection: :meth:`last_report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from scope_guard.integrations.langchain._handler_core import (
    VIOLATIONS,
    GuardHandlerBase,
    HandlerStats,
    never_raises,
)
from scope_guard.integrations.langchain.collector import Capture

__all__ = [
    "VIOLATIONS",
    "AsyncScopeGuardCallbackHandler",
    "HandlerStats",
    "ScopeGuardCallbackHandler",
]


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

    @never_raises
    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.collector.chain_start(inputs, run_id=run_id, parent_run_id=parent_run_id)

    @never_raises
    def on_retriever_start(
        self,
        serialized: Any,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.collector.retriever_start(query, run_id=run_id, parent_run_id=parent_run_id)

    @never_raises
    def on_retriever_end(
        self,
        documents: Sequence[Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.collector.retriever_end(documents, run_id=run_id, parent_run_id=parent_run_id)

    @never_raises
    def on_chat_model_start(
        self, serialized: Any, messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self._chat_start(messages, **kwargs)

    @never_raises
    def on_llm_start(self, serialized: Any, prompts: list[str], **kwargs: Any) -> None:
        self._llm_start(prompts, **kwargs)

    @never_raises
    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.collector.model_token(token, run_id=run_id)

    @never_raises
    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self._assess(self.collector.model_end(response, run_id=run_id))

    @never_raises
    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._root_failed(self.collector.model_error(run_id=run_id))

    @never_raises
    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        capture = self.collector.chain_end(outputs, run_id=run_id, inputs=kwargs.get("inputs"))
        self._assess(capture)

    @never_raises
    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._root_failed(self.collector.chain_error(run_id=run_id))

    def _assess(self, capture: Capture | None) -> None:
        exchange = self._exchange(capture) if capture is not None else None
        if exchange is not None:
            self._decided(self.guard.assess(exchange))


class AsyncScopeGuardCallbackHandler(GuardHandlerBase, AsyncCallbackHandler):
    """Asynchronous handler: like :class:`ScopeGuardCallbackHandler`, assessing with
    ``await guard.aassess(...)`` (a worker thread), so the event loop is never blocked.

    Takes the same arguments as :class:`ScopeGuardCallbackHandler`.
    """

    @never_raises
    async def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.collector.chain_start(inputs, run_id=run_id, parent_run_id=parent_run_id)

    @never_raises
    async def on_retriever_start(
        self,
        serialized: Any,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.collector.retriever_start(query, run_id=run_id, parent_run_id=parent_run_id)

    @never_raises
    async def on_retriever_end(
        self,
        documents: Sequence[Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.collector.retriever_end(documents, run_id=run_id, parent_run_id=parent_run_id)

    @never_raises
    async def on_chat_model_start(
        self, serialized: Any, messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self._chat_start(messages, **kwargs)

    @never_raises
    async def on_llm_start(self, serialized: Any, prompts: list[str], **kwargs: Any) -> None:
        self._llm_start(prompts, **kwargs)

    @never_raises
    async def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.collector.model_token(token, run_id=run_id)

    @never_raises
    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        await self._aassess(self.collector.model_end(response, run_id=run_id))

    @never_raises
    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._root_failed(self.collector.model_error(run_id=run_id))

    @never_raises
    async def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        capture = self.collector.chain_end(outputs, run_id=run_id, inputs=kwargs.get("inputs"))
        await self._aassess(capture)

    @never_raises
    async def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._root_failed(self.collector.chain_error(run_id=run_id))

    async def _aassess(self, capture: Capture | None) -> None:
        exchange = self._exchange(capture) if capture is not None else None
        if exchange is not None:
            self._decided(await self.guard.aassess(exchange))
