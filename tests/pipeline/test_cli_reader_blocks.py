"""scope-guard calibrate --token-site / --lookback, then evaluate the bundle it wrote."""

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
