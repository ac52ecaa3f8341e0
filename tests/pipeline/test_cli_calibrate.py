"""scope-guard calibrate / evaluate on a JSONL file, grounding-only and with the stand-in."""

from __future__ import annotations

import json

from synthetic_rag import synthetic_rag

from calibration.adapters.jsonl import write_jsonl
from scope_guard.cli.main import main


def _data(tmp_path, n_sources=30):
    path = tmp_path / "data.jsonl"
    write_jsonl(synthetic_rag(n_sources=n_sources).examples, path)
    return path


def test_calibrate_then_evaluate_grounding_only(tmp_path, capsys):
    data = _data(tmp_path)
    bundle = tmp_path / "bundle"
    args = [
        "calibrate",
        str(data),
        "--risk",
        "fabrication",
        "--grounding-only",
        "--out",
        str(bundle),
        "--bootstrap",
        "30",
        "--folds",
        "3",
        "--no-progress",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
    ]
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    (ev,) = payload["evaluations"]
    assert ev["detector"] == "fabrication"
    assert ev["metrics"]["auroc"]["value"] > 0.9
    assert "y" not in ev
    assert (bundle / "manifest.json").is_file()
    assert (bundle / "report" / "report.html").is_file()

    assert (
        main(
            [
                "evaluate",
                str(data),
                "--bundle",
                str(bundle),
                "--bootstrap",
                "20",
                "--no-progress",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--json",
            ]
        )
        == 0
    )
    scored = json.loads(capsys.readouterr().out)
    assert scored["evaluations"][0]["metrics"]["n"] == 120


def test_calibrate_with_the_stand_in_reader(tmp_path, capsys):
    data = _data(tmp_path, n_sources=12)
    bundle = tmp_path / "bundle"
    assert (
        main(
            [
                "calibrate",
                str(data),
                "--risk",
                "fabrication",
                "--reader",
                "miniature",
                "--out",
                str(bundle),
                "--bootstrap",
                "10",
                "--folds",
                "3",
                "--no-progress",
                "--cache-dir",
                str(tmp_path / "cache"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "stand-in" in text
    assert "fabrication-raw" in text
    assert (
        main(
            [
                "evaluate",
                str(data),
                "--bundle",
                str(bundle),
                "--bootstrap",
                "10",
                "--no-progress",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--report",
                str(tmp_path / "rep"),
            ]
        )
        == 0
    )
    assert (tmp_path / "rep" / "report.md").is_file()


def test_clear_errors(tmp_path, capsys):
    data = _data(tmp_path, n_sources=6)
    assert (
        main(["calibrate", str(data), "--risk", "fabrication", "--out", str(tmp_path / "b")]) == 2
    )
    assert "--grounding-only" in capsys.readouterr().err
    assert (
        main(
            [
                "calibrate",
                str(data),
                "--risk",
                "rudeness",
                "--grounding-only",
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 2
    )
    assert "unknown risk" in capsys.readouterr().err
    assert (
        main(
            [
                "calibrate",
                str(tmp_path / "missing.jsonl"),
                "--risk",
                "fabrication",
                "--grounding-only",
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 2
    )
    assert "missing.jsonl" in capsys.readouterr().err
    assert main(["evaluate", str(data), "--bundle", str(tmp_path / "nobundle")]) == 2
    assert "not a detector bundle" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "response": ""}\nnot json\n')
    assert (
        main(
            [
                "calibrate",
                str(bad),
                "--risk",
                "fabrication",
                "--grounding-only",
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "bad.jsonl:1" in err
    assert "bad.jsonl:2" in err


def test_no_nested_c_reaches_the_settings(tmp_path, monkeypatch):
    import calibration.pipeline
    from scope_guard.errors import ConfigError

    seen = []

    def fake_calibrate(dataset, settings, **kwargs):
        seen.append(settings)
        raise ConfigError("stop here")

    monkeypatch.setattr(calibration.pipeline, "calibrate", fake_calibrate)
    data = _data(tmp_path, n_sources=6)
    base = ["calibrate", str(data), "--risk", "fabrication", "--grounding-only"]
    for extra in ([], ["--no-nested-c"]):
        args = [*base, *extra, "--out", str(tmp_path / "b"), "--no-progress"]
        assert main(args) == 2
    assert [s.nested_c for s in seen] == [True, False]
