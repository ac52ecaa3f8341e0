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
  text, shaped like the chain's output: every value of a dict or list output (nested ones, and
  messages, too) that holds the rejected answer is replaced, so ``.assign(generation=...)``
  serves the fallback under ``generation``; ``output_key=`` names the key when the answer is not
  there verbatim (a dict output with no place for the fallback is refused with a
  ``ConfigError`` asking for it, whatever the decision, so it shows on the first call);
- block: :class:`~scope_guard.errors.ScopeViolation` (carrying decision and report), or the
  fallback with ``on_block="fallback"``.

What was served is recorded: each report (and its risk record) has ``outcome`` ``answer``,
``regenerated`` (a later attempt's answer), ``retry`` (rejected, another attempt followed),
``fallback`` or ``blocked``, beside the decision (what the policy recommended) and the attempt.
A caller of a string-output chain reads it with :meth:`GuardedRunnable.last_report` (the last
call of this thread or asyncio task) or :meth:`GuardedRunnable.report_for` (by the call's
``config["run_id"]``, for ``batch`` and anything concurrent in one context); a dict output
carries it under ``report_key``.

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
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from langchain_core.utils.pydantic import TypeBaseModel

from scope_guard.integrations.langchain._attempts import AttemptCollector, Attempts, Step
from scope_guard.integrations.langchain._outputs import add_chunks, attach_report
from scope_guard.integrations.langchain._settings import (
    ATTEMPT_TAG,
    DEFAULT_FALLBACK,
    REPORT_EVENT,
    GuardSettings,
)
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


class GuardedRunnable(Runnable[Any, Any]):
    """A chain under the guard; build it with :func:`guard_runnable` (arguments there).

    Args:
        settings: How it acts (the chain included).
        guard: The :class:`~scope_guard.ScopeGuard` (``assess``/``aassess``).
        max_reports: Most final reports kept for :meth:`report_for`.
        name: The run's name in traces.
    """

    def __init__(
        self,
        settings: GuardSettings,
        guard: Any,
        *,
        max_reports: int = 1024,
        name: str | None = None,
    ) -> None:
        self.settings = settings
        self.chain = settings.chain
        self.guard = guard
        self.name = name or "ScopeGuard"
        self.max_reports = max_reports
        self._reports: OrderedDict[str, RiskReport] = OrderedDict()
        self._reports_lock = threading.Lock()
        # one per guarded runnable: each thread and asyncio task sees its own last report
        self._last: ContextVar[RiskReport | None] = ContextVar(f"scope_guard_last_{id(self)}")

    @property
    def InputType(self) -> Any:  # noqa: N802 (LangChain's name)
        return self.chain.InputType

    @property
    def OutputType(self) -> Any:  # noqa: N802
        return self.chain.OutputType

    def get_input_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        return self.chain.get_input_schema(config)

    # ------------------------------------------------------------------ reports
    def last_report(self) -> RiskReport | None:
        """The final report of the last ``invoke``/``ainvoke``/``stream``/``astream`` that
        finished in this thread or asyncio task (``None`` if it assessed nothing).

        Each thread and task has its own, so concurrent callers never see each other's; a
        ``batch`` runs its items in other threads: use :meth:`report_for` there.
        """
        return self._last.get(None)

    def report_for(self, run_id: uuid.UUID | str) -> RiskReport | None:
        """The final report of the call run with ``config={"run_id": run_id}`` (the last
        ``max_reports`` calls are kept); ``None`` when unknown or nothing was assessed."""
        with self._reports_lock:
            return self._reports.get(str(run_id))

    def _keep(self, attempts: Attempts) -> None:
        if attempts.report is None:
            return
        with self._reports_lock:
            self._reports[attempts.request_id] = attempts.report
            self._reports.move_to_end(attempts.request_id)
            while len(self._reports) > self.max_reports:
                self._reports.popitem(last=False)

    def _with_run_id(self, config: RunnableConfig | None) -> tuple[RunnableConfig, str]:
        config = ensure_config(config)
        run_id = config.get("run_id") or uuid.uuid4()
        config["run_id"] = run_id
        with self._reports_lock:  # a reused run id must not show an older call's report
            self._reports.pop(str(run_id), None)
        return config, str(run_id)

    def _served(self, run_id: str) -> None:
        self._last.set(self.report_for(run_id))

    # ------------------------------------------------------------------ entry points
    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        config, run_id = self._with_run_id(config)
        try:
            return self._call_with_config(self._invoke, input, config, run_type="chain")
        finally:
            self._served(run_id)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        config, run_id = self._with_run_id(config)
        try:
            return await self._acall_with_config(self._ainvoke, input, config, run_type="chain")
        finally:
            self._served(run_id)

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Any]:
        config, run_id = self._with_run_id(config)
        try:
            yield from self._transform_stream_with_config(iter([input]), self._stream, config)
        finally:
            self._served(run_id)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Any]:
        async def single() -> AsyncIterator[Any]:
            yield input

        config, run_id = self._with_run_id(config)
        try:
            async for chunk in self._atransform_stream_with_config(single(), self._astream, config):
                yield chunk
        finally:
            self._served(run_id)

    # ------------------------------------------------------------------ sync drivers
    def _invoke(
        self, input: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Any:
        attempts = Attempts(self.settings, input, run_manager)
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
        attempts = Attempts(self.settings, input, run_manager)
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
        report: RiskReport = self.guard.assess(exchange, outcome=attempts.outcome)
        step = attempts.decide(report)
        self._keep(attempts)
        try:
            dispatch_custom_event(REPORT_EVENT, attempts.event(), config=attempts.child(config))
        except Exception:  # tracing must never break the answer
            logger.exception("could not dispatch the scope-guard report event")
        return step

    def _finish(self, attempts: Attempts, step: Step, output: Any, config: RunnableConfig) -> Any:
        if step is Step.RETURN:
            return attach_report(output, attempts.report, self.settings.report_key)
        attempts.raise_if_blocked(step)
        fallback_runnable = self.settings.fallback_runnable
        if fallback_runnable is None:
            return attempts.canned(output)
        fallback = fallback_runnable.invoke(attempts.input, attempts.fallback_config(config))
        return attach_report(fallback, attempts.report, self.settings.report_key)

    # ------------------------------------------------------------------ async drivers
    async def _ainvoke(
        self, input: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> Any:
        attempts = Attempts(self.settings, input, run_manager)
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
        attempts = Attempts(self.settings, input, run_manager)
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
        report: RiskReport = await self.guard.aassess(exchange, outcome=attempts.outcome)
        step = attempts.decide(report)
        self._keep(attempts)
        try:
            await adispatch_custom_event(
                REPORT_EVENT, attempts.event(), config=attempts.child(config)
            )
        except Exception:  # tracing must never break the answer
            logger.exception("could not dispatch the scope-guard report event")
        return step

    async def _afinish(
        self, attempts: Attempts, step: Step, output: Any, config: RunnableConfig
    ) -> Any:
        if step is Step.RETURN:
            return attach_report(output, attempts.report, self.settings.report_key)
        attempts.raise_if_blocked(step)
        fallback_runnable = self.settings.fallback_runnable
        if fallback_runnable is None:
            return attempts.canned(output)
        fallback = await fallback_runnable.ainvoke(attempts.input, attempts.fallback_config(config))
        return attach_report(fallback, attempts.report, self.settings.report_key)


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
    output_key: str | None = None,
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
        output_key: For dict outputs, the key whose value is the answer (replaced by the
            fallback); needed only when the answer is not in the output verbatim (the values
            that hold it are found and replaced without it).

    Returns:
        A runnable with ``invoke``, ``ainvoke``, ``batch``, ``abatch``, ``stream``, ``astream``,
        and :meth:`~GuardedRunnable.last_report` / :meth:`~GuardedRunnable.report_for`.

    Raises:
        ConfigError: ``max_attempts`` below 1, an unknown ``on_block``, an empty ``output_key``.
    """
    settings = GuardSettings(
        chain=chain,
        max_attempts=max_attempts,
        regenerate_with=regenerate_with,
        feedback=feedback,
        feedback_key=feedback_key,
        fallback=fallback,
        fallback_runnable=fallback_runnable,
        on_block=on_block,
        report_key=report_key,
        output_key=output_key,
    )
    return GuardedRunnable(settings, guard)


wrap = guard_runnable
"""``wrap(chain, guard, ...)``: the same as :func:`guard_runnable`."""
