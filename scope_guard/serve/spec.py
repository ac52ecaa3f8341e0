"""What a service process needs to build its guard: plain data, so a Ray Serve replica (another
process, maybe another host) builds its own guard from the same settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from scope_guard.guard import ScopeGuard

__all__ = ["GuardSpec"]


class GuardSpec(BaseModel):
    """The guard a service hosts.

    Attributes:
        bundle: A bundle folder written by ``calibrate``; ``None`` for the weight-free guard
            (the grounding check's uncalibrated heuristic scores fabrication).
        risk_log: Where every served exchange is logged (``.db``/``.sqlite``, ``.jsonl``,
            ``logging``), or ``None``.
        log_text: Keep raw texts in the risk log.
        failure_mode: What the guard's own failure serves: ``open`` (the answer) or
            ``closed`` (the fallback).
        reader: Override of the bundle's reader location.
        dtype: The reader's dtype (``auto``, ``bfloat16``, ``float32``).
        device: The reader's device (``cpu``, ``cuda``, ``cuda:1``).
        batch_size: The reader's own batch size (a micro-batch is split into these).
        token_risk: Compute per-token risk (longer replies; off by default).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    bundle: str | None = None
    risk_log: str | None = None
    log_text: bool = False
    failure_mode: Literal["open", "closed"] = "open"
    reader: str | None = None
    dtype: str = "auto"
    device: str = "cpu"
    batch_size: int = Field(default=8, ge=1)
    token_risk: bool = False

    def build(self) -> ScopeGuard:
        """The guard (its reader loaded, its risk log opened).

        Raises:
            ConfigError: ``reader`` without ``bundle``, or an invalid setting.
            ArtifactError: the bundle or its reader cannot be loaded.
        """
        from scope_guard.errors import ConfigError
        from scope_guard.guard import ScopeGuard

        options: dict[str, Any] = {
            "risk_log": self.risk_log,
            "log_text": self.log_text,
            "failure_mode": self.failure_mode,
            "token_risk": self.token_risk,
        }
        if self.bundle is None:
            if self.reader:
                msg = "reader needs a bundle (the weight-free guard reads no activations)"
                raise ConfigError(msg)
            return ScopeGuard(**options)
        from detectors.bundle import DetectorBundle
        from scope_guard.cli.inputs import open_bundle_reader

        reader = open_bundle_reader(DetectorBundle.load(self.bundle), self)
        return ScopeGuard.from_bundle(self.bundle, reader=reader, **options)
