"""Importing the service's optional dependencies, with an error that names the extra.

The core package works without them: each is imported only when a service or a remote
client is built, and its absence is a :class:`MissingExtraError`, not an ``ImportError`` from
deep inside a call.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from scope_guard.errors import ConfigError

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ConfigError, ImportError):
    """An optional dependency is not installed; the message says which extra provides it."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or say which extra to install.

    Args:
        module: The module to import (``"starlette.applications"``).
        extra: The scope-guard extra that installs it (``"serve"``, ``"ray"``).

    Raises:
        MissingExtraError: ``module`` cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = (
            f"{module} is not installed: it comes with the {extra!r} extra "
            f"(pip install 'scope-guard[{extra}]')"
        )
        raise MissingExtraError(msg) from exc
