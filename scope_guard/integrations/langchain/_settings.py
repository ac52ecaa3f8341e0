"""What the guarded runnable is told (its settings) and the names it shows LangChain.

The runnable and its attempt loop both read these; neither imports the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.runnables import Runnable

from scope_guard.errors import ConfigError

__all__ = ["ATTEMPT_TAG", "DEFAULT_FALLBACK", "REPORT_EVENT", "GuardSettings"]

ATTEMPT_TAG = "scope_guard:attempt"
"""Tag of every run inside an attempt (inherited): their events carry unassessed text."""

DEFAULT_FALLBACK = "I'm not able to answer that reliably from the available documents."
"""The canned answer served when no answer passed."""

REPORT_EVENT = "scope_guard_report"
"""Name of the custom event dispatched after every assessment."""


@dataclass(frozen=True)
class GuardSettings:
    """How a guarded runnable acts (the arguments of
    :func:`~scope_guard.integrations.langchain.guard_runnable`, documented there)."""

    chain: Runnable[Any, Any]
    max_attempts: int = 2
    regenerate_with: Runnable[Any, Any] | None = None
    feedback: bool = True
    feedback_key: str = "scope_guard_feedback"
    fallback: str = DEFAULT_FALLBACK
    fallback_runnable: Runnable[Any, Any] | None = None
    on_block: Literal["raise", "fallback"] = "raise"
    report_key: str = "scope_guard"
    output_key: str | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            msg = f"max_attempts must be at least 1, got {self.max_attempts}"
            raise ConfigError(msg)
        if self.on_block not in ("raise", "fallback"):
            msg = f"on_block must be 'raise' or 'fallback', got {self.on_block!r}"
            raise ConfigError(msg)
        if self.output_key is not None and not (
            isinstance(self.output_key, str) and self.output_key
        ):
            msg = f"output_key must be a non-empty key name or None, got {self.output_key!r}"
            raise ConfigError(msg)
