"""``calibrate --out``: a non-empty folder that is not a bundle is refused before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_rag import synthetic_rag

import calibration.pipeline
from calibration.adapters.jsonl import write_jsonl
from scope_guard.cli.main import main
from scope_guard.errors import ConfigError


class Reached(ConfigError):
    """Raised by the stand-in calibrate: the command got past its checks of --out."""


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    seen: list[object] = []

    def fake_calibrate(dataset: object, settings: object, **kwargs: object) -> None:
        seen.append(settings)
        raise Reached("stop here")

    monkeypatch.setattr(calibration.pipeline, "calibrate", fake_calibrate)
    return seen


def _run(tmp_path: Path, out: Path, *extra: str) -> int:
    data = tmp_path / "data.jsonl"
    if not data.exists():
        write_jsonl(synthetic_rag(n_sources=6).examples, data)
    args = ["calibrate", str(data), "--risk", "fabrication", "--grounding-only", "--no-progress"]
    return main([*args, "--out", str(out), *extra])


def test_a_non_empty_folder_that_is_not_a_bundle_is_refused(
    tmp_path: Path, calls: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8")
    assert _run(tmp_path, out) == 2
    err = capsys.readouterr().err
    assert f"ConfigError: --out {out} is a non-empty folder and not a bundle" in err
    assert "--overwrite" in err
    assert calls == []  # refused before the data was even fitted
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]


def test_a_file_is_refused(
    tmp_path: Path, calls: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    out.write_text("not a folder")
    assert _run(tmp_path, out) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert calls == []


@pytest.mark.parametrize("setup", ["missing", "empty", "bundle", "overwrite"])
def test_new_empty_bundle_or_overwrite_folders_are_accepted(
    tmp_path: Path, calls: list[object], capsys: pytest.CaptureFixture[str], setup: str
) -> None:
    out = tmp_path / "out"
    extra: list[str] = []
    if setup != "missing":
        out.mkdir()
    if setup == "bundle":
        (out / "manifest.json").write_text("{}")  # an earlier bundle: calibrate replaces it
    if setup == "overwrite":
        (out / "notes.txt").write_text("mine")
        extra = ["--overwrite"]
    assert _run(tmp_path, out, *extra) == 2
    assert "stop here" in capsys.readouterr().err
    assert len(calls) == 1


def test_overwrite_writes_the_bundle_beside_other_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["--overwrite", "--bootstrap", "10", "--folds", "3", "--cache-dir", str(tmp_path / "c")]
    assert _run(tmp_path, out, *args) == 0
    assert (out / "manifest.json").is_file()
    assert (out / "notes.txt").read_text() == "mine"
