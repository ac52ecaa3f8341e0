"""Lookback ratios against attention weights of an independent full forward pass, by hand."""

from __future__ import annotations

import pytest
import torch
from transformers import Gemma2ForCausalLM

from scope_guard.errors import ConfigError
from scope_guard.reader import Reader

PROMPT = "Context: The Eiffel Tower in Paris was completed in 1889. Question: when was it built?"
RESPONSE = "It was completed in 1889, according to the passage, café 日本."


@pytest.fixture(scope="module")
def full_model(miniature_dir):
    return Gemma2ForCausalLM.from_pretrained(miniature_dir, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def reader(miniature_dir):
    return Reader.from_pretrained(miniature_dir, ["resid_post@3"], dtype="float32", lookback=True)


def _by_hand(attentions, start, n_layers):
    """Loops over the definition: per layer, head and response position."""
    seq = attentions[0].shape[-1]
    out = torch.zeros(seq - start, n_layers, attentions[0].shape[1])
    for layer in range(n_layers):
        weights = attentions[layer][0]
        for head in range(weights.shape[0]):
            for i, pos in enumerate(range(start, seq)):
                row = weights[head, pos]
                ctx = sum(row[j].item() for j in range(1, start)) / max(start - 1, 1)
                new = sum(row[j].item() for j in range(start, pos + 1)) / (pos - start + 1)
                out[i, layer, head] = ctx / (ctx + new) if start > 1 else 0.0
    return out


def test_lookback_equals_the_definition_on_a_full_pass(reader, full_model):
    enc = reader.encoder.encode(PROMPT, RESPONSE)
    with torch.no_grad():
        out = full_model(torch.tensor([enc.input_ids]), output_attentions=True)
    expected = _by_hand(out.attentions, enc.response_start, n_layers=4)
    got = reader.read(PROMPT, RESPONSE).lookback_ratios()
    assert got.shape == (enc.n_response_tokens, 4, 4)
    assert reader.lookback_shape == (4, 4)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert (got >= 0).all()
    assert (got <= 1).all()


def test_batched_and_padded_equals_one_at_a_time(reader):
    pairs = [(PROMPT, RESPONSE), ("Short context.", "A much longer answer than the context " * 3)]
    batched = reader.read_batch(pairs, batch_size=2)
    for pair, reading in zip(pairs, batched, strict=True):
        alone = reader.read(*pair)
        torch.testing.assert_close(reading.lookback_ratios(), alone.lookback_ratios())


def test_no_context_and_empty_response(reader):
    empty = reader.read(PROMPT, "")
    assert empty.lookback_ratios().shape == (0, 4, 4)
    no_prompt = reader.read("", "An answer with no context at all.")
    assert no_prompt.n_tokens > 0
    assert torch.isfinite(no_prompt.lookback_ratios()).all()


def test_reading_without_lookback_says_how(miniature_dir):
    plain = Reader.from_pretrained(miniature_dir, ["resid_post@1"], dtype="float32")
    reading = plain.read(PROMPT, RESPONSE)
    assert reading.lookback is None
    with pytest.raises(ConfigError, match="lookback=True"):
        reading.lookback_ratios()


def test_sites_unchanged_by_lookback(reader, miniature_dir):
    plain = Reader.from_pretrained(miniature_dir, ["resid_post@3"], dtype="float32")
    torch.testing.assert_close(
        reader.read(PROMPT, RESPONSE).activation("resid_post@3"),
        plain.read(PROMPT, RESPONSE).activation("resid_post@3"),
    )
