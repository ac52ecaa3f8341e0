"""The labeled-data modules import one way: ``data -> adapters -> labeled / data_problems``.

A cycle between ``calibration.data`` and ``calibration.adapters`` works only while every import
happens in one lucky order; these tests read the import statements themselves, and import each
module alone in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
ADAPTERS = sorted((ROOT / "calibration" / "adapters").glob("*.py"))
BELOW_THE_FACADE = [*ADAPTERS, ROOT / "calibration" / "labeled.py"]
BASE = [ROOT / "calibration" / "labeled.py", ROOT / "calibration" / "data_problems.py"]


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` / ``from ... import`` of ``path`` names (type-checking too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            # ``from calibration import data`` names the module as an attribute
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("path", BELOW_THE_FACADE, ids=lambda p: p.name)
def test_modules_below_the_facade_never_import_calibration_data(path: Path) -> None:
    names = imported_modules(path)
    assert "calibration.data" not in names, names
    # the package re-exports the facade: ``from calibration import X`` is the same arrow
    assert "calibration" not in names, names


@pytest.mark.parametrize("path", BASE, ids=lambda p: p.name)
def test_the_models_and_errors_import_no_loader(path: Path) -> None:
    names = imported_modules(path)
    assert not any(n.startswith("calibration.adapters") for n in names), names
    assert not any(n == "calibration.data" for n in names), names


@pytest.mark.parametrize(
    "module",
    [module_name(p) for p in [*ADAPTERS, *BASE, ROOT / "calibration" / "data.py"]],
)
def test_each_module_imports_alone(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
