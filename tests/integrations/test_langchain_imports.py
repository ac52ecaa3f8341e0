"""Only ``scope_guard.integrations.langchain`` loads LangChain."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_core_packages_do_not_load_langchain() -> None:
    code = (
        "import sys, scope_guard, scope_guard.guard, scope_guard.integrations\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('langchain'))\n"
        "assert not loaded, loaded\n"
        "import scope_guard.integrations.langchain\n"
        "assert 'langchain_core' in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_no_module_outside_the_integration_imports_langchain() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+langchain", re.MULTILINE)
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("scope_guard", "detectors", "calibration")
        for path in (ROOT / package).rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
        and "integrations/langchain" not in path.as_posix()
    ]
    assert offenders == []


def test_the_integration_modules_import_one_way() -> None:
    """No import circle inside the integration: each module imports only modules below it."""
    package = ROOT / "scope_guard" / "integrations" / "langchain"
    pattern = re.compile(
        r"^\s*from scope_guard\.integrations\.langchain\.(\w+) import", re.MULTILINE
    )
    graph = {
        path.stem: set(pattern.findall(path.read_text(encoding="utf-8")))
        for path in package.glob("*.py")
    }

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, set()) - seen:
            if nxt == target or reaches(nxt, target, seen | {nxt}):
                return True
        return False

    circles = sorted(m for m in graph if reaches(m, m, set()))
    assert circles == []


def test_the_three_listeners_share_one_hook_table() -> None:
    from scope_guard.integrations.langchain import (
        AsyncScopeGuardCallbackHandler,
        ScopeGuardCallbackHandler,
    )
    from scope_guard.integrations.langchain._attempts import AttemptCollector
    from scope_guard.integrations.langchain._hooks import HOOKS

    for cls in (AttemptCollector, ScopeGuardCallbackHandler, AsyncScopeGuardCallbackHandler):
        for name in HOOKS:
            assert name in vars(cls), (cls.__name__, name)  # from the table, not inherited
