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
