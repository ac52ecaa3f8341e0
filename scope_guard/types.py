"""Result types that cross boundaries: the exchange assessed, the report, the decision.

Plain pydantic models: no torch, scikit-learn or LangChain here, so the policy, the risk log and
the LangChain integration can all use them cheaply.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Action",
    "Decision",
    "DetectorScore",
    "Exchange",
    "FlaggedClaim",
    "GroundingSummary",
    "LatentNote",
    "Outcome",
    "RiskReport",
    "Span",
]

Span = tuple[int, int, float]
"""``(start, end, risk)``: characters ``start:end`` of the assessed response and their risk in
[0, 1]. Offsets index the response as the guard read it: the caller's text up to the guard's
response limit (see ``RiskReport.truncated``), lone surrogates replaced one for one, so
``response[start:end]`` of the caller's own string is the text. Tokens that split one
character (byte-fallback tokens of an emoji) share its offsets. A triple, not an object: one
per response token, and a model per token would cost more than scoring the response."""


class Action(StrEnum):
    """What to do with a response, from least to most severe."""

    ALLOW = "allow"
    WARN = "warn"
    REGENERATE = "regenerate"
    FALLBACK = "fallback"
    BLOCK = "block"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {a: i for i, a in enumerate(Action)}


class Outcome(StrEnum):
    """What followed one assessment: what the caller was served, or that another attempt ran.

    The policy's recommendation is the decision's :class:`Action`; the outcome is what the
    component that acts on it (the guarded runnable, a callback handler) did.
    """

    ANSWER = "answer"
    """The assessed answer was served (first attempt)."""
    REGENERATED = "regenerated"
    """The assessed answer, a regeneration (attempt 2+), was served."""
    RETRY = "retry"
    """Not served: the answer was rejected and another attempt followed."""
    FALLBACK = "fallback"
    """The fallback was served instead of the assessed answer."""
    BLOCKED = "blocked"
    """Nothing was served: :class:`~scope_guard.errors.ScopeViolation` reached the caller."""
    RAISED = "raised"
    """A gate handler raised :class:`~scope_guard.errors.ScopeViolation` into the host chain,
    whose own wrapper (``with_fallbacks``, a retry) decides what is served."""

    @property
    def final(self) -> bool:
        """True when this outcome ended the request (every outcome but :attr:`RETRY`)."""
        return self is not Outcome.RETRY


class Exchange(BaseModel):
    """One request as the guard sees it.

    Attributes:
        request_id: Unique id of the request (generated when not given).
        question: The user's question (the chain input).
        contexts: Texts of the retrieved documents, in retrieval order.
        prompt: The prompt the generator saw, when known.
        response: The generated answer.
        root_run_id: LangChain's root run id, when the exchange came through a chain.
        attempt: 1 for the first answer, 2+ for regenerations.
        meta: Free metadata (model name, user id, ...); logged as given.
        no_context_reason: Why ``contexts`` is empty, when the caller knows (the LangChain
            integration says what it looked for); the guard flags an exchange without contexts
            whether or not this is given.
    """

    model_config = ConfigDict(frozen=True)

    request_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    question: str = ""
    contexts: list[str] = Field(default_factory=list)
    prompt: str | None = None
    response: str
    root_run_id: str | None = None
    attempt: int = Field(default=1, ge=1)
    meta: dict[str, Any] = Field(default_factory=dict)
    no_context_reason: str | None = None

    @field_validator("question", "response")
    @classmethod
    def _text(cls, value: Any) -> str:
        if not isinstance(value, str):
            msg = f"expected text, got {type(value).__name__}"
            raise ValueError(msg)  # pydantic turns it into a ValidationError naming the field
        return value


class FlaggedClaim(BaseModel):
    """A claim of the response the grounding check found weakly supported."""

    model_config = ConfigDict(frozen=True)
    text: str
    start: int
    end: int
    support: float
    unsupported: list[str] = Field(default_factory=list)


class GroundingSummary(BaseModel):
    """The grounding check's response-level result."""

    model_config = ConfigDict(frozen=True)
    risk: float
    support: float
    n_claims: int
    flagged_claims: list[FlaggedClaim] = Field(default_factory=list)


