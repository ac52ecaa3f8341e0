"""The reader's identity: weight fingerprints over every element, and the tokenizer digest."""

from __future__ import annotations

import pytest
import torch
from tokenizers import normalizers
from transformers import AutoTokenizer, Gemma2ForCausalLM

from scope_guard.errors import ConfigError
from scope_guard.reader import Reader
from scope_guard.reader.identity import tokenizer_digest

SITE = "resid_post@3"


@pytest.fixture(scope="module")
def reader(miniature_dir):
    return Reader.from_pretrained(miniature_dir, [SITE], dtype="float32")


def _refingerprinted(reader: Reader) -> Reader:
    reader.__dict__.pop("_digests", None)  # the digests are cached: forget them
    return reader


def test_float32_and_bfloat16_loads_agree_float16_does_not(reader, miniature_dir):
    """A bf16 load is the bf16 rounding the digest hashes; fp16 rounds to other numbers."""
    bf16 = Reader.from_pretrained(miniature_dir, [SITE], dtype="bfloat16")
    fp16 = Reader.from_pretrained(miniature_dir, [SITE], dtype="float16")
    assert bf16.dtype == torch.bfloat16
    assert bf16.fingerprint == reader.fingerprint
    assert fp16.fingerprint != reader.fingerprint


def test_a_change_late_in_a_tensor_changes_the_fingerprint(miniature_dir):
    """Every element counts, not a leading slice (the down projection has 16,384 elements)."""
    reader = Reader.from_pretrained(miniature_dir, [SITE], dtype="float32")
    before = [reader.fingerprint_upto(layer) for layer in range(4)]
    weight = reader.layers[3].mlp.down_proj.weight
    assert weight.numel() > 1024
    with torch.no_grad():
        weight.view(-1)[-1] *= -3.0
    after = [_refingerprinted(reader).fingerprint_upto(layer) for layer in range(4)]
    assert after[:3] == before[:3]  # layers before the change keep their fingerprint
    assert after[3] != before[3]
    with torch.no_grad():
        reader.decoder.get_input_embeddings().weight[-1, -1] += 1.0  # the last token's row
    assert _refingerprinted(reader).fingerprint_upto(0) != after[0]


def test_full_model_and_truncated_load_agree(reader, miniature_dir):
    """Layers beyond the one fingerprinted do not count, loaded or not."""
    full = Gemma2ForCausalLM.from_pretrained(miniature_dir, attn_implementation="eager").eval()
    whole = Reader(full, AutoTokenizer.from_pretrained(miniature_dir), ["resid_post@5"])
    assert len(whole.layers) == 6
    assert whole.fingerprint_upto(3) == reader.fingerprint
    with pytest.raises(ConfigError, match="4 layers are loaded"):
        reader.fingerprint_upto(4)


def test_tokenizer_digest_sees_more_than_the_vocabulary_size(miniature_dir):
    tokenizer = AutoTokenizer.from_pretrained(miniature_dir)
    digest = tokenizer_digest(tokenizer)
    assert tokenizer_digest(AutoTokenizer.from_pretrained(miniature_dir)) == digest
    # Truncation and padding are per-call settings transformers writes into the backend.
    tokenizer("Paris " * 20, truncation=True, max_length=5, padding="max_length")
    assert tokenizer_digest(tokenizer) == digest
    lower = AutoTokenizer.from_pretrained(miniature_dir)
    lower.backend_tokenizer.normalizer = normalizers.Lowercase()
    assert len(lower) == len(tokenizer)
    assert lower("Paris")["input_ids"] != tokenizer("Paris")["input_ids"]
    assert tokenizer_digest(lower) != digest


def test_reader_exposes_the_tokenizer_fingerprint(reader, miniature_dir):
    assert reader.tokenizer_fingerprint == tokenizer_digest(reader.tokenizer)
    again = Reader.from_pretrained(miniature_dir, ["resid_post@1"], dtype="bfloat16")
    assert again.tokenizer_fingerprint == reader.tokenizer_fingerprint
