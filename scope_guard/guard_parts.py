"""The pieces of a :class:`~scope_guard.types.RiskReport`: coercing input, summarising the
grounding check, turning detector scores into a decision, and the report of a failed guard."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from scope_guard.errors import InputError
from scope_guard.policy import Policy
from scope_guard.types import (
    Action,
    Decision,
    DetectorScore,
    Exchange,
    FlaggedClaim,
    GroundingSummary,
    RiskReport,
)

if TYPE_CHECKING:
    from detectors.grounding import GroundingResult
    from detectors.probe import ProbeScore

__all__ = [
    "build_report",
    "failure_report",
    "grounding_summary",
    "no_context_reason",
    "to_exchange",
]


def to_exchange(value: Exchange | Mapping[str, Any]) -> Exchange:
    """Accept an :class:`Exchange` or a mapping of its fields.

    Raises:
        InputError: the fields are missing or of the wrong type (the message names them).
    """
    if isinstance(value, Exchange):
        return value
    if not isinstance(value, Mapping):
        msg = f"an exchange must be an Exchange or a mapping, got {type(value).__name__}"
        raise InputError(msg)
    try:
        return Exchange.model_validate(dict(value))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        msg = f"invalid exchange: {problems}"
        raise InputError(msg) from exc


def grounding_summary(result: GroundingResult | None) -> GroundingSummary | None:
    if result is None:
        return None
    flagged = [
        FlaggedClaim(
            text=c.text,
            start=c.start,
            end=c.end,
            support=c.support,
            unsupported=[*c.unsupported_numbers, *c.unsupported_entities, *c.field_conflicts],
        )
        for c in result.claims
        if not c.supported
    ]
    return GroundingSummary(
        risk=float(result.risk),
        support=float(result.support),
        n_claims=len(result.claims),
        flagged_claims=flagged,
    )


def _detector_score(score: ProbeScore) -> DetectorScore:
    # One validation of plain data (spans are tuples): cheap even for long responses.
    return DetectorScore.model_validate(
        {
            "detector": score.detector,
            "risk": str(score.risk),
            "probability": score.probability,
            "threshold": score.threshold,
            "flagged": score.flagged,
            "top_latents": [
                {
                    "name": c.name,
                    "latent": c.latent,
                    "contribution": c.contribution,
                    "url": c.url,
                    "contexts": list(c.contexts),
                }
                for c in score.top_contributions
            ],
            "token_risk": list(score.token_risk) if score.token_risk is not None else None,
            "token_risk_source": score.token_risk_source,
            "token_spans": score.token_spans,
            "risky_spans": score.risky_spans,
            "span_threshold": score.span_threshold,
        }
    )


def build_report(
    exchange: Exchange,
    *,
    scores: Sequence[ProbeScore],
    primary: Mapping[str, str],
    grounding: GroundingSummary | None,
    heuristic: bool,
    policy: Policy,
    versions: Mapping[str, str],
    stand_in: bool,
    timings_ms: Mapping[str, float],
    started: float,
) -> RiskReport:
    """Decide on one exchange from its detector scores (and the heuristic, without detectors)."""
    detector_scores = [_detector_score(s) for s in scores]
    risk_scores = {
        s.risk: s.probability for s in detector_scores if primary.get(s.risk) == s.detector
    }
    if heuristic and grounding is not None:
        risk_scores["fabrication"] = grounding.risk
        detector_scores.append(
            DetectorScore(
                detector="grounding-heuristic",
                risk="fabrication",
                probability=grounding.risk,
                threshold=0.5,
                flagged=grounding.risk >= 0.5,
                calibrated=False,
            )
        )
    no_context = no_context_reason(exchange)
    if exchange.response.strip():
        decision = policy.decide(risk_scores, no_context=no_context)
    else:
        decision = Decision(action=Action.ALLOW, reasons=["empty response: nothing to assess"])
    total = (time.perf_counter() - started) * 1000
    timings = {**timings_ms, "total": total}
    timings["detectors"] = max(0.0, total - sum(timings_ms.values()))
    return RiskReport(
        request_id=exchange.request_id,
        root_run_id=exchange.root_run_id,
        attempt=exchange.attempt,
        created=datetime.now(UTC).isoformat(timespec="milliseconds"),
        scores=risk_scores,
        detectors=detector_scores,
        grounding=grounding,
        decision=decision,
        timings_ms=timings,
        versions=dict(versions),
        stand_in=stand_in,
        no_context=no_context,
    )


def no_context_reason(exchange: Exchange) -> str | None:
    """Why ``exchange`` has no context document (``None`` when it has one with text)."""
    if any(c.strip() for c in exchange.contexts):
        return None
    return exchange.no_context_reason or "the exchange came with no context documents"


def failure_report(
    exchange: Exchange, error: BaseException, failure_mode: str, versions: Mapping[str, str]
) -> RiskReport:
    """The report of an assessment that failed: fail open (allow) or closed (fallback)."""
    action = Action.ALLOW if failure_mode == "open" else Action.FALLBACK
    reason = f"guard failure ({type(error).__name__}); failing {failure_mode}"
    return RiskReport(
        request_id=exchange.request_id,
        root_run_id=exchange.root_run_id,
        attempt=exchange.attempt,
        created=datetime.now(UTC).isoformat(timespec="milliseconds"),
        decision=Decision(action=action, reasons=[reason]),
        versions=dict(versions),
        error=f"{type(error).__name__}: {error}",
    )
