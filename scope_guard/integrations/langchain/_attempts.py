"""The attempts of one guarded request: which runnable and input each attempt gets, what it is
assessed on, and what follows from each decision. Shared by the sync and async drivers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    BaseCallbackHandler,
    CallbackManagerForChainRun,
)
from langchain_core.outputs import LLMResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import patch_config

from scope_guard.errors import ScopeViolation
from scope_guard.integrations.langchain._handler_core import VIOLATIONS
from scope_guard.integrations.langchain._outputs import (
    attach_report,
    fallback_output,
    feedback_text,
    report_data,
)
from scope_guard.integrations.langchain._text import messages_text, output_text, question_text
from scope_guard.integrations.langchain.collector import Capture, RunCollector
from scope_guard.types import Action, Exchange, RiskReport

if TYPE_CHECKING:
    from scope_guard.integrations.langchain.runnable import GuardedRunnable

__all__ = ["ATTEMPT_TAG", "AttemptCollector", "Attempts", "Step"]

logger = logging.getLogger(__name__)

ATTEMPT_TAG = "scope_guard:attempt"
"""Tag of every run inside an attempt (inherited): their events carry unassessed text."""


class Step(Enum):
    """What follows an assessment."""

    RETURN = "pass"
    RETRY = "regenerate"
    FALLBACK = "fallback"
    BLOCK = "block"


def _model_name(kwargs: Mapping[str, Any]) -> str | None:
    name = (kwargs.get("metadata") or {}).get("ls_model_name")
    return name if isinstance(name, str) else None


class AttemptCollector(BaseCallbackHandler):
    """Collects one attempt's question, documents, prompt and answer (no assessment).

    Runs inline (cheap dictionary updates), so in async runs it needs no worker thread.
    """

    run_inline = True

    def __init__(self) -> None:
        self.runs = RunCollector(max_runs=8)
        self.capture: Capture | None = None

    def _keep(self, capture: Capture | None) -> None:
        # The first root with a model answer wins: a wrapper that hands its own config on
        # (with_fallbacks) makes its inner runnable a second root, ending before the wrapper.
        if capture is None:
            return
        if self.capture is None or (self.capture.response is None and capture.response is not None):
            self.capture = capture

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.runs.chain_start(inputs, run_id=run_id, parent_run_id=parent_run_id)

    def on_retriever_start(
        self,
        serialized: Any,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.runs.retriever_start(query, run_id=run_id, parent_run_id=parent_run_id)

    def on_retriever_end(
        self, documents: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._keep(self.runs.retriever_end(documents, run_id=run_id, parent_run_id=parent_run_id))

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.runs.run_error(run_id=run_id)

    def on_tool_start(
        self,
        serialized: Any,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.runs.run_start(run_id=run_id, parent_run_id=parent_run_id)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._keep(self.runs.run_end(run_id=run_id))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.runs.run_error(run_id=run_id)

    def on_chat_model_start(
        self,
        serialized: Any,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        first = messages[0] if messages else []
        self.runs.model_start(
            messages_text(first),
            run_id=run_id,
            parent_run_id=parent_run_id,
            model=_model_name(kwargs),
            question=question_text(first),
        )

    def on_llm_start(
        self,
        serialized: Any,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        prompt = prompts[0] if prompts else ""
        self.runs.model_start(
            prompt, run_id=run_id, parent_run_id=parent_run_id, model=_model_name(kwargs)
        )

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.runs.model_token(token, run_id=run_id)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self._keep(self.runs.model_end(response, run_id=run_id))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.runs.model_error(run_id=run_id)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._keep(self.runs.run_end(run_id=run_id, inputs=kwargs.get("inputs")))

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.runs.run_error(run_id=run_id)


class Attempts:
    """The state of one guarded request across its attempts."""

    def __init__(
        self,
        guarded: GuardedRunnable,
        input: Any,
        run_manager: CallbackManagerForChainRun | AsyncCallbackManagerForChainRun,
    ) -> None:
        self.guarded = guarded
        self.input = input
        self.run_manager = run_manager
        self.request_id = str(run_manager.run_id)
        self.attempt = 0
        self.report: RiskReport | None = None

    # ------------------------------------------------------------------ running an attempt
    def next(self) -> tuple[Runnable[Any, Any], Any, AttemptCollector]:
        """The runnable, input and collector of the next attempt."""
        self.attempt += 1
        g = self.guarded
        regenerating = self.attempt > 1
        runnable = g.regenerate_with if regenerating and g.regenerate_with else g.chain
        input = self.input
        if regenerating and g.feedback and isinstance(input, Mapping) and self.report:
            input = {**input, g.feedback_key: feedback_text(self.report)}
        # the previous attempt's report is not this attempt's: one without text gets none
        self.report = None
        return runnable, input, AttemptCollector()

    def config(self, config: RunnableConfig, collector: AttemptCollector) -> RunnableConfig:
        """The caller's config, parented to the guarded run, with the collector added, the
        attempt in the inner run's tags (``scope_guard:attempt-N``) and metadata, and
        :data:`ATTEMPT_TAG` on every run inside the attempt."""
        callbacks = self.run_manager.get_child(tag=f"scope_guard:attempt-{self.attempt}")
        callbacks.add_handler(collector, inherit=True)
        patched = patch_config(config, callbacks=callbacks)
        patched["tags"] = [*patched.get("tags", []), ATTEMPT_TAG]
        patched["metadata"] = {
            **patched.get("metadata", {}),
            "scope_guard_request_id": self.request_id,
            "scope_guard_attempt": self.attempt,
        }
        return patched

    def child(self, config: RunnableConfig, tag: str | None = None) -> RunnableConfig:
        return patch_config(config, callbacks=self.run_manager.get_child(tag))

    def fallback_config(self, config: RunnableConfig) -> RunnableConfig:
        return self.child(config, "scope_guard:fallback")

    # ------------------------------------------------------------------ assessing
    def exchange(self, output: Any, collector: AttemptCollector) -> Exchange | None:
        """What the guard assesses of this attempt; ``None`` when it produced no text."""
        capture = collector.capture
        response = capture.response if capture is not None else None
        if response is None:
            response = output_text(output)
        if response is None:
            logger.warning(
                "scope-guard: request %s produced no text to assess (output type %s); passed "
                "through unassessed",
                self.request_id,
                type(output).__name__,
            )
            return None
        meta: dict[str, Any] = {"source": "langchain-runnable"}
        if capture is not None and capture.model:
            meta["model"] = capture.model
        return Exchange(
            request_id=self.request_id,
            root_run_id=str(capture.root_run_id) if capture is not None else self.request_id,
            question=(capture.question if capture is not None else "") or question_text(self.input),
            contexts=list(capture.contexts) if capture is not None else [],
            prompt=capture.prompt if capture is not None else None,
            response=response,
            attempt=self.attempt,
            meta=meta,
        )

    def decide(self, report: RiskReport) -> Step:
        self.report = report
        action = report.decision.action
        if action not in VIOLATIONS:
            return Step.RETURN
        if action is Action.REGENERATE and self.attempt < self.guarded.max_attempts:
            return Step.RETRY
        if action is Action.BLOCK and self.guarded.on_block == "raise":
            return Step.BLOCK
        return Step.FALLBACK

    def event(self, step: Step) -> dict[str, Any]:
        """The data of the ``scope_guard_report`` custom event."""
        report = report_data(self.report) if self.report is not None else None
        return {"report": report, "attempt": self.attempt, "outcome": step.value}

    # ------------------------------------------------------------------ finishing
    def replay(self, chunks: list[Any], output: Any) -> list[Any]:
        """A passed stream's chunks, and a last ``{report_key: report}`` chunk for dicts."""
        if self.report is not None and isinstance(output, Mapping):
            return [*chunks, attach_report({}, self.report, self.guarded.report_key)]
        return chunks

    def raise_if_blocked(self, step: Step) -> None:
        if step is Step.BLOCK and self.report is not None:
            raise ScopeViolation(self.report.decision, report=self.report)

    def canned(self, like: Any) -> Any:
        """The canned fallback answer shaped like ``like``, with the report for dicts."""
        shaped = fallback_output(like, self.guarded.fallback)
        return attach_report(shaped, self.report, self.guarded.report_key)
