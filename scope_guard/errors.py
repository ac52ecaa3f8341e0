"""The exceptions scope-guard raises.

Every error derives from :class:`ScopeGuardError`, so a host application can catch all of them
in one place. Messages name the bad value and, where there is a closed set, the valid options.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArtifactError",
    "ConfigError",
    "InputError",
    "ScopeGuardError",
    "ScopeViolation",
]


class ScopeGuardError(Exception):
    """Base class of every error raised by scope-guard."""


class ConfigError(ScopeGuardError, ValueError):
    """A setting is invalid: an unknown site, dtype, pooling mode, registry id, threshold..."""


class InputError(ScopeGuardError, ValueError):
    """A request or a dataset row cannot be processed as given (empty, malformed, wrong type)."""


class ArtifactError(ScopeGuardError):
    """A file on disk (model, SAE, bundle, cache shard) is missing, malformed or inconsistent."""


class ScopeViolation(ScopeGuardError):
    """Control-flow signal: a response breached the policy.

    Raised by the gate-mode callback and the guarded runnable so that a wrapper can regenerate or
    fall back. It carries the decision that caused it, and the full report when there is one.

    Args:
        decision: The policy decision (any object; the policy module defines its type).
        message: Optional human-readable summary; defaults to ``str(decision)``.
        report: The :class:`~scope_guard.types.RiskReport` behind the decision, if any.
    """

    def __init__(self, decision: Any, message: str | None = None, *, report: Any = None) -> None:
        self.decision = decision
        self.report = report
        super().__init__(message if message is not None else str(decision))
