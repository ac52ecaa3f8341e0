"""One risk-log record per request and attempt, and the protocol every sink implements."""

from __future__ import annotations

import hashlib
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from scope_guard.types import Exchange, RiskReport

__all__ = ["RiskLogSink", "RiskRecord", "text_hash"]


def text_hash(text: str | None) -> str | None:
    """A short sha256 of a text: lets records be joined and deduplicated without the text."""
    if text is None:
        return None
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class RiskRecord(BaseModel):
    """What the risk log keeps of one assessed response.

    Raw texts (question, prompt, response, contexts) are kept only when the guard was told to
    log text (``log_text=True``); hashes always are. ``action`` is what the policy recommended,
    ``outcome`` what was served after this attempt (``answer``, ``regenerated``, ``retry``,
    ``fallback``, ``blocked``, ``raised``; ``None`` when the caller did not say).
    """

    model_config = ConfigDict(frozen=True)

    request_id: str
    root_run_id: str | None = None
    attempt: int = 1
    created: str
    action: str
    reasons: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    detectors: list[dict[str, Any]] = Field(default_factory=list)
    flagged_claims: list[dict[str, Any]] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    stand_in: bool = False
    error: str | None = None
    outcome: str | None = None
    question_hash: str | None = None
    prompt_hash: str | None = None
    response_hash: str | None = None
    n_contexts: int = 0
    question: str | None = None
    prompt: str | None = None
    response: str | None = None
    contexts: list[str] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_report(
        cls, exchange: Exchange, report: RiskReport, *, log_text: bool = False
    ) -> RiskRecord:
        return cls(
            request_id=report.request_id,
            root_run_id=report.root_run_id,
            attempt=report.attempt,
            created=report.created,
            action=report.decision.action.value,
            reasons=list(report.decision.reasons),
            scores=dict(report.scores),
            detectors=[d.model_dump(mode="json", exclude={"token_risk"}) for d in report.detectors],
            flagged_claims=[c.model_dump(mode="json") for c in report.flagged_claims],
            timings_ms=dict(report.timings_ms),
            versions=dict(report.versions),
            stand_in=report.stand_in,
            error=report.error,
            outcome=report.outcome.value if report.outcome is not None else None,
            question_hash=text_hash(exchange.question),
            prompt_hash=text_hash(exchange.prompt),
            response_hash=text_hash(exchange.response),
            n_contexts=len(exchange.contexts),
            question=exchange.question if log_text else None,
            prompt=exchange.prompt if log_text else None,
            response=exchange.response if log_text else None,
            contexts=list(exchange.contexts) if log_text else None,
            meta=dict(exchange.meta),
        )


@runtime_checkable
class RiskLogSink(Protocol):
    """Where records go. ``write`` must be safe to call from several threads at once and must
    not return before the record is durable (for sinks that promise durability)."""

    def write(self, record: RiskRecord) -> None: ...

    def close(self) -> None: ...
