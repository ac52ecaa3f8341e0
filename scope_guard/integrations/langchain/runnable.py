"""The guarded runnable: run a chain, assess its answer, regenerate or fall back.

Each attempt runs the chain with the caller's config (callbacks, tags, metadata, configurable)
plus a private collector that captures that attempt's question, documents, prompt and answer;
the guard assesses it (one risk record per attempt: same ``request_id``, ``attempt`` 1, 2, ...).
Then, by the decision's action:

- allow / warn: the output is returned (a dict output gets the report under ``report_key``);
- regenerate: the chain runs again (``regenerate_with`` if given), up to ``max_attempts`` in
  all; a dict input gets the feedback under ``feedback_key`` from the second attempt on (the
  first attempt's input is never changed; a prompt that uses the key should default it, e.g.
  ``prompt.partial(scope_guard_feedback="")``); still a violation after the last: fallback;
- fallback: ``fallback_runnable`` (invoked with the original input) or the canned ``fallback``
  text, shaped like the chain's output;
- block: :class:`~scope_guard.errors.ScopeViolation` (carrying decision and report), or the
  fallback with ``on_block="fallback"``.

Every assessment is also dispatched as a custom event ``"scope_guard_report"`` (data:
``{"report": ..., "attempt": n, "outcome": ...}``), so tracers and ``astream_events`` see it for
any output type; each attempt's run is tagged ``scope_guard:attempt-N`` and the fallback's run
``scope_guard:fallback``. Errors of the chain itself propagate unchanged and are not logged
(there is no answer to assess).

What the caller gets: ``invoke``/``ainvoke``/``batch``/``abatch`` return, and
``stream``/``astream`` yield, only an answer that was assessed and passed, or the fallback (and
an output with no text at all, passed through unassessed). The streams hold the chain's chunks
back until the answer is assessed, then replay them (and a final ``{report_key: report}`` chunk
for dict streams). Tracing is not filtered: callbacks given to the call and ``astream_events``
also see the events of the runs inside each attempt, the ``on_chat_model_stream`` chunks of a
rejected answer included. Every run inside an attempt carries the inherited tag
:data:`ATTEMPT_TAG` (``"scope_guard:attempt"``): ``astream_events(..., exclude_tags=[ATTEMPT_TAG])``
leaves the guarded run's own events, whose output is what the caller gets.

The answer assessed is the attempt's last model response (what the generator wrote), else the
chain output's text (a string, a message, a dict's ``answer``/``output``... key); an output with
neither is passed through unassessed (a warning is logged). Do not also give the same call a
:class:`~scope_guard.integrations.langchain.ScopeGuardCallbackHandler`: it would assess the
guarded run a second time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.utils.pydantic import TypeBaseModel

from scope_guard.errors import ConfigError
from scope_guard.integrations.langchain._attempts import (
    ATTEMPT_TAG,
    AttemptCollector,
    Attempts,
    Step,
)
from scope_guard.integrations.langchain._outputs import add_chunks, attach_report
from scope_guard.types import RiskReport

__all__ = [
    "ATTEMPT_TAG",
    "DEFAULT_FALLBACK",
    "REPORT_EVENT",
    "GuardedRunnable",
    "guard_runnable",
    "wrap",
]

logger = logging.getLogger(__name__)

DEFAULT_FALLBACK = "I'm not able to answer that reliably from the available documents."
REPORT_EVENT = "scope_guard_report"


class GuardedRunnable(Runnable[Any, Any]):
    """A chain under the guard; build it with :func:`guard_runnable` (arguments there)."""

    def __init__(
        self,
        chain: Runnable[Any, Any],
        guard: Any,
        *,
        max_attempts: int = 2,
        regenerate_with: Runnable[Any, Any] | None = None,
        feedback: bool = True,
        feedback_key: str = "scope_guard_feedback",
        fallback: str = DEFAULT_FALLBACK,
        fallback_runnable: Runnable[Any, Any] | None = None,
        on_block: Literal["raise", "fallback"] = "raise",
        report_key: str = "scope_guard",
        name: str | None = None,
    ) -> None:
        if max_attempts < 1:
            msg = f"max_attempts must be at least 1, got {max_attempts}"
            raise ConfigError(msg)
        if on_block not in ("raise", "fallback"):
            msg = f"on_block must be 'raise' or 'fallback', got {on_block!r}"
            raise ConfigError(msg)
        self.chain = chain
        self.guard = guard
        self.max_attempts = max_attempts
        self.regenerate_with = regenerate_with
        self.feedback = feedback
        self.feedback_key = feedback_key
        self.fallback = fallback
        self.fallback_runnable = fallback_runnable
        self.on_block = on_block
        self.report_key = report_key
        self.name = name or "ScopeGuard"

    @property
    def InputType(self) -> Any:  # noqa: N802 (LangChain's name)
        return self.chain.InputType

    @property
    def OutputType(self) -> Any:  # noqa: N802
        return self.chain.OutputType

    def get_input_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        return self.chain.get_input_schema(config)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._invoke, input, config, run_type="chain")

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._ainvoke, input, config, run_type="chain")

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Any]:
        yield from self._transform_stream_with_config(iter([input]), self._stream, config)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Any]:
        async def single() -> AsyncIterator[Any]:
            yield input

        async for chunk in self._atransform_stream_with_config(single(), self._astream, config):
            yield chunk

    # ------------------------------------------------------------------ sync drivers
    def _invoke(
        self, input: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Any:
        attempts = Attempts(self, input, run_manager)
        while True:
            runnable, attempt_input, collector = attempts.next()
            output = runnable.invoke(attempt_input, attempts.config(config, collector))
            step = self._assess(attempts, output, collector, config)
            if step is not Step.RETRY:
                return self._finish(attempts, step, output, config)

    def _stream(
        self, inputs: Iterator[Any], run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Iterator[Any]:
        input = None
        for item in inputs:
            input = add_chunks(input, item)
        attempts = Attempts(self, input, run_manager)
        while True:
            runnable, attempt_input, collector = attempts.next()
            chunks: list[Any] = []
            output = None
            for chunk in runnable.stream(attempt_input, attempts.config(config, collector)):
                chunks.append(chunk)
                output = add_chunks(output, chunk)
            step = self._assess(attempts, output, collector, config)
            if step is Step.RETRY:
                continue
            if step is Step.RETURN:
                yield from attempts.replay(chunks, output)
            else:
                yield self._finish(attempts, step, output, config)
            return

    def _assess(
        self, attempts: Attempts, output: Any, collector: AttemptCollector, config: Any
    ) -> Step:
        exchange = attempts.exchange(output, collector)
        if exchange is None:
            return Step.RETURN
        report: RiskReport = self.guard.assess(exchange)
        step = attempts.decide(report)
        try:
            dispatch_custom_event(REPORT_EVENT, attempts.event(step), config=attempts.child(config))
        except Exception:  # tracing must never break the answer
            logger.exception("could not dispatch the scope-guard report event")
        return step

    def _finish(self, attempts: Attempts, step: Step, output: Any, config: RunnableConfig) -> Any:
        if step is Step.RETURN:
            return attach_report(output, attempts.report, self.report_key)
        attempts.raise_if_blocked(step)
        if self.fallback_runnable is None:
            return attempts.canned(output)
        fallback = self.fallback_runnable.invoke(attempts.input, attempts.fallback_config(config))
        return attach_report(fallback, attempts.report, self.report_key)

    # ------------------------------------------------------------------ async drivers
    async def _ainvoke(
        self, input: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> Any:
        attempts = Attempts(self, input, run_manager)
        while True:
            runnable, attempt_input, collector = attempts.next()
            output = await runnable.ainvoke(attempt_input, attempts.config(config, collector))
            step = await self._aassess(attempts, output, collector, config)
            if step is not Step.RETRY:
                return await self._afinish(attempts, step, output, config)

    async def _astream(
        self,
        inputs: AsyncIterator[Any],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> AsyncIterator[Any]:
        input = None
        async for item in inputs:
            input = add_chunks(input, item)
        attempts = Attempts(self, input, run_manager)
        while True:
            runnable, attempt_input, collector = attempts.next()
            chunks: list[Any] = []
            output = None
            async for chunk in runnable.astream(attempt_input, attempts.config(config, collector)):
                chunks.append(chunk)
                output = add_chunks(output, chunk)
            step = await self._aassess(attempts, output, collector, config)
            if step is Step.RETRY:
                continue
            if step is Step.RETURN:
                for chunk in attempts.replay(chunks, output):
                    yield chunk
            else:
                yield await self._afinish(attempts, step, output, config)
            return

    async def _aassess(
        self, attempts: Attempts, output: Any, collector: AttemptCollector, config: Any
    ) -> Step:
        exchange = attempts.exchange(output, collector)
        if exchange is None:
            return Step.RETURN
        report: RiskReport = await self.guard.aassess(exchange)
        step = attempts.decide(report)
        try:
            await adispatch_custom_event(
                REPORT_EVENT, attempts.event(step), config=attempts.child(config)
            )
        except Exception:  # tracing must never break the answer
            logger.exception("could not dispatch the scope-guard report event")
        return step

    async def _afinish(
        self, attempts: Attempts, step: Step, output: Any, config: RunnableConfig
    ) -> Any:
        if step is Step.RETURN:
            return attach_report(output, attempts.report, self.report_key)
        attempts.raise_if_blocked(step)
        if self.fallback_runnable is None:
            return attempts.canned(output)
        fallback = await self.fallback_runnable.ainvoke(
            attempts.input, attempts.fallback_config(config)
        )
        return attach_report(fallback, attempts.report, self.report_key)


def guard_runnable(
    chain: Runnable[Any, Any],
    guard: Any,
    *,
    max_attempts: int = 2,
    regenerate_with: Runnable[Any, Any] | None = None,
    feedback: bool = True,
    fallback: str = DEFAULT_FALLBACK,
    fallback_runnable: Runnable[Any, Any] | None = None,
    on_block: Literal["raise", "fallback"] = "raise",
    feedback_key: str = "scope_guard_feedback",
    report_key: str = "scope_guard",
) -> GuardedRunnable:
    """Put ``chain`` under ``guard``: assess each answer, regenerate or fall back (module doc).

    Args:
        chain: Any runnable producing an answer (an LCEL RAG chain, a chat model, an LLM).
        guard: The :class:`~scope_guard.ScopeGuard` (``assess``/``aassess``).
        max_attempts: Attempts in all (1 = never regenerate).
        regenerate_with: A stricter chain for attempts 2+ (default: ``chain`` again).
        feedback: Pass the previous attempt's flagged claims to a dict input under
            ``feedback_key`` from attempt 2 on.
        fallback: The canned answer, shaped like the chain's output.
        fallback_runnable: Invoked with the original input instead of the canned answer.
        on_block: ``"raise"`` :class:`~scope_guard.errors.ScopeViolation`, or serve the fallback.
        feedback_key: The input key the feedback goes under.
        report_key: The output key the report (a JSON-ready dict) goes under, for dict outputs.

    Returns:
        A runnable with ``invoke``, ``ainvoke``, ``batch``, ``abatch``, ``stream``, ``astream``.
    """
    return GuardedRunnable(
        chain,
        guard,
        max_attempts=max_attempts,
        regenerate_with=regenerate_with,
        feedback=feedback,
        feedback_key=feedback_key,
        fallback=fallback,
        fallback_runnable=fallback_runnable,
        on_block=on_block,
        report_key=report_key,
    )


wrap = guard_runnable
"""``wrap(chain, guard, ...)``: the same as :func:`guard_runnable`."""
