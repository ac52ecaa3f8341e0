"""Calibration with a reader but no SAE: raw-activation probes at chosen sites."""

from __future__ import annotations

import pytest
from synthetic_rag import synthetic_rag

from calibration.pipeline import CalibrationSettings, calibrate
from detectors.bundle import DetectorBundle
from detectors.feature_blocks import BlockKind
from detectors.grounding import GroundingDetector
from scope_guard.errors import ConfigError
from scope_guard.reader import Reader

SETTINGS = CalibrationSettings(risk="fabrication", n_bootstrap=20, n_splits=3)
SITE = "resid_post@2"


@pytest.fixture(scope="module")
def reader():
    return Reader.miniature([SITE])


@pytest.fixture(scope="module")
def result(reader, tmp_path_factory):
    return calibrate(
        synthetic_rag(),
        SETTINGS,
        reader=reader,
        raw_sites=[SITE],
        grounding=GroundingDetector(),
        cache_dir=tmp_path_factory.mktemp("features"),
        progress=False,
    )


def test_raw_probe_over_grounding_beside_grounding_alone(result, reader):
    primary = result.bundle["fabrication"]
    kinds = [b.kind for b in primary.blocks]
    assert kinds == [BlockKind.RAW, BlockKind.GROUNDING]
    assert primary.blocks[0].site == SITE
    assert primary.blocks[0].d == reader.site_dim(SITE)
    baseline = result.bundle["fabrication-grounding"]
    assert [b.kind for b in baseline.blocks] == [BlockKind.GROUNDING]
    assert {e.kind for e in result.report.evaluations} == {"raw+grounding", "grounding"}
    assert result.bundle.reader is not None
    assert result.bundle.reader.fingerprint == reader.fingerprint


@pytest.fixture(scope="module")
def raw_only(reader, tmp_path_factory):
    return calibrate(
        synthetic_rag(),
        SETTINGS,
        reader=reader,
        raw_sites=[SITE],
        cache_dir=tmp_path_factory.mktemp("raw"),
        progress=False,
    )


def test_raw_sites_without_grounding_fit_a_raw_probe_alone(raw_only):
    assert list(raw_only.bundle.detectors) == ["fabrication"]
    assert [b.kind for b in raw_only.bundle["fabrication"].blocks] == [BlockKind.RAW]


def test_the_bundle_scores_the_same_after_a_round_trip(raw_only, reader, tmp_path):
    raw_only.bundle.save(tmp_path / "b")
    loaded = DetectorBundle.load(tmp_path / "b", reader=reader)
    reading = reader.read("Question: when did it open?", "It opened in 1901.")
    a = raw_only.bundle["fabrication"].score(reading)
    b = loaded["fabrication"].score(reading)
    assert a.probability == pytest.approx(b.probability, rel=1e-12)


def test_raw_sites_need_a_reader(tmp_path):
    with pytest.raises(ConfigError, match="need a reader"):
        calibrate(synthetic_rag(), SETTINGS, raw_sites=[SITE], cache_dir=tmp_path, progress=False)


def test_cli_raw_site_fits_a_raw_probe_and_evaluates(tmp_path, capsys):
    import json

    from calibration.adapters.jsonl import write_jsonl
    from scope_guard.cli.main import main

    data = tmp_path / "data.jsonl"
    write_jsonl(synthetic_rag(n_sources=12).examples, data)
    common = ["--no-progress", "--cache-dir", str(tmp_path / "cache"), "--json"]
    argv = ["calibrate", str(data), "--risk", "fabrication", "--reader", "miniature"]
    argv += ["--raw-site", SITE, "--out", str(tmp_path / "b"), "--bootstrap", "20", "--folds", "3"]
    assert main([*argv, *common]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {e["detector"] for e in payload["evaluations"]} == {
        "fabrication",
        "fabrication-grounding",
    }
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["reader"]["source"] == "miniature"
    evaluate = ["evaluate", str(data), "--bundle", str(tmp_path / "b"), "--bootstrap", "20"]
    assert main([*evaluate, *common]) == 0
    assert json.loads(capsys.readouterr().out)["evaluations"]


def test_cli_raw_site_excludes_sae(tmp_path, capsys):
    from scope_guard.cli.main import main

    argv = ["calibrate", str(tmp_path / "x.jsonl"), "--risk", "fabrication"]
    argv += ["--reader", "miniature", "--raw-site", SITE, "--sae", "s", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "--raw-site is for a reader without an SAE" in capsys.readouterr().err
