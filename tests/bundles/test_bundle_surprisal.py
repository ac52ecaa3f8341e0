"""Detectors with a ``surprisal`` block in bundles: round trip, the reader they need, and hostile
manifests (re-signed after the edit, as anyone can)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from detectors.bundle import DetectorBundle
from detectors.bundle_manifest import manifest_digest
from detectors.calibration_map import CalibrationMap
from detectors.feature_blocks import BlockKind, FeatureBlock, assemble, surprisal_block
from detectors.probe import ProbeDetector
from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.reader import Reader
from scope_guard.sites import Site

SITE = Site.parse("resid_post@2")
PROMPT = "Context: the bridge opened in 1901. Question: when did it open?"
RESPONSE = "It opened in 1901, according to the passage, and cost 40 million dollars."
MANIFEST = "manifest.json"


@pytest.fixture(scope="module")
def reader():
    return Reader.miniature([SITE], surprisal=True)


def _detector(*, with_raw: bool = True) -> ProbeDetector:
    blocks = [surprisal_block()]
    if with_raw:
        blocks.insert(0, FeatureBlock(kind=BlockKind.RAW, site=str(SITE), d=64))
    width = sum(b.width for b in blocks)
    return ProbeDetector(
        name="fabrication",
        risk="fabrication",
        blocks=blocks,
        coef=np.linspace(-0.3, 0.4, width),
        intercept=-0.5,
        calibration=CalibrationMap(method="sigmoid", a=0.9, b=0.05),
        threshold=0.5,
    )


def _save(reader: Reader, folder: Path, **kwargs: Any) -> Path:
    det = _detector(**kwargs)
    bundle = DetectorBundle([det], reader=DetectorBundle.reader_spec(reader, [det]))
    return bundle.save(folder)


def test_round_trip_scores_as_by_hand(reader, tmp_path):
    det = _detector()
    assert det.needs_surprisal
    assert det.sites == (SITE,)
    folder = _save(reader, tmp_path / "b")
    loaded = DetectorBundle.load(folder, reader=reader)
    assert loaded.needs_surprisal
    assert loaded.reader is not None
    assert loaded.reader.surprisal_fingerprint == reader.surprisal_fingerprint
    reading = reader.read(PROMPT, RESPONSE)
    x = assemble(det.blocks, reading=reading)[0]
    expected = float(x @ det.coef + det.intercept)
    got = loaded["fabrication"].score(reading)
    assert got.logit == pytest.approx(expected, rel=1e-12)
    assert got.probability == pytest.approx(1 / (1 + np.exp(-(0.9 * expected + 0.05))))
    assert got.logit == pytest.approx(det.score(reading).logit, rel=1e-12)
    assert got.token_risk is not None
    assert len(got.token_risk) == reading.n_tokens


def test_surprisal_alone_reads_every_layer(reader, tmp_path):
    det = _detector(with_raw=False)
    assert det.sites == ()
    assert det.needs_reader
    spec = DetectorBundle.reader_spec(reader, [det])
    assert spec is not None
    assert spec.fingerprint_layer == reader.n_layers - 1
    loaded = DetectorBundle.load(_save(reader, tmp_path / "b", with_raw=False), reader=reader)
    assert loaded.sites == ()


def test_a_reader_without_surprisal_is_refused(reader, tmp_path, miniature_dir):
    folder = _save(reader, tmp_path / "b")
    plain = Reader.miniature([SITE])
    with pytest.raises(ArtifactError, match="surprisal=True"):
        DetectorBundle.load(folder, reader=plain)
    with pytest.raises(ConfigError, match="surprisal=True"):
        DetectorBundle.reader_spec(plain, [_detector()])


def test_a_reader_with_another_head_is_refused(reader, tmp_path):
    folder = _save(reader, tmp_path / "b")
    other = Reader.miniature([SITE], surprisal=True)
    with torch.no_grad():
        other.decoder.norm.weight.add_(0.05)  # the layers the raw block reads are unchanged
    with pytest.raises(ArtifactError, match="surprisal fingerprint"):
        DetectorBundle.load(folder, reader=other)


def _edit(folder: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    path = folder / MANIFEST
    data = json.loads(path.read_text())
    change(data)
    data["manifest_sha256"] = manifest_digest(data)
    path.write_text(json.dumps(data))


def _block(m: dict[str, Any]) -> dict[str, Any]:
    return m["detectors"][0]["blocks"][1]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: _block(m).update(thresholds=[1.0, 2.0, 3.0, 4.0]), "coefficients"),
        (lambda m: _block(m).update(thresholds=[2.0, 1.0, 3.0]), "increasing"),
        (lambda m: _block(m).update(thresholds=[1.0] * 10_000), "thresholds"),
        (lambda m: _block(m).update(version=99), "version"),
        (lambda m: _block(m).update(site="resid_post@1"), "no site"),
        (lambda m: _block(m).update(kind="perplexity"), "kind"),
        (lambda m: m["reader"].update(surprisal_fingerprint=None), "surprisal fingerprint"),
    ],
)
def test_hostile_manifests_are_refused(reader, tmp_path, change, match):
    folder = _save(reader, tmp_path / "b")
    _edit(folder, change)
    with pytest.raises(ArtifactError, match=match):
        DetectorBundle.load(folder)
