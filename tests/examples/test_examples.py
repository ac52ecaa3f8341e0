"""Each example script and the demo run offline, end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scope_guard.cli.main import main
from scope_guard.risklog import SQLiteRiskLog

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str, cache: Path) -> str:
    env = {**os.environ, "SCOPE_GUARD_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _rows(db: Path) -> list[tuple[int, str]]:
    with SQLiteRiskLog(db, readonly=True) as log:
        return [(r.attempt, r.action) for r in log.records(order="asc")]


def test_wrap_rag_chain(tmp_path, isolated_cache):
    db = tmp_path / "risk.db"
    out = _run("wrap_rag_chain.py", "--log", str(db), cache=isolated_cache)
    assert "monitor: served as is: 'It opened in 1958" in out
    assert "guard:   served: 'The Alder Bridge opened in 1931 and spans 412 metres.'" in out
    # monitor: 1 record; guard: attempt 1 (regenerate) and attempt 2 (allow)
    assert [r[0] for r in _rows(db)] == [1, 1, 2]
    assert _rows(db)[-1][1] == "allow"


def test_risk_log_example(tmp_path, isolated_cache):
    db = tmp_path / "risk.db"
    out = _run("risk_log.py", "--log", str(db), cache=isolated_cache)
    assert "7 records in" in out
    assert len(_rows(db)) == 7
    assert "worst requests:" in out


@pytest.mark.slow
def test_calibrate_example(tmp_path, isolated_cache):
    out = _run("calibrate_detectors.py", "--out", str(tmp_path), cache=isolated_cache)
    assert "grounding-only, held-out groups: AUROC" in out
    assert "fabrication-raw  (raw)" in out
    assert (tmp_path / "grounding-bundle" / "manifest.json").is_file()
    assert (tmp_path / "grounding-report" / "report.html").is_file()


def _check_demo_output(text, db):
    assert "regenerate" in text
    assert "served (fallback)" in text
    assert "served (regenerated): A single ticket costs 4.50 euros" in text
    assert re.search(r"fabrication 0\.\d\d >= regenerate", text)  # why each action was taken
    rows = _rows(db)
    printed = [line for line in text.splitlines() if line[:2] in ("1 ", "2 ")]
    assert len(rows) == len(printed) >= 5  # one record per attempt shown
    assert {a for _, a in rows} >= {"allow", "regenerate"}
    assert f"risk log: {db}" in text
    assert re.search(r"requests served: .*fallback [1-9]", text)  # served outcomes counted


def test_demo_shows_a_regeneration_and_a_fallback(tmp_path, capsys):
    db = tmp_path / "demo.db"
    assert main(["demo", "--miniature", "--log", str(db)]) == 0
    text = capsys.readouterr().out
    assert "STAND-IN" in text
    _check_demo_output(text, db)


def test_demo_claims_are_cut_at_a_word_boundary():
    from scope_guard.cli.demo_cmd import _claim

    text = "It was founded in 1932 by the shipping magnate Harald Voss of Copenhagen."
    cut = _claim(text)
    assert cut.endswith(" ...")
    assert text.startswith(cut.removesuffix(" ..."))
    assert text[len(cut.removesuffix(" ..."))] == " "


@pytest.mark.real_weights
def test_demo_reads_with_the_real_gemma(tmp_path, capsys, real_cache):
    # The persistent cache: the reader is converted there once, and the demo bundle kept.
    db = tmp_path / "demo.db"
    assert main(["demo", "--log", str(db)]) == 0
    text = capsys.readouterr().out
    assert "reader: gemma-3-270m [Q4_K_M GGUF, dequantized]" in text
    assert "real weights" in text
    assert "STAND-IN" not in text
    assert "mean nothing" not in text
    _check_demo_output(text, db)
