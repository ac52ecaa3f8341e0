"""The core package works without the service's extras: nothing imports them until an app,
a metrics registry or a remote client is built, and then a missing one is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = ("starlette", "uvicorn", "httpx", "prometheus_client", "ray")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_importing_the_service_and_the_remote_client_loads_no_extra() -> None:
    code = (
        "import sys\n"
        "import scope_guard.serve, scope_guard.serve.client, scope_guard.cli.main\n"
        "import scope_guard.integrations.langchain\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {EXTRAS!r})\n"
        "assert not loaded, loaded\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr


def test_without_the_extra_building_an_app_names_it() -> None:
    code = (
        "import sys\n"
        "sys.modules['starlette'] = None  # as if not installed\n"
        "sys.modules['httpx'] = None\n"
        "from scope_guard.guard import ScopeGuard\n"
        "from scope_guard.serve import MissingExtraError, create_app\n"
        "from scope_guard.serve.client import RemoteGuard\n"
        "for build in (lambda: create_app(ScopeGuard()), lambda: RemoteGuard('http://x')):\n"
        "    try:\n"
        "        build()\n"
        "    except MissingExtraError as exc:\n"
        '        assert "scope-guard[serve]" in str(exc), exc\n'
        "    else:\n"
        "        raise SystemExit('no error')\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
