"""The reader's surprisal and entropy against an independent full causal-LM forward pass."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from scope_guard.errors import ConfigError
from scope_guard.reader import Reader
from scope_guard.reader.loading import quiet_transformers
from scope_guard.reader.surprisal import LOGIT_ROWS, LMHead, token_surprisal

PROMPT = "Context: The Eiffel Tower in Paris was completed in 1889. Question: when was it built?"
RESPONSE = "It was completed in 1889, according to the passage, café 日本 😀."


def _full_model(folder):
    with quiet_transformers():
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def _reference(model, input_ids, start):
    """Surprisal and entropy of the response tokens from the model's own logits."""
    with torch.no_grad():
        logits = model(torch.tensor([input_ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    targets = torch.tensor(input_ids[start:])
    surprisal = -logp[start - 1 : -1].gather(1, targets[:, None])[:, 0]
    entropy = -(logp.exp() * logp).sum(dim=-1)[start - 1 : -1]
    return surprisal, entropy


@pytest.fixture(scope="module")
def reader(miniature_dir):
    return Reader.from_pretrained(miniature_dir, ["resid_post@2"], dtype="float32", surprisal=True)


def test_miniature_equals_a_full_forward_pass(reader, miniature_dir):
    model = _full_model(miniature_dir)
    assert model.config.final_logit_softcapping == 30.0  # Gemma 2: the soft-cap is exercised
    enc = reader.encoder.encode(PROMPT, RESPONSE)
    surprisal, entropy = _reference(model, enc.input_ids, enc.response_start)
    got = reader.read(PROMPT, RESPONSE).token_surprisal()
    assert got.surprisal.shape == (enc.n_response_tokens,)
    torch.testing.assert_close(got.surprisal, surprisal, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.entropy, entropy, atol=1e-5, rtol=1e-5)
    assert (got.entropy > 0).all()
    assert (got.entropy <= torch.log(torch.tensor(float(model.config.vocab_size))) + 1e-4).all()


def _gemma3_folder(folder, miniature_dir, softcap):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = AutoTokenizer.from_pretrained(miniature_dir)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"] * 2,
        final_logit_softcapping=softcap,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    torch.manual_seed(3)
    with quiet_transformers():
        Gemma3ForCausalLM(config).eval().save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("softcap", [None, 5.0])
def test_gemma3_equals_a_full_forward_pass(softcap, miniature_dir, tmp_path):
    folder = _gemma3_folder(tmp_path, miniature_dir, softcap)
    gemma3 = Reader.from_pretrained(folder, ["resid_post@1"], dtype="float32", surprisal=True)
    assert gemma3.lm_head is not None
    assert gemma3.lm_head.softcap == softcap
    model = _full_model(folder)
    long_prompt = PROMPT * 3  # past the sliding window of 8: both attention kinds matter
    enc = gemma3.encoder.encode(long_prompt, RESPONSE)
    surprisal, entropy = _reference(model, enc.input_ids, enc.response_start)
    got = gemma3.read(long_prompt, RESPONSE).token_surprisal()
    torch.testing.assert_close(got.surprisal, surprisal, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.entropy, entropy, atol=1e-5, rtol=1e-5)


def test_logits_only_at_response_positions(reader, monkeypatch):
    seen: list[int] = []
    original = LMHead.logits

    def spy(self, hidden):
        seen.append(hidden.shape[0])
        return original(self, hidden)

    monkeypatch.setattr(LMHead, "logits", spy)
    pairs = [(PROMPT * 4, RESPONSE), ("Short.", "word " * 150)]
    encoded = [reader.encoder.encode(*p) for p in pairs]
    reader.read_batch(pairs, batch_size=2)
    assert sum(seen) == sum(e.n_response_tokens for e in encoded)
    assert max(seen) <= LOGIT_ROWS
    assert len(seen) > 1  # the 150-word response needed more than one chunk


def test_chunked_logits_equal_one_chunk():
    g = torch.Generator().manual_seed(0)
    head = LMHead(torch.randn(50, 8, generator=g), softcap=None)
    hidden = torch.randn(11, 8, generator=g)
    targets = torch.randint(0, 50, (11,), generator=g)
    whole = token_surprisal(hidden, targets, head, rows=64)
    chunked = token_surprisal(hidden, targets, head, rows=3)
    torch.testing.assert_close(chunked.surprisal, whole.surprisal)
    torch.testing.assert_close(chunked.entropy, whole.entropy)
    empty = token_surprisal(hidden[:0], targets[:0], head)
    assert empty.surprisal.shape == (0,)
    assert empty.entropy.shape == (0,)


def test_a_near_certain_token_has_zero_surprisal_and_entropy():
    weight = torch.zeros(4, 2)
    weight[1, 0] = 1000.0  # token 1 takes all the probability for hidden (1, 0)
    out = token_surprisal(torch.tensor([[1.0, 0.0]]), torch.tensor([1]), LMHead(weight, None))
    assert out.surprisal.item() == pytest.approx(0.0, abs=1e-6)
    assert out.entropy.item() == pytest.approx(0.0, abs=1e-6)  # p log p of underflowed p is 0
    uniform = token_surprisal(torch.zeros(1, 2), torch.tensor([3]), LMHead(weight, None))
    assert uniform.surprisal.item() == pytest.approx(torch.log(torch.tensor(4.0)).item())
    assert uniform.entropy.item() == pytest.approx(torch.log(torch.tensor(4.0)).item())


def test_batched_and_padded_equals_one_at_a_time(reader):
    pairs = [(PROMPT, RESPONSE), ("Short context.", "A much longer answer than the context " * 3)]
    for pair, reading in zip(pairs, reader.read_batch(pairs, batch_size=2), strict=True):
        alone = reader.read(*pair).token_surprisal()
        torch.testing.assert_close(reading.token_surprisal().surprisal, alone.surprisal)
        torch.testing.assert_close(reading.token_surprisal().entropy, alone.entropy)


def test_sites_and_lookback_unchanged_by_surprisal(miniature_dir):
    both = Reader.from_pretrained(
        miniature_dir, ["resid_post@2"], dtype="float32", lookback=True, surprisal=True
    )
    plain = Reader.from_pretrained(miniature_dir, ["resid_post@2"], dtype="float32", lookback=True)
    assert len(plain.layers) == 3
    assert len(both.layers) == 6
    a, b = both.read(PROMPT, RESPONSE), plain.read(PROMPT, RESPONSE)
    # Bit for bit: a surprisal reader's site and lookback caches are a plain reader's.
    assert torch.equal(a.activation("resid_post@2"), b.activation("resid_post@2"))
    assert torch.equal(a.lookback_ratios(), b.lookback_ratios())
    assert b.surprisal is None
    assert a.surprisal is not None
    assert both.info.surprisal
    assert not plain.info.surprisal


def test_empty_response_and_no_context(reader):
    empty = reader.read(PROMPT, "").token_surprisal()
    assert empty.surprisal.shape == (0,)
    assert empty.entropy.shape == (0,)
    alone = reader.read("", "An answer with no context at all.").token_surprisal()
    assert torch.isfinite(alone.surprisal).all()
    assert torch.isfinite(alone.entropy).all()


def test_reading_without_surprisal_says_how(miniature_dir):
    plain = Reader.from_pretrained(miniature_dir, ["resid_post@1"], dtype="float32")
    with pytest.raises(ConfigError, match="surprisal=True"):
        plain.read(PROMPT, RESPONSE).token_surprisal()
    with pytest.raises(ConfigError, match="surprisal=True"):
        _ = plain.surprisal_fingerprint


def test_a_decoder_without_its_head_or_layers_is_refused(miniature_dir):
    model = _full_model(miniature_dir)
    tokenizer = AutoTokenizer.from_pretrained(miniature_dir)
    with pytest.raises(ConfigError, match="LM head"):
        Reader(model.model, tokenizer, ["resid_post@1"], surprisal=True)
    with pytest.raises(ConfigError, match="every layer"):
        Reader(model, tokenizer, ["resid_post@1"], n_layers=8, surprisal=True)
    direct = Reader(model, tokenizer, ["resid_post@1"], surprisal=True)
    enc = direct.encoder.encode(PROMPT, RESPONSE)
    surprisal, _ = _reference(model, enc.input_ids, enc.response_start)
    torch.testing.assert_close(direct.read(PROMPT, RESPONSE).token_surprisal().surprisal, surprisal)


def test_fingerprint_covers_every_layer_the_norm_and_the_head(miniature_dir):
    def make(**kwargs):
        return Reader.from_pretrained(miniature_dir, ["resid_post@1"], dtype="float32", **kwargs)

    plain, first = make(), make(surprisal=True)
    assert first.fingerprint == first.surprisal_fingerprint != plain.fingerprint
    assert first.fingerprint_upto(1) == plain.fingerprint_upto(1)
    assert make(surprisal=True).fingerprint == first.fingerprint  # a reload is the same reader

    changed = {}
    for what in ("layer", "norm", "softcap"):
        other = make(surprisal=True)
        with torch.no_grad():
            if what == "layer":  # past the deepest site: the plain fingerprint does not see it
                other.layers[5].mlp.down_proj.weight.mul_(1.01)
            elif what == "norm":
                other.decoder.norm.weight.add_(0.01)
        if what == "softcap":
            assert other.lm_head is not None
            other.lm_head = LMHead(other.lm_head.weight, softcap=20.0)
        assert other.fingerprint_upto(1) == plain.fingerprint_upto(1)
        changed[what] = other.surprisal_fingerprint
    assert len({first.surprisal_fingerprint, *changed.values()}) == 4


def test_a_response_that_starts_the_sequence_is_refused(reader):
    """Position p - 1 predicts p: a first token without a BOS before it has no surprisal (it
    used to read the row's last padded position)."""
    import dataclasses

    from scope_guard.errors import InputError

    enc = reader.encoder.encode(PROMPT, RESPONSE)
    bare = dataclasses.replace(enc, input_ids=enc.input_ids[enc.response_start :], response_start=0)
    with pytest.raises(InputError, match="a token before the response"):
        reader._forward([bare, enc])
