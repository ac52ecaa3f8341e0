"""scope-guard calibrate --token-site / --lookback / --surprisal, then evaluate the bundle it
wrote."""

from __future__ import annotations

import json

from synthetic_rag import synthetic_rag

from calibration.adapters.jsonl import write_jsonl
from scope_guard.cli.main import main


def test_calibrate_with_token_probe_and_lookback_then_evaluate(tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    write_jsonl(synthetic_rag(n_sources=12, per_source=4).examples, data)
    bundle = tmp_path / "bundle"
    common = ["--no-progress", "--cache-dir", str(tmp_path / "cache"), "--json"]
    args = ["calibrate", str(data), "--risk", "fabrication", "--reader", "miniature"]
    args += ["--token-site", "resid_post@2", "--lookback", "--C", "1", "--folds", "3"]
    args += ["--bootstrap", "20", "--examples", "1", "--out", str(bundle), *common]
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    shown = {e["detector"]: len(e["examples"]) for e in payload["evaluations"]}
    assert shown == {"fabrication": 1, "fabrication-grounding": 0}  # --examples reaches the report
    manifest = (bundle / "manifest.json").read_text()
    assert '"lookback"' in manifest
    assert '"tokens"' in manifest
    assert main(["evaluate", "--bundle", str(bundle), str(data), "--bootstrap", "10", *common]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert {e["detector"] for e in evaluated["evaluations"]} >= {"fabrication"}


def test_lookback_alone_says_which_sites(tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    write_jsonl(synthetic_rag(n_sources=4, per_source=2).examples, data)
    args = ["calibrate", str(data), "--risk", "fabrication", "--reader", "miniature"]
    args += ["--lookback", "--out", str(tmp_path / "b"), "--no-progress"]
    assert main(args) == 2
    assert "give --token-site, --raw-site or --sae" in capsys.readouterr().err


def test_calibrate_with_surprisal_then_evaluate(tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    write_jsonl(synthetic_rag(n_sources=10, per_source=4).examples, data)
    bundle = tmp_path / "bundle"
    common = ["--no-progress", "--cache-dir", str(tmp_path / "cache"), "--json"]
    args = ["calibrate", str(data), "--risk", "fabrication", "--reader", "miniature"]
    args += ["--raw-site", "resid_post@2", "--surprisal", "--C", "1", "--folds", "3"]
    args += ["--no-nested-c", "--bootstrap", "10", "--out", str(bundle), *common]
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["reader"]["reader_blocks"] == ["surprisal"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    kinds = {d["name"]: [b["kind"] for b in d["blocks"]] for d in manifest["detectors"]}
    assert kinds["fabrication"] == ["raw", "surprisal", "grounding"]
    assert manifest["reader"]["surprisal_fingerprint"]
    # evaluate opens the bundle's reader with surprisal (a plain one is refused by the bundle)
    assert main(["evaluate", "--bundle", str(bundle), str(data), "--bootstrap", "10", *common]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["reader"]["reader_blocks"] == ["surprisal"]
    assert {e["detector"] for e in evaluated["evaluations"]} == {
        "fabrication",
        "fabrication-grounding",
    }


def test_surprisal_without_a_site_is_refused(tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    write_jsonl(synthetic_rag(n_sources=4, per_source=2).examples, data)
    args = ["calibrate", str(data), "--risk", "fabrication", "--reader", "miniature"]
    assert main([*args, "--surprisal", "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--surprisal needs a site to read: give --token-site, --raw-site or --sae" in err
    argv = [*args, "--surprisal", "--lookback", "--out", str(tmp_path / "b"), "--no-progress"]
    assert main(argv) == 2
    assert "--lookback and --surprisal need a site" in capsys.readouterr().err
    argv = ["calibrate", str(data), "--risk", "fabrication", "--grounding-only", "--surprisal"]
    assert main([*argv, "--out", str(tmp_path / "b")]) == 2
    assert "--grounding-only excludes" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
