"""Probe detectors and bundles: scores by hand, save/load identity, every refusal."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from detectors.bundle import DetectorBundle
from detectors.calibration_map import CalibrationMap
from detectors.feature_blocks import BlockKind, FeatureBlock, assemble
from detectors.probe import ProbeDetector
from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.features import Pooling, encode_reading
from scope_guard.reader import Reader
from scope_guard.sae.jumprelu import JumpReLUSAE, SAEInfo
from scope_guard.sites import Site

SITE = Site.parse("resid_post@3")
PROMPT = "Context: the bridge opened in 1901. Question: when did it open?"
RESPONSE = "It opened in 1901, according to the passage."
LATENTS = [7, 2, 40, 13]


@pytest.fixture(scope="module")
def reader():
    return Reader.miniature([SITE])


@pytest.fixture(scope="module")
def sae():
    g = torch.Generator().manual_seed(0)
    return JumpReLUSAE(
        torch.randn(64, 48, generator=g) * 0.5,
        torch.randn(48, 64, generator=g),
        torch.zeros(48),
        torch.zeros(64),
        torch.full((48,), 0.5),
        info=SAEInfo(d_model=64, d_sae=48, site=SITE, source="test", neuronpedia_id="np/sae"),
    )


def _detector(sae, name="fabrication", calibration=None):
    blocks = [
        FeatureBlock(
            kind=BlockKind.SAE, site=str(SITE), pooling=Pooling.MEAN_MAX, latent_ids=LATENTS
        )
    ]
    coef = np.array([0.5, -0.25, 0.0, 1.0, 0.1, 0.2, -0.3, 0.0])
    return ProbeDetector(
        name=name,
        risk="fabrication",
        blocks=blocks,
        coef=coef,
        intercept=-1.0,
        calibration=calibration or CalibrationMap(method="sigmoid", a=0.8, b=0.1),
        threshold=0.5,
        saes={SITE: sae.narrow(LATENTS)},
        neuronpedia_ids={str(SITE): "np/sae"},
        info={"threshold_rule": "f1"},
    )


def _bundle(reader, sae, detectors):
    return DetectorBundle(
        detectors,
        reader=DetectorBundle.reader_spec(reader, detectors),
        saes=[DetectorBundle.sae_spec(sae, SITE)],
        training={"content_hash": "abc"},
    )


def test_score_matches_hand_computation(reader, sae):
    det = _detector(sae)
    reading = reader.read(PROMPT, RESPONSE)
    score = det.score(reading)
    codes = encode_reading(reading, {SITE: sae}, "mean_max")[SITE].codes[:, LATENTS]
    x = torch.cat([codes.mean(0), codes.amax(0)]).double().numpy()
    logit = float(x @ det.coef - 1.0)
    assert score.logit == pytest.approx(logit, rel=1e-5)
    assert score.probability == pytest.approx(1 / (1 + math.exp(-(0.8 * logit + 0.1))), rel=1e-6)
    assert score.flagged == (score.probability >= 0.5)
    assert score.token_risk is not None
    assert len(score.token_risk) == reading.n_tokens
    contributions = [c.contribution for c in score.top_contributions]
    assert contributions == sorted(contributions, reverse=True)
    assert all(c > 0 for c in contributions)
    for c in score.top_contributions:
        assert c.latent in LATENTS
        assert c.url == f"https://www.neuronpedia.org/np/sae/{c.latent}"


def test_per_token_rows_use_each_token_as_the_whole(reader, sae):
    det = _detector(sae)
    reading = reader.read(PROMPT, RESPONSE)
    rows = assemble(det.blocks, reading=reading, saes=det.saes, per_token=True)
    codes = det.saes[SITE].encode(reading.activation(SITE)).double().numpy()
    np.testing.assert_allclose(rows, np.concatenate([codes, codes], axis=1), rtol=1e-6)


def test_save_load_gives_identical_scores(reader, sae, tmp_path):
    bundle = _bundle(reader, sae, [_detector(sae), _detector(sae, "fabrication-2")])
    bundle.save(tmp_path / "b")
    loaded = DetectorBundle.load(tmp_path / "b", reader=reader)
    reading = reader.read(PROMPT, RESPONSE)
    for name in ("fabrication", "fabrication-2"):
        a, b = bundle[name].score(reading), loaded[name].score(reading)
        assert a.probability == b.probability
        assert a.token_risk == b.token_risk
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["reader"]["fingerprint"] == reader.fingerprint
    assert manifest["saes"][0]["site"] == "resid_post@3"
    assert manifest["training"]["content_hash"] == "abc"
    assert set(manifest["versions"]) >= {"scope_guard", "torch", "scikit_learn"}
    assert not list((tmp_path / "b").glob("*.pkl"))


def test_altered_tensor_file_is_refused(reader, sae, tmp_path):
    _bundle(reader, sae, [_detector(sae)]).save(tmp_path)
    path = tmp_path / "tensors.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="was altered"):
        DetectorBundle.load(tmp_path)


def test_altered_manifest_is_refused(reader, sae, tmp_path):
    from detectors.bundle_manifest import manifest_digest

    _bundle(reader, sae, [_detector(sae)]).save(tmp_path)
    path = tmp_path / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["detectors"][0]["threshold"] = 0.999  # a quiet edit that would change decisions
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="was altered after it was written"):
        DetectorBundle.load(tmp_path)
    manifest["schema_version"] = 99
    manifest["manifest_sha256"] = manifest_digest(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="schema 99"):
        DetectorBundle.load(tmp_path)
    path.write_text("{not json")
    with pytest.raises(ArtifactError, match=r"manifest\.json is not valid JSON"):
        DetectorBundle.load(tmp_path)


def test_reader_identity_covers_only_the_layers_read(reader, sae, tmp_path):
    """A reader that also captures deeper sites (more layers loaded) is the same reader."""
    _bundle(reader, sae, [_detector(sae)]).save(tmp_path)
    deeper = Reader.miniature([SITE, "resid_post@5"])
    assert deeper.fingerprint != reader.fingerprint
    assert DetectorBundle.load(tmp_path, reader=deeper)["fabrication"].sites == (SITE,)
    no_template = Reader.miniature([SITE], use_chat_template=False)
    with pytest.raises(ArtifactError, match="chat template"):
        DetectorBundle.load(tmp_path, reader=no_template)


def test_another_reader_is_refused(reader, sae, tmp_path, miniature_dir):
    _bundle(reader, sae, [_detector(sae)]).save(tmp_path)
    other = Reader.from_pretrained(miniature_dir, [SITE], dtype="float32")
    with torch.no_grad():
        other.layers[0].mlp.up_proj.weight.mul_(1.5)
    other.__dict__.pop("_digests", None)
    with pytest.raises(ArtifactError, match="fitted with reader"):
        DetectorBundle.load(tmp_path, reader=other)
    wrong_site = Reader.miniature(["resid_post@2"])
    with pytest.raises(ArtifactError, match="does not capture"):
        DetectorBundle.load(tmp_path, reader=wrong_site)


def test_another_tokenizer_is_refused(reader, sae, tmp_path, miniature_dir):
    """Same weights and vocabulary size, other normalization: other ids for the same text."""
    from tokenizers import normalizers
    from transformers import AutoTokenizer

    _bundle(reader, sae, [_detector(sae)]).save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["reader"]["tokenizer"] == reader.tokenizer_fingerprint
    lower = AutoTokenizer.from_pretrained(miniature_dir)
    lower.backend_tokenizer.normalizer = normalizers.Lowercase()
    assert len(lower) == len(reader.tokenizer)
    other = Reader(reader.decoder, lower, [SITE], n_layers=reader.n_layers)
    other.config = reader.config
    assert other.fingerprint == reader.fingerprint
    with pytest.raises(ArtifactError, match=r"tokenizer .* is not the one the bundle was fitted"):
        DetectorBundle.load(tmp_path, reader=other)


def test_a_smaller_max_tokens_warns(reader, sae, tmp_path, caplog):
    """Only exchanges longer than the new limit read differently: a warning, not a refusal."""
    _bundle(reader, sae, [_detector(sae)]).save(tmp_path)
    with caplog.at_level("WARNING", logger="detectors.bundle"):
        DetectorBundle.load(tmp_path, reader=Reader.miniature([SITE], max_tokens=2048))
    assert not [r for r in caplog.records if "tokens per exchange" in r.message]
    with caplog.at_level("WARNING", logger="detectors.bundle"):
        DetectorBundle.load(tmp_path, reader=Reader.miniature([SITE], max_tokens=256))
    assert [r for r in caplog.records if "this reader cuts at 256" in r.message]


def test_another_sae_is_refused(reader, sae, tmp_path):
    bundle = _bundle(reader, sae, [_detector(sae)])
    bundle.check_sae(sae, SITE)
    other = JumpReLUSAE(
        sae.W_enc * 2, sae.W_dec, sae.b_enc, sae.b_dec, sae.threshold, info=sae.info
    )
    with pytest.raises(ArtifactError, match="differs from the bundle"):
        bundle.check_sae(other, SITE)


def test_missing_files(tmp_path):
    with pytest.raises(ArtifactError, match=r"no manifest\.json"):
        DetectorBundle.load(tmp_path)


def test_layout_and_detector_validation(sae):
    with pytest.raises(ArtifactError, match="coefficients for a layout"):
        ProbeDetector(
            name="x",
            risk="fabrication",
            blocks=_detector(sae).blocks,
            coef=np.ones(3),
            intercept=0.0,
            calibration=CalibrationMap(method="sigmoid"),
            threshold=0.5,
            saes={SITE: sae.narrow(LATENTS)},
        )
    with pytest.raises(ConfigError, match="unknown risk"):
        _detector(sae).__class__(
            name="x",
            risk="rudeness",
            blocks=[],
            coef=np.zeros(0),
            intercept=0.0,
            calibration=CalibrationMap(method="sigmoid"),
            threshold=0.5,
        )
    with pytest.raises(ValueError, match="needs a site"):
        FeatureBlock(kind=BlockKind.SAE)
    with pytest.raises(ConfigError, match="two detectors named"):
        DetectorBundle([_detector(sae), _detector(sae)], reader=None)


def test_grounding_block_needs_matching_features(sae):
    from detectors.grounding import FEATURE_NAMES, FEATURES_VERSION, GroundingDetector

    block = FeatureBlock(
        kind=BlockKind.GROUNDING, names=list(FEATURE_NAMES), version=FEATURES_VERSION
    )
    det = ProbeDetector(
        name="g",
        risk="fabrication",
        blocks=[block],
        coef=np.zeros(len(FEATURE_NAMES)),
        intercept=0.0,
        calibration=CalibrationMap(method="sigmoid"),
        threshold=0.5,
    )
    result = GroundingDetector().check("Paris is in France.", ["Paris is the capital of France."])
    assert det.score(grounding=result).probability == pytest.approx(0.5)
    assert det.score(grounding=result).token_risk is None
    stale = block.model_copy(update={"names": ["old_feature"] * len(FEATURE_NAMES), "version": 0})
    det_stale = ProbeDetector(
        name="g",
        risk="fabrication",
        blocks=[stale],
        coef=np.zeros(len(FEATURE_NAMES)),
        intercept=0.0,
        calibration=CalibrationMap(method="sigmoid"),
        threshold=0.5,
    )
    with pytest.raises(ArtifactError, match="recalibrate"):
        det_stale.score(grounding=result)
    with pytest.raises(ConfigError, match="needs a grounding result"):
        det.score()


def test_sae_fingerprint_is_dtype_independent(sae):
    from detectors.bundle_manifest import sae_fingerprint

    assert sae_fingerprint(copy.deepcopy(sae).to(torch.bfloat16))  # no numpy-bf16 crash
    # Values exactly representable in fp16 hash the same in fp32 and fp16.
    exact = JumpReLUSAE(
        sae.W_enc.half().float(),
        sae.W_dec.half().float(),
        sae.b_enc,
        sae.b_dec,
        sae.threshold,
        info=sae.info,
    )
    fp32 = sae_fingerprint(exact)
    assert sae_fingerprint(copy.deepcopy(exact).to(torch.float16)) == fp32


def test_intercept_only_and_never_flagging_detectors():
    det = ProbeDetector(
        name="fabrication",
        risk="fabrication",
        blocks=[],
        coef=np.zeros(0),
        intercept=0.3,
        calibration=CalibrationMap(method="sigmoid"),
        threshold=1.0000000000000002,
    )
    score = det.score()
    assert score.probability == pytest.approx(1 / (1 + math.exp(-0.3)))
    assert not score.flagged
    assert not det.needs_reader
    assert not det.needs_grounding
