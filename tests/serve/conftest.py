"""Fixtures of the service tests: the bundle is built once per session (miniature reader)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed")


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, isolated_cache: Path) -> Path:
    from serve_builders import miniature_bundle

    return miniature_bundle(tmp_path_factory.mktemp("serve_bundle"))
