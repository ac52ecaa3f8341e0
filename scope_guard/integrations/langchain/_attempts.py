"""The attempts of one guarded request: which runnable and input each attempt gets, what it is
assessed on, and what follows from each decision. Shared by the sync and async drivers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import Enum
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    BaseCallbackHandler,
    CallbackManagerForChainRun,
)
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import patch_config

from scope_guard.errors import ScopeViolation
from scope_guard.integrations.langchain._handler_core import VIOLATIONS
from scope_guard.integrations.langchain._hooks import Route, forward_hooks, sync_hook
from scope_guard.integrations.langchain._outputs import (
    attach_report,
    check_answer_place,
    fallback_output,
    feedback_text,
    report_data,
)
from scope_guard.integrations.langchain._settings import ATTEMPT_TAG, GuardSettings
from scope_guard.integrations.langchain._text import (
    NO_CONTEXT_REASON,
    input_contexts,
    output_text,
    question_text,
)
from scope_guard.integrations.langchain.collector import Capture, RunCollector
from scope_guard.types import Action, Exchange, Outcome, RiskReport

__all__ = ["AttemptCollector", "Attempts", "Step"]

logger = logging.getLogger(__name__)


class Step(Enum):
    """What follows an assessment."""

    RETURN = "pass"
    RETRY = "regenerate"
    FALLBACK = "fallback"
    BLOCK = "block"


@forward_hooks(sync_hook)
class AttemptCollector(BaseCallbackHandler):
    """Collects one attempt's question, documents, prompt and answer (no assessment).

    Runs inline (cheap dictionary updates), so in async runs it needs no worker thread.
    """

    run_inline = True

    def __init__(self) -> None:
        self.runs = RunCollector(max_runs=8)
        self.capture: Capture | None = None

    def _forward(
        self, hook: str, route: Route, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        routed = route(self.runs, *args, **kwargs)
        capture = routed.capture if routed is not None else None
        # The first root with a model answer wins: a wrapper that hands its own config on
        # (with_fallbacks) makes its inner runnable a second root, ending before the wrapper.
        if capture is None:
            return
        if self.capture is None or (self.capture.response is None and capture.response is not None):
            self.capture = capture


class Attempts:
    """The state of one guarded request across its attempts."""

    def __init__(
        self,
        settings: GuardSettings,
        input: Any,
        run_manager: CallbackManagerForChainRun | AsyncCallbackManagerForChainRun,
    ) -> None:
        self.settings = settings
        self.input = input
        self.run_manager = run_manager
        self.request_id = str(run_manager.run_id)
        self.attempt = 0
        self.report: RiskReport | None = None
        self.answer = ""
        """The text last assessed: what a fallback must not let through."""

    # ------------------------------------------------------------------ running an attempt
    def next(self) -> tuple[Runnable[Any, Any], Any, AttemptCollector]:
        """The runnable, input and collector of the next attempt."""
        self.attempt += 1
        s = self.settings
        regenerating = self.attempt > 1
        runnable = s.regenerate_with if regenerating and s.regenerate_with else s.chain
        input = self.input
        if regenerating and s.feedback and isinstance(input, Mapping) and self.report:
            input = {**input, s.feedback_key: feedback_text(self.report)}
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
        """What the guard assesses of this attempt; ``None`` when it produced no text.

        Raises:
            ConfigError: a dict or list output has no place for a fallback (see
                :func:`~scope_guard.integrations.langchain._outputs.check_answer_place`).
        """
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
        check_answer_place(output, response, self.settings.output_key)
        self.answer = response
        meta: dict[str, Any] = {"source": "langchain-runnable"}
        if capture is not None and capture.model:
            meta["model"] = capture.model
        contexts = list(capture.contexts) if capture is not None else input_contexts(self.input)
        return Exchange(
            request_id=self.request_id,
            root_run_id=str(capture.root_run_id) if capture is not None else self.request_id,
            question=(capture.question if capture is not None else "") or question_text(self.input),
            contexts=contexts,
            prompt=capture.prompt if capture is not None else None,
            response=response,
            attempt=self.attempt,
            meta=meta,
            no_context_reason=None if contexts else NO_CONTEXT_REASON,
        )

    def step_for(self, report: RiskReport) -> Step:
        """What follows ``report`` (a pure function of the report and the settings)."""
        action = report.decision.action
        if action not in VIOLATIONS:
            return Step.RETURN
        if action is Action.REGENERATE and report.attempt < self.settings.max_attempts:
            return Step.RETRY
        if action is Action.BLOCK and self.settings.on_block == "raise":
            return Step.BLOCK
        return Step.FALLBACK

    def outcome(self, report: RiskReport) -> Outcome:
        """What is served after ``report``: the guard stamps it on the report and its record."""
        step = self.step_for(report)
        if step is Step.RETURN:
            return Outcome.ANSWER if report.attempt == 1 else Outcome.REGENERATED
        return _OUTCOMES[step]

    def decide(self, report: RiskReport) -> Step:
        if report.outcome is None:  # a guard that does not stamp outcomes
            report = report.model_copy(update={"outcome": self.outcome(report)})
        self.report = report
        return self.step_for(report)

    def event(self) -> dict[str, Any]:
        """The data of the ``scope_guard_report`` custom event (``outcome``: an
        :class:`~scope_guard.types.Outcome` value)."""
        if self.report is None:
            return {"report": None, "attempt": self.attempt, "outcome": None}
        outcome = self.report.outcome.value if self.report.outcome is not None else None
        return {"report": report_data(self.report), "attempt": self.attempt, "outcome": outcome}

    # ------------------------------------------------------------------ finishing
    def replay(self, chunks: list[Any], output: Any) -> list[Any]:
        """A passed stream's chunks, and a last ``{report_key: report}`` chunk for dicts."""
        if self.report is not None and isinstance(output, Mapping):
            return [*chunks, attach_report({}, self.report, self.settings.report_key)]
        return chunks

    def raise_if_blocked(self, step: Step) -> None:
        if step is Step.BLOCK and self.report is not None:
            raise ScopeViolation(self.report.decision, report=self.report)

    def canned(self, like: Any) -> Any:
        """The canned fallback answer shaped like ``like`` with no trace of the rejected
        answer, and the report for dicts."""
        s = self.settings
        shaped = fallback_output(like, s.fallback, self.answer, s.output_key)
        return attach_report(shaped, self.report, s.report_key)


_OUTCOMES = {
    Step.RETRY: Outcome.RETRY,
    Step.FALLBACK: Outcome.FALLBACK,
    Step.BLOCK: Outcome.BLOCKED,
}
