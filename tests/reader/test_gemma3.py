"""Gemma 3 readers (the models Gemma Scope 2 was trained on): text-only and multimodal."""

from __future__ import annotations

import shutil

import pytest
import torch
from transformers import AutoTokenizer

from scope_guard.reader import Reader

PROMPT = "Context: the bridge opened in 1901. Question: when did it open?"
RESPONSE = "It opened in 1901, São Paulo 😀."
LAYER_TYPES = ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]


def _text_config(vocab_size):
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=8,
        layer_types=LAYER_TYPES,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )


def _copy_tokenizer(miniature_dir, target):
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (miniature_dir / name).exists():
            shutil.copy(miniature_dir / name, target / name)


@pytest.fixture(scope="module")
def gemma3_text(miniature_dir, tmp_path_factory):
    from transformers import Gemma3ForCausalLM

    folder = tmp_path_factory.mktemp("gemma3_text")
    vocab = len(AutoTokenizer.from_pretrained(miniature_dir))
    torch.manual_seed(1)
    model = Gemma3ForCausalLM(_text_config(vocab)).eval()
    model.save_pretrained(folder)
    _copy_tokenizer(miniature_dir, folder)
    return folder, model


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_gemma3_resid_post_equals_hidden_states(gemma3_text, layer):
    folder, model = gemma3_text
    # Gemma Scope 2 configs name the site by its Hugging Face module path.
    reader = Reader.from_pretrained(folder, [f"model.layers.{layer}.output"], dtype="float32")
    assert len(reader.layers) == layer + 1
    enc = reader.encoder.encode(PROMPT * 3, RESPONSE)
    with torch.no_grad():
        hidden = model(torch.tensor([enc.input_ids]), output_hidden_states=True).hidden_states
    reading = reader.read(PROMPT * 3, RESPONSE)
    torch.testing.assert_close(
        reading.activation(f"resid_post@{layer}"), hidden[layer + 1][0, enc.response_start :]
    )


def test_gemma3_last_layer_is_pre_norm(gemma3_text):
    folder, model = gemma3_text
    reader = Reader.from_pretrained(folder, ["resid_post@3"], dtype="float32")
    enc = reader.encoder.encode(PROMPT, RESPONSE)
    with torch.no_grad():
        hidden = model(torch.tensor([enc.input_ids]), output_hidden_states=True).hidden_states
    last = reader.read(PROMPT, RESPONSE).activation("resid_post@3")
    torch.testing.assert_close(model.model.norm(last), hidden[-1][0, enc.response_start :])


def test_gemma3_sites_add_up(gemma3_text):
    folder, model = gemma3_text
    reader = Reader.from_pretrained(
        folder, ["resid_post@1", "resid_post@2", "attn_out@2", "mlp_out@2"], dtype="float32"
    )
    reading = reader.read(PROMPT, RESPONSE)
    block = model.model.layers[2]
    with torch.no_grad():
        attn = block.post_attention_layernorm(
            block.self_attn.o_proj(reading.activation("attn_out@2"))
        )
    torch.testing.assert_close(
        reading.activation("resid_post@1") + attn + reading.activation("mlp_out@2"),
        reading.activation("resid_post@2"),
    )


def test_gemma3_multimodal_checkpoint_reads_its_language_model(miniature_dir, tmp_path):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, SiglipVisionConfig

    vocab = len(AutoTokenizer.from_pretrained(miniature_dir))
    vision = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
    )
    config = Gemma3Config(
        text_config=_text_config(vocab).to_dict(),
        vision_config=vision.to_dict(),
        mm_tokens_per_image=4,
        image_token_index=vocab - 1,
    )
    torch.manual_seed(2)
    model = Gemma3ForConditionalGeneration(config).eval()
    model.save_pretrained(tmp_path)
    _copy_tokenizer(miniature_dir, tmp_path)
    reader = Reader.from_pretrained(tmp_path, ["resid_post@1"], dtype="float32")
    assert reader.info.model_type == "gemma3"
    assert reader.info.d_model == 64
    enc = reader.encoder.encode(PROMPT, RESPONSE)
    with torch.no_grad():
        hidden = model.model.language_model(
            torch.tensor([enc.input_ids]), output_hidden_states=True
        ).hidden_states
    torch.testing.assert_close(
        reader.read(PROMPT, RESPONSE).activation("resid_post@1"), hidden[2][0, enc.response_start :]
    )


def test_gemma3_padded_batch_equals_single_reads(gemma3_text):
    """Right padding with no attention mask: causal attention keeps real tokens off the pads,
    also across Gemma 3's sliding window (8 tokens here)."""
    folder, _ = gemma3_text
    reader = Reader.from_pretrained(folder, ["resid_post@3"], dtype="float32")
    exchanges = [(PROMPT * 3, RESPONSE), ("Q?", "Yes."), (PROMPT, RESPONSE * 2)]
    batched = reader.read_batch(exchanges, batch_size=3)
    for (prompt, response), got in zip(exchanges, batched, strict=True):
        single = reader.read(prompt, response)
        torch.testing.assert_close(
            got.activation("resid_post@3"), single.activation("resid_post@3")
        )


def test_gemma3_lookback_switches_to_eager_and_matches_its_weights(gemma3_text):
    """A Gemma 3 checkpoint loads on sdpa; lookback switches it to the eager weights path."""
    from transformers import Gemma3ForCausalLM

    folder, _ = gemma3_text
    reader = Reader.from_pretrained(folder, ["resid_post@2"], dtype="float32", lookback=True)
    assert reader.info.lookback
    eager = Gemma3ForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    prompt = PROMPT * 2  # longer than the sliding window of 8: both attention kinds
    enc = reader.encoder.encode(prompt, RESPONSE)
    with torch.no_grad():
        attentions = eager(torch.tensor([enc.input_ids]), output_attentions=True).attentions
    start = enc.response_start
    got = reader.read(prompt, RESPONSE).lookback_ratios()
    for layer in range(3):
        weights = attentions[layer][0]  # (heads, seq, seq)
        for i, pos in enumerate(range(start, len(enc.input_ids))):
            ctx = weights[:, pos, 1:start].mean(dim=-1)
            new = weights[:, pos, start : pos + 1].mean(dim=-1)
            torch.testing.assert_close(got[i, layer], ctx / (ctx + new), atol=1e-5, rtol=1e-4)
