"""Latent explanations in a bundle: saved beside the tensors, scored into every contribution,
read back exactly, and refused in every hostile shape (the attacker re-signs the hashes)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from miniature_sae import miniature_sae

from detectors.bundle import DetectorBundle
from detectors.bundle_manifest import manifest_digest
from detectors.calibration_map import CalibrationMap
from detectors.feature_blocks import BlockKind, FeatureBlock
from detectors.latent_explanations import (
    EXPLANATIONS_FILE,
    MAX_CONTEXT_CHARS,
    MAX_CONTEXTS,
    render_context,
    rendered_contexts,
)
from detectors.probe import ProbeDetector
from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.guard_parts import _detector_score
from scope_guard.reader import Reader
from scope_guard.sae.jumprelu import JumpReLUSAE
from scope_guard.sae.training.explain import LatentContext
from scope_guard.sites import Site

SITE = Site.parse("resid_post@3")
LATENTS = [7, 2, 40, 13]
PROMPT = "Context: the bridge opened in 1901. Question: when did it open?"
RESPONSE = "It opened in 1901, according to the passage."
EXPLAINED = {
    7: ("the old [[bridge]] of", "a [[bridge]] across"),
    13: ("opened in [[1901]] by",),
    40: ("<script>alert(1)</script> [[x]]",),
}


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader.miniature([SITE])


@pytest.fixture(scope="module")
def sae() -> JumpReLUSAE:
    return miniature_sae(SITE, threshold=0.05, source="trained-here")


def _detector(sae: JumpReLUSAE, *, explanations: Any = None, npid: str | None = None):
    return ProbeDetector(
        name="fabrication",
        risk="fabrication",
        blocks=[FeatureBlock(kind=BlockKind.SAE, site=str(SITE), latent_ids=LATENTS)],
        # every latent pushes towards the risk, so each one that fires is a top contribution
        coef=np.array([0.5, 0.25, 0.3, 1.0, 0.1, 0.2, 0.3, 0.4]),
        intercept=-1.0,
        calibration=CalibrationMap(method="sigmoid", a=0.8, b=0.1),
        threshold=0.5,
        saes={SITE: sae.narrow(LATENTS)},
        neuronpedia_ids={str(SITE): npid},
        explanations={str(SITE): EXPLAINED} if explanations is None else explanations,
    )


def _save(folder: Path, reader: Reader, sae: JumpReLUSAE, det: ProbeDetector) -> Path:
    bundle = DetectorBundle(
        [det],
        reader=DetectorBundle.reader_spec(reader, [det]),
        saes=[DetectorBundle.sae_spec(sae, SITE)],
    )
    return bundle.save(folder)


@pytest.fixture
def bundle_dir(tmp_path: Path, reader: Reader, sae: JumpReLUSAE) -> Path:
    return _save(tmp_path / "bundle", reader, sae, _detector(sae))


def rewrite_explanations(folder: Path, content: bytes | Callable[[dict[str, Any]], Any]) -> None:
    """Replace the explanations file and re-sign the manifest, as anyone can."""
    path = folder / EXPLANATIONS_FILE
    if callable(content):
        data = json.loads(path.read_text(encoding="utf-8"))
        content(data)
        content = json.dumps(data).encode("utf-8")
    path.write_bytes(content)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["files"][EXPLANATIONS_FILE] = hashlib.sha256(content).hexdigest()
    manifest["manifest_sha256"] = manifest_digest(manifest)
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")


def latents_of(data: dict[str, Any]) -> dict[str, Any]:
    return data["detectors"]["fabrication"][str(SITE)]


# ------------------------------------------------------------------ round trip
def test_explanations_round_trip_and_reach_every_contribution(bundle_dir, reader):
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert EXPLANATIONS_FILE in manifest["files"]
    loaded = DetectorBundle.load(bundle_dir, reader=reader)["fabrication"]
    assert loaded.explanations == {str(SITE): EXPLAINED}

    score = loaded.score(reader.read(PROMPT, RESPONSE))
    assert score.top_contributions
    for c in score.top_contributions:
        assert c.contexts == EXPLAINED.get(c.latent, ())
        assert c.url is None  # no Neuronpedia page for an SAE trained here
    # and so into the RiskReport's detector scores
    note_contexts = {n.latent: n.contexts for n in _detector_score(score).top_latents}
    assert note_contexts == {c.latent: list(c.contexts) for c in score.top_contributions}
    assert any(note_contexts.values())


def test_a_registry_sae_keeps_its_neuronpedia_link(tmp_path, reader, sae):
    npid = "gemma-2-2b/20-gemmascope-res-16k"
    info = dataclasses.replace(sae.info, source="gemma-scope-2b-pt-res/...", neuronpedia_id=npid)
    tensors = (sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec, sae.threshold)
    registry = JumpReLUSAE(*(t.detach().clone() for t in tensors), info=info)
    det = _detector(registry, explanations={}, npid=npid)
    folder = _save(tmp_path / "b", reader, registry, det)
    assert not (folder / EXPLANATIONS_FILE).exists()
    loaded = DetectorBundle.load(folder)["fabrication"]
    score = loaded.score(reader.read(PROMPT, RESPONSE))
    assert score.top_contributions
    for c in score.top_contributions:
        assert c.url == f"https://www.neuronpedia.org/gemma-2-2b/20-gemmascope-res-16k/{c.latent}"
        assert c.contexts == ()


def test_saving_without_explanations_removes_a_stale_file(bundle_dir, reader, sae):
    _save(bundle_dir, reader, sae, _detector(sae, explanations={}))
    assert not (bundle_dir / EXPLANATIONS_FILE).exists()
    assert DetectorBundle.load(bundle_dir)["fabrication"].explanations == {}


def test_a_detector_refuses_explanations_it_cannot_hold(sae):
    with pytest.raises(ConfigError, match="does not keep"):
        _detector(sae, explanations={str(SITE): {8: ("x",)}})
    with pytest.raises(ConfigError, match="no SAE block"):
        _detector(sae, explanations={"resid_post@1": {7: ("x",)}})
    with pytest.raises(ConfigError, match="contexts"):
        _detector(sae, explanations={str(SITE): {7: ("x",) * (MAX_CONTEXTS + 1)}})
    with pytest.raises(ConfigError, match="characters"):
        _detector(sae, explanations={str(SITE): {7: ("x" * (MAX_CONTEXT_CHARS + 1),)}})


# ------------------------------------------------------------------ rendering
def test_render_context_marks_the_token_and_keeps_boundary_spaces():
    assert render_context(LatentContext(1.0, 0, 3, "the old ", "bridge", " of")) == (
        "the old [[bridge]] of"
    )
    # a token decoded with its own leading space keeps the space outside the marker
    assert render_context(LatentContext(1.0, 0, 3, "the\nold", " bridge", "\tof  it")) == (
        "the old [[bridge]] of it"
    )


def test_render_context_is_bounded_and_keeps_the_token():
    long = LatentContext(1.0, 0, 3, "a " * 500, "TOKEN", " b" * 500)
    text = render_context(long)
    assert len(text) <= MAX_CONTEXT_CHARS
    assert "[[TOKEN]]" in text
    assert text.startswith("a")
    assert text.endswith("b")
    huge_token = render_context(LatentContext(1.0, 0, 3, "x", "T" * 1000, "y"))
    assert len(huge_token) <= MAX_CONTEXT_CHARS
    assert huge_token.startswith("[[T")
    assert huge_token.endswith("]]")
    contexts = [LatentContext(float(i), 0, i, "", f"t{i}", "") for i in range(8)]
    assert rendered_contexts(contexts) == ("[[t0]]", "[[t1]]", "[[t2]]")


# ------------------------------------------------------------------ hostile files
def refused(folder: Path, match: str) -> None:
    with pytest.raises(ArtifactError, match=match):
        DetectorBundle.load(folder)


def test_an_altered_explanations_file_is_refused(bundle_dir):
    path = bundle_dir / EXPLANATIONS_FILE
    path.write_text(path.read_text().replace("bridge", "gadget"), encoding="utf-8")
    refused(bundle_dir, "altered")


def test_a_missing_listed_explanations_file_is_refused(bundle_dir):
    (bundle_dir / EXPLANATIONS_FILE).unlink()
    refused(bundle_dir, "missing")


def test_an_explanations_symlink_out_of_the_folder_is_refused(bundle_dir):
    outside = bundle_dir.parent / "outside.json"
    outside.write_bytes((bundle_dir / EXPLANATIONS_FILE).read_bytes())
    (bundle_dir / EXPLANATIONS_FILE).unlink()
    os.symlink(outside, bundle_dir / EXPLANATIONS_FILE)
    refused(bundle_dir, "outside its folder")


def test_an_oversized_explanations_file_is_refused(bundle_dir, monkeypatch):
    import detectors.bundle

    monkeypatch.setattr(detectors.bundle, "MAX_EXPLANATIONS_BYTES", 64)
    refused(bundle_dir, "explanations.json has .* more than the 64 allowed")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: latents_of(d).update({"7": ["x"] * (MAX_CONTEXTS + 1)}), "valid latent"),
        (lambda d: latents_of(d).update({"7": ["x" * (MAX_CONTEXT_CHARS + 1)]}), "valid latent"),
        (lambda d: latents_of(d).update({"7": [123]}), "valid latent"),
        (lambda d: latents_of(d).update({"7": "not a list"}), "valid latent"),
        (lambda d: latents_of(d).update({"-7": ["x"]}), "not integers"),
        (lambda d: latents_of(d).update({"1e3": ["x"]}), "not integers"),
        (lambda d: latents_of(d).update({"٣": ["x"]}), "not integers"),  # an Arabic-Indic 3
        (lambda d: latents_of(d).update({"9" * 400: ["x"]}), "not integers"),
        (lambda d: latents_of(d).update({"8": ["x"]}), "does not keep"),
        (lambda d: d["detectors"]["fabrication"].update({"resid_post@1": {}}), "no SAE block"),
        (lambda d: d["detectors"].update({"other": {}}), "lacks"),
        (lambda d: d.update({"format": "pickle"}), "valid latent"),
        (lambda d: d.update({"extra": 1}), "valid latent"),
        (lambda d: d.update({"version": 2}), "valid latent"),
    ],
)
def test_hostile_explanations_with_matching_hashes_are_refused(bundle_dir, edit, match):
    rewrite_explanations(bundle_dir, edit)
    refused(bundle_dir, match)


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"format": "scope-guard-latent-explanations", "version": 1, "detectors": ' + b"[" * 5000,
        b"\xff\xfe{}",
        b"",
        b"[]",
    ],
)
def test_malformed_explanations_are_an_artifact_error(bundle_dir, content):
    rewrite_explanations(bundle_dir, content)
    refused(bundle_dir, "explanations")


def test_an_unlisted_explanations_file_is_never_read(bundle_dir):
    """A file the manifest does not list is not part of the bundle."""
    (bundle_dir / EXPLANATIONS_FILE).write_bytes(b"{not json")

    def unlist(m: dict[str, Any]) -> None:
        del m["files"][EXPLANATIONS_FILE]

    manifest_path = bundle_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    unlist(manifest)
    manifest["manifest_sha256"] = manifest_digest(manifest)
    manifest_path.write_text(json.dumps(manifest))
    assert DetectorBundle.load(bundle_dir)["fabrication"].explanations == {}
