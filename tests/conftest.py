"""Shared fixtures: the miniature reader is built once per test session in a temp cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep generated artifacts (miniature model and SAE) out of the user's cache."""
    root = tmp_path_factory.mktemp("scope_guard_cache")
    previous = os.environ.get("SCOPE_GUARD_CACHE")
    os.environ["SCOPE_GUARD_CACHE"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("SCOPE_GUARD_CACHE", None)
    else:
        os.environ["SCOPE_GUARD_CACHE"] = previous


@pytest.fixture(scope="session")
def miniature_dir(isolated_cache: Path) -> Path:
    from scope_guard.reader import miniature_model_path

    return miniature_model_path()
