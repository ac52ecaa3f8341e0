"""One risk-log record per request and attempt, and the protocol every sink implements.

What a record holds without ``log_text=True``: ids, times, versions, scores, the decision,
per detector its score and top latents (feature names, no text: never the latents' contexts,
which the bundle holds, nor the per-token risk), per flagged claim its span
(character offsets into the response), support and keyed hashes of its text and of its
unsupported names and numbers, input lengths cut for scoring, and ``meta`` as the caller gave
it. The question, prompt, response, contexts, claim texts, unsupported terms and each
detector's risky spans (offsets that locate text) are kept only with ``log_text=True``; a
guard failure's message has quoted or input-derived parts redacted.
Hashes are keyed (HMAC-SHA256, see :mod:`scope_guard.risklog.keys`).

Every value is storable: lone surrogates are escaped and values JSON cannot hold are written
as text (:mod:`scope_guard.risklog.storable`), so no record is dropped for its content.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scope_guard.risklog.keys import LogKey, process_key
from scope_guard.risklog.redact import redact_message
from scope_guard.risklog.storable import escape_strings, storable
from scope_guard.types import DetectorScore, Exchange, FlaggedClaim, RiskReport

__all__ = ["RiskLogSink", "RiskRecord", "claim_entry", "detector_entry", "text_hash"]

#: Fields of free shape: stored through :func:`storable` (anything becomes JSON).
_FREE_FIELDS = ("meta", "detectors", "flagged_claims")


def text_hash(text: str | None, key: LogKey | None = None) -> str | None:
    """The keyed hash of ``text`` (HMAC-SHA256, 32 hex): joins records without the text.

    Args:
        text: Any string (lone surrogates included), or None (gives None).
        key: The log's key; None: this process's random key (joins within the process only).
    """
    return (key or process_key()).hash(text)


def detector_entry(score: DetectorScore, *, log_text: bool) -> dict[str, Any]:
    """A detector's score as a record stores it (see the module docstring for what is left
    out): per-token risk and spans never, risky spans only with ``log_text``."""
    exclude: dict[str, Any] = {
        "token_risk": True,
        "token_spans": True,
        "top_latents": {"__all__": {"contexts"}},
    }
    if not log_text:
        exclude["risky_spans"] = True
    return score.model_dump(mode="json", exclude=exclude)


def claim_entry(claim: FlaggedClaim, key: LogKey, *, log_text: bool) -> dict[str, Any]:
    """What a record keeps of one flagged claim: its span, support and keyed hashes, plus the
    claim's text and unsupported terms only when ``log_text``."""
    entry: dict[str, Any] = {
        "start": claim.start,
        "end": claim.end,
        "support": claim.support,
        "text_hash": key.hash(claim.text),
        "unsupported_hashes": [key.hash(u) for u in claim.unsupported],
    }
    if log_text:
        entry.update(text=claim.text, unsupported=list(claim.unsupported))
    return entry


class RiskRecord(BaseModel):
    """What the risk log keeps of one assessed response.

    Raw texts (question, prompt, response, contexts, claim texts, unsupported terms) are kept
    only when the guard was told to log text (``log_text=True``); keyed hashes always are.
    ``action`` is what the policy recommended, ``outcome`` what was served after this attempt
    (``answer``, ``regenerated``, ``retry``, ``fallback``, ``blocked``, ``raised``; ``None`` when
    the caller did not say).

    Attributes:
        hash_key: :attr:`LogKey.key_id` of the key behind the hashes (records join when equal).
        truncated: Inputs cut before scoring: field -> its original length in characters.
        no_context: Why the response was assessed without context documents (``None``: it had
            some).
    """

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="strings")

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
    hash_key: str | None = None
    n_contexts: int = 0
    truncated: dict[str, int] = Field(default_factory=dict)
    no_context: str | None = None
    question: str | None = None
    prompt: str | None = None
    response: str | None = None
    contexts: list[str] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        """Escape what UTF-8/JSON cannot hold, so every sink can write every record."""
        if not isinstance(data, dict):
            return data
        return {
            key: storable(value) if key in _FREE_FIELDS else escape_strings(value)
            for key, value in data.items()
        }

    @classmethod
    def from_report(
        cls,
        exchange: Exchange,
        report: RiskReport,
        *,
        log_text: bool = False,
        key: LogKey | None = None,
    ) -> RiskRecord:
        """The record of ``report`` on ``exchange`` (the exchange as the caller gave it).

        Args:
            exchange: The exchange assessed (its texts are hashed, and kept with ``log_text``).
            report: The guard's report.
            log_text: Keep raw texts (see the class docstring).
            key: The log's hash key; None: this process's random key.
        """
        key = key or process_key()
        error = report.error
        if error is not None and not log_text:
            kind, sep, message = error.partition(": ")
            texts = [exchange.question, exchange.prompt or "", exchange.response]
            error = kind + sep + redact_message(message, [*texts, *exchange.contexts])
        return cls(
            request_id=report.request_id,
            root_run_id=report.root_run_id,
            attempt=report.attempt,
            created=report.created,
            action=report.decision.action.value,
            reasons=list(report.decision.reasons),
            scores=dict(report.scores),
            detectors=[detector_entry(d, log_text=log_text) for d in report.detectors],
            flagged_claims=[claim_entry(c, key, log_text=log_text) for c in report.flagged_claims],
            timings_ms=dict(report.timings_ms),
            versions=dict(report.versions),
            stand_in=report.stand_in,
            error=error,
            outcome=report.outcome.value if report.outcome is not None else None,
            question_hash=key.hash(exchange.question),
            prompt_hash=key.hash(exchange.prompt),
            response_hash=key.hash(exchange.response),
            hash_key=key.key_id,
            n_contexts=len(exchange.contexts),
            truncated=dict(report.truncated),
            no_context=report.no_context,
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