class LatentNote(BaseModel):
    """One feature's contribution to a probe's score, and what explains it.

    Attributes:
        name: The feature's column (``"resid_post@20/max/1234"``, ``"grounding/min_support"``).
        latent: The SAE latent id, for SAE features.
        contribution: Its share of the probe's logit (positive pushes towards the risk).
        url: The latent's Neuronpedia page (registry SAEs).
        contexts: The latent's top-activating contexts in the SAE's training corpus,
            ``before [[token]] after``, strongest first (self-trained SAEs, whose bundle
            carries them).
    """

    model_config = ConfigDict(frozen=True)
    name: str
    latent: int | None = None
    contribution: float
    url: str | None = None
    contexts: list[str] = Field(default_factory=list)


class DetectorScore(BaseModel):
    """One detector's calibrated score.

    Attributes:
        detector: The detector's name.
        risk: The risk it scores.
        probability: Calibrated probability of the risk.
        threshold: Its decision threshold on ``probability``.
        flagged: ``probability >= threshold``.
        calibrated: False for the uncalibrated grounding heuristic.
        top_latents: The features that pushed the score up most, biggest first.
        token_risk: Per response token, its risk (``None`` unless the guard computes per-token
            risk and the detector reads the reader); see ``token_risk_source``.
        token_risk_source: ``"token_probe"``: the detector's token probes' probability that a
            token lies in a risky span; ``"detector"``: the detector's probability with the
            token standing for the whole response (a proxy).
        token_spans: ``token_risk`` as :data:`Span` triples ``(start, end, risk)`` of the
            response, for highlighting (zero-width tokens left out).
        risky_spans: Runs of tokens with risk ``>= span_threshold``, merged, as :data:`Span`
            triples (risk: the run's riskiest token).
        span_threshold: 0.5 for token-probe risk, else the detector's threshold.
    """

    model_config = ConfigDict(frozen=True)
    detector: str
    risk: str
    probability: float
    threshold: float
    flagged: bool
    calibrated: bool = True
    top_latents: list[LatentNote] = Field(default_factory=list)
    token_risk: list[float] | None = None
    token_risk_source: str | None = None
    token_spans: list[Span] | None = None
    risky_spans: list[Span] = Field(default_factory=list)
    span_threshold: float | None = None


class Decision(BaseModel):
    """The policy's verdict: the action and why."""

    model_config = ConfigDict(frozen=True)
    action: Action
    reasons: list[str] = Field(default_factory=list)

    def __str__(self) -> str:
        why = "; ".join(self.reasons) or "no risk above its thresholds"
        return f"{self.action.value}: {why}"


class RiskReport(BaseModel):
    """Everything the guard found about one response.

    Attributes:
        request_id: The exchange's request id.
        root_run_id: LangChain's root run id, if any.
        attempt: Which answer of the request this is (1 = first).
        created: ISO 8601 UTC time of the assessment.
        scores: Per risk, the probability the policy used (the primary detector's).
        detectors: Every detector's score (primary and baselines).
        grounding: The grounding check's result, when it ran.
        decision: The policy's action and reasons.
        timings_ms: Milliseconds per stage (``grounding``, ``read``, ``detectors``, ``total``).
        versions: scope-guard version, reader, bundle.
        stand_in: True when the reader is the miniature stand-in (its scores mean nothing).
        error: Set when the guard itself failed (the decision then follows the failure mode).
        no_context: Set (to the reason) when the response was assessed without any context
            document: its grounding could not be checked (the policy's ``no_context`` setting
            says what follows); ``None`` when there were documents.
        outcome: What was served after this assessment (the decision is what the policy
            recommended); ``None`` when the caller of ``ScopeGuard.assess`` did not say.
        truncated: Inputs longer than the guard's limits, cut before scoring (the start of the
            response and question, the first contexts, the end of the prompt): field name
            (``response``, ``question``, ``prompt``, ``contexts``) -> its original length in
            characters (for ``contexts``, all of them together). Empty when nothing was cut.
    """

    model_config = ConfigDict(frozen=True)
    request_id: str
    root_run_id: str | None = None
    attempt: int = 1
    created: str
    scores: dict[str, float] = Field(default_factory=dict)
    detectors: list[DetectorScore] = Field(default_factory=list)
    grounding: GroundingSummary | None = None
    decision: Decision
    timings_ms: dict[str, float] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    stand_in: bool = False
    error: str | None = None
    no_context: str | None = None
    outcome: Outcome | None = None
    truncated: dict[str, int] = Field(default_factory=dict)

    @property
    def action(self) -> Action:
        return self.decision.action

    @property
    def flagged_claims(self) -> list[FlaggedClaim]:
        return list(self.grounding.flagged_claims) if self.grounding else []
