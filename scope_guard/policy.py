"""The policy: per-risk probability thresholds turned into one action. Plain Python.

Each risk has up to four thresholds, one per action (warn, regenerate, fallback, block); a score
at or above an action's threshold triggers it, and the most severe triggered action over all
risks wins. A missing threshold never triggers. A score that is not a finite number is refused
(:class:`~scope_guard.errors.InputError`): NaN compares false with every threshold, so it would
silently allow; the guard turns the error into its failure mode (fail open or closed).

A response assessed without any context document (nothing was retrieved, or the integration
could not see the documents) cannot have its grounding checked: its fabrication score says
"unsupported" about every claim. The policy's ``no_context`` setting says what follows; the
default warns rather than replacing an answer that may well be right.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, model_validator

from scope_guard.errors import ConfigError, InputError
from scope_guard.types import Action, Decision

__all__ = ["NoContext", "Policy", "RiskThresholds"]

_ACTIONS = (Action.BLOCK, Action.FALLBACK, Action.REGENERATE, Action.WARN)

NoContext = Literal["warn", "assess", "fallback", "block"]
"""What a decision on a response without context documents is:

- ``"warn"``: warn, never more (scores are reported, not acted on: without documents they
  measure the missing retrieval, not the answer);
- ``"assess"``: act on the scores as for any response (usually a fallback: nothing is supported);
- ``"fallback"`` / ``"block"``: at least that action (applications that must only answer from
  documents).
"""
_NO_CONTEXT_FLOOR = {"warn": Action.WARN, "fallback": Action.FALLBACK, "block": Action.BLOCK}


class RiskThresholds(BaseModel):
    """Probability thresholds of one risk, each in [0, 1] or ``None`` (never).

    More severe actions must not have lower thresholds than milder ones.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    warn: float | None = None
    regenerate: float | None = None
    fallback: float | None = None
    block: float | None = None

    @model_validator(mode="after")
    def _check(self) -> RiskThresholds:
        previous: tuple[str, float] | None = None
        for name in ("warn", "regenerate", "fallback", "block"):
            value = getattr(self, name)
            if value is None:
                continue
            if not 0.0 <= value <= 1.0:
                msg = f"{name} threshold {value} is not in [0, 1]"
                raise ConfigError(msg)
            if previous is not None and value < previous[1]:
                msg = f"{name} threshold {value} is below the milder {previous[0]} {previous[1]}"
                raise ConfigError(msg)
            previous = (name, value)
        return self

    @classmethod
    def from_calibrated(cls, threshold: float) -> RiskThresholds:
        """Defaults around a detector's calibrated decision threshold ``t``.

        Regenerate at ``t`` (the threshold was chosen for this decision); warn from ``t / 2``;
        serve the fallback straight away from ``max(0.9, (1 + t) / 2)``; never block unless
        asked (blocking is the host application's call).
        """
        if threshold > 1.0:  # the detector never flags: neither does the policy
            return cls()
        if not threshold >= 0.0:
            msg = f"calibrated threshold {threshold} is negative"
            raise ConfigError(msg)
        return cls(
            warn=threshold / 2,
            regenerate=threshold,
            fallback=max(threshold, 0.9, (1 + threshold) / 2),
        )

    def action_for(self, probability: float) -> tuple[Action, float | None]:
        for action in _ACTIONS:
            bound = getattr(self, action.value)
            if bound is not None and probability >= bound:
                return action, bound
        return Action.ALLOW, None


class Policy:
    """Per-risk thresholds to a :class:`~scope_guard.types.Decision`.

    Args:
        rules: Per risk name (``"fabrication"``...), its thresholds. Risks without rules are
            reported but never acted on.
        no_context: The decision on a response assessed without context documents
            (:data:`NoContext`; default ``"warn"``).

    Raises:
        ConfigError: ``no_context`` is not one of :data:`NoContext`.
    """

    def __init__(
        self,
        rules: Mapping[str, RiskThresholds | Mapping[str, float | None]],
        *,
        no_context: NoContext = "warn",
    ) -> None:
        if no_context not in get_args(NoContext):
            msg = f"no_context must be one of {list(get_args(NoContext))}, got {no_context!r}"
            raise ConfigError(msg)
        self.no_context: NoContext = no_context
        self.rules: dict[str, RiskThresholds] = {}
        for risk, rule in rules.items():
            self.rules[str(risk)] = (
                rule if isinstance(rule, RiskThresholds) else RiskThresholds.model_validate(rule)
            )

    @classmethod
    def from_calibrated(
        cls, thresholds: Mapping[str, float], *, no_context: NoContext = "warn"
    ) -> Policy:
        """Default rules from calibrated decision thresholds (see
        :meth:`RiskThresholds.from_calibrated`)."""
        rules = {risk: RiskThresholds.from_calibrated(t) for risk, t in thresholds.items()}
        return cls(rules, no_context=no_context)

    @classmethod
    def monitor_only(cls) -> Policy:
        """A policy that never acts (everything is allowed, scores are still logged)."""
        return cls({}, no_context="assess")

    def decide(self, scores: Mapping[str, float], *, no_context: str | None = None) -> Decision:
        """The most severe action triggered by any risk, with a reason per triggered risk.

        Args:
            scores: Per risk, its probability.
            no_context: Why the response had no context documents, when it had none; the
                decision then follows :attr:`no_context` and says so in its first reason.

        Raises:
            InputError: a score is not a finite number (NaN or infinite), whether or not its
                risk has a rule (a broken detector must not pass silently).
        """
        bad = {r: p for r, p in scores.items() if not math.isfinite(float(p))}
        if bad:
            msg = f"risk scores must be finite probabilities, got {bad}"
            raise InputError(msg)
        action = Action.ALLOW
        reasons = []
        for risk, probability in sorted(scores.items()):
            rule = self.rules.get(str(risk))
            if rule is None:
                continue
            triggered, bound = rule.action_for(float(probability))
            if triggered is not Action.ALLOW:
                reasons.append(f"{risk} {probability:.2f} >= {triggered.value} {bound:.2f}")
                if triggered.severity > action.severity:
                    action = triggered
        if no_context is None:
            return Decision(action=action, reasons=reasons)
        return self._without_context(action, reasons, no_context)

    def _without_context(self, action: Action, reasons: list[str], why: str) -> Decision:
        note = f"no context: {why}"
        if self.no_context == "assess":
            return Decision(action=action, reasons=[note, *reasons])
        floor = _NO_CONTEXT_FLOOR[self.no_context]
        if self.no_context == "warn":
            # the scores measure the missing documents, not the answer: report, never act
            held = [f"{r} (not acted on without context)" for r in reasons]
            return Decision(action=Action.WARN, reasons=[f"{note}; served with a warning", *held])
        worst = floor if floor.severity >= action.severity else action
        return Decision(
            action=worst, reasons=[f"{note}; policy no_context={floor.value}", *reasons]
        )

    def __repr__(self) -> str:
        rules = {k: v.model_dump(exclude_none=True) for k, v in self.rules.items()}
        return f"Policy({rules}, no_context={self.no_context!r})"
