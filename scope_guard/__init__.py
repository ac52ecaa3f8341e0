"""scope-guard: detect fabrication, sycophancy and deception in RAG answers.

Heavy submodules (torch, transformers) are imported lazily, so ``import scope_guard`` is cheap
and the policy / result types stay usable without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from scope_guard._version import __version__
from scope_guard.errors import (
    ArtifactError,
    ConfigError,
    InputError,
    ScopeGuardError,
    ScopeViolation,
)

if TYPE_CHECKING:
    from scope_guard.features import PooledFeatures, pool_codes
    from scope_guard.guard import ScopeGuard
    from scope_guard.policy import Policy, RiskThresholds
    from scope_guard.reader import Reader, Reading
    from scope_guard.risks import Risk
    from scope_guard.sae import JumpReLUSAE, load_sae, sae_stats
    from scope_guard.sites import Site
    from scope_guard.types import Action, Exchange, RiskReport

_LAZY = {
    "ScopeGuard": "scope_guard.guard",
    "Policy": "scope_guard.policy",
    "RiskThresholds": "scope_guard.policy",
    "Exchange": "scope_guard.types",
    "RiskReport": "scope_guard.types",
    "Action": "scope_guard.types",
    "Risk": "scope_guard.risks",
    "Reader": "scope_guard.reader",
    "Reading": "scope_guard.reader",
    "JumpReLUSAE": "scope_guard.sae",
    "load_sae": "scope_guard.sae",
    "sae_stats": "scope_guard.sae",
    "Site": "scope_guard.sites",
    "PooledFeatures": "scope_guard.features",
    "pool_codes": "scope_guard.features",
}

__all__ = [
    "Action",
    "ArtifactError",
    "ConfigError",
    "Exchange",
    "InputError",
    "JumpReLUSAE",
    "Policy",
    "PooledFeatures",
    "Reader",
    "Reading",
    "Risk",
    "RiskReport",
    "RiskThresholds",
    "ScopeGuard",
    "ScopeGuardError",
    "ScopeViolation",
    "Site",
    "__version__",
    "load_sae",
    "pool_codes",
    "sae_stats",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'scope_guard' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(module), name)
