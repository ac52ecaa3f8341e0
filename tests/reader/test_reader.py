"""The reader's activations against an independent full forward pass."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, Gemma2ForCausalLM

from scope_guard.errors import ArtifactError, ConfigError, InputError
from scope_guard.reader import Reader
from scope_guard.sites import Site

PROMPT = "Context: The Eiffel Tower in Paris was completed in 1889. Question: when was it built?"
RESPONSE = "It was completed in 1889, café 日本 😀, according to the passage."
N_LAYERS = 6  # the miniature model


@pytest.fixture(scope="module")
def full_model(miniature_dir):
    return Gemma2ForCausalLM.from_pretrained(miniature_dir, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def reader(miniature_dir):
    sites = [f"{kind}@{layer}" for layer in range(N_LAYERS) for kind in ("resid_post", "mlp_out")]
    sites += ["attn_out@2", "attn_out@5"]
    return Reader.from_pretrained(miniature_dir, sites, dtype="float32")


def _reference(full_model, reader, prompt, response):
    """Hidden states of a full forward pass (all layers, LM head) over the same ids."""
    enc = reader.encoder.encode(prompt, response)
    with torch.no_grad():
        out = full_model(torch.tensor([enc.input_ids]), output_hidden_states=True)
    return enc, out.hidden_states


def test_loads_only_needed_layers(miniature_dir):
    r = Reader.from_pretrained(miniature_dir, ["resid_post@2"], dtype="float32")
    assert len(r.layers) == 3
    assert r.n_layers == N_LAYERS
    assert not hasattr(r.decoder, "lm_head")
    assert r.is_stand_in
    assert "stand-in" in r.name


@pytest.mark.parametrize("layer", range(N_LAYERS - 1))
def test_resid_post_equals_hidden_states_next(full_model, reader, layer):
    enc, hidden = _reference(full_model, reader, PROMPT, RESPONSE)
    reading = reader.read(PROMPT, RESPONSE)
    expected = hidden[layer + 1][0, enc.response_start :]
    torch.testing.assert_close(reading.activation(f"resid_post@{layer}"), expected)


def test_last_layer_resid_post_is_pre_norm(full_model, reader):
    enc, hidden = _reference(full_model, reader, PROMPT, RESPONSE)
    last = reader.read(PROMPT, RESPONSE).activation(f"resid_post@{N_LAYERS - 1}")
    final_norm = full_model.model.norm
    # hidden_states[-1] is after the final norm; ours is the residual before it.
    assert not torch.allclose(last, hidden[-1][0, enc.response_start :], atol=1e-3)
    torch.testing.assert_close(final_norm(last), hidden[-1][0, enc.response_start :])


@pytest.mark.parametrize("layer", [2, 5])
def test_sites_add_up_to_the_residual_stream(full_model, reader, layer):
    """resid_post[L] = resid_post[L-1] + post_attn_norm(o_proj(attn_out[L])) + mlp_out[L]."""
    reading = reader.read(PROMPT, RESPONSE)
    block = full_model.model.layers[layer]
    z = reading.activation(f"attn_out@{layer}")
    assert z.shape[1] == 4 * 16  # n_heads * head_dim, before the output projection
    with torch.no_grad():
        attn_contribution = block.post_attention_layernorm(block.self_attn.o_proj(z))
    rebuilt = (
        reading.activation(f"resid_post@{layer - 1}")
        + attn_contribution
        + reading.activation(f"mlp_out@{layer}")
    )
    torch.testing.assert_close(rebuilt, reading.activation(f"resid_post@{layer}"))


def test_early_stop_on_a_full_model(full_model, miniature_dir):
    """Given the whole model, the pass still stops after the deepest site: no later layer, no
    final norm, no LM head runs, and the activations equal the full forward pass."""
    tokenizer = AutoTokenizer.from_pretrained(miniature_dir)
    reader = Reader(full_model, tokenizer, ["resid_post@1"])
    ran = []
    handles = [
        m.register_forward_hook(lambda *_a, name=name: ran.append(name))
        for name, m in [
            ("layer2", full_model.model.layers[2]),
            ("norm", full_model.model.norm),
            ("lm_head", full_model.lm_head),
        ]
    ]
    watched = [full_model.model.layers[1], full_model.model.layers[1].self_attn.o_proj]
    hooks_before = [(set(m._forward_hooks), set(m._forward_pre_hooks)) for m in watched]
    try:
        reading = reader.read(PROMPT, RESPONSE)
    finally:
        for h in handles:
            h.remove()
    assert ran == []
    # The reader's hooks are removed after the pass.
    assert [(set(m._forward_hooks), set(m._forward_pre_hooks)) for m in watched] == hooks_before
    enc, hidden = _reference(full_model, reader, PROMPT, RESPONSE)
    torch.testing.assert_close(
        reading.activation("resid_post@1"), hidden[2][0, enc.response_start :]
    )


def test_reading_tokens_match_response(reader):
    reading = reader.read(PROMPT, RESPONSE)
    assert reading.n_tokens == len(reading.offsets) == len(reading.tokens)
    assert reader.tokenizer.decode(list(reading.token_ids)) == RESPONSE
    assert reader.tokenizer.bos_token_id not in reading.token_ids
    for token, (start, end) in zip(reading.tokens, reading.offsets, strict=True):
        assert token == RESPONSE[start:end]
    assert all(a.shape[0] == reading.n_tokens for a in reading.activations.values())


def test_batch_equals_single_reads(reader):
    exchanges = [
        (PROMPT, RESPONSE),
        ("Short?", "Yes."),
        ("A much longer prompt " * 6, "and a longer answer with several words " * 3),
        ("Empty answer", ""),
    ]
    batched = reader.read_batch(exchanges, batch_size=3)
    for (prompt, response), got in zip(exchanges, batched, strict=True):
        single = reader.read(prompt, response)
        assert got.token_ids == single.token_ids
        for site in reader.sites:
            torch.testing.assert_close(
                got.activation(site), single.activation(site), atol=1e-5, rtol=1e-4
            )


def test_empty_response_reads_nothing(reader):
    reading = reader.read(PROMPT, "")
    assert reading.n_tokens == 0
    assert reading.activation("resid_post@3").shape == (0, 64)


def test_long_input_is_truncated_not_crashed(miniature_dir):
    reader = Reader.from_pretrained(miniature_dir, ["resid_post@3"], dtype="float32", max_tokens=48)
    reading = reader.read("background " * 200, "The answer.")
    assert reading.prompt_truncated
    assert not reading.response_truncated
    assert reading.n_tokens_read == 48
    reading = reader.read("q", "long answer " * 100)
    assert reading.response_truncated
    assert reading.n_tokens_read == 48


def test_sliding_window_matches_full_forward(full_model, reader):
    """Longer than the miniature's 32-token sliding window: local and global layers differ."""
    prompt = "The river runs north of the city and the bridge was built in 1901. " * 4
    enc, hidden = _reference(full_model, reader, prompt, RESPONSE)
    assert len(enc.input_ids) > 2 * 32
    reading = reader.read(prompt, RESPONSE)
    torch.testing.assert_close(
        reading.activation("resid_post@4"), hidden[5][0, enc.response_start :]
    )


def test_bad_inputs(reader):
    with pytest.raises(InputError):
        reader.read(PROMPT, None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="pair"):
        reader.read_batch(["just a string"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="was not read"):
        reader.read(PROMPT, RESPONSE).activation("resid_post@99")


def test_site_beyond_model(miniature_dir):
    with pytest.raises(ConfigError, match="has 6 layers"):
        Reader.from_pretrained(miniature_dir, ["resid_post@6"])


def test_bad_dtype(miniature_dir):
    with pytest.raises(ConfigError, match="unknown dtype"):
        Reader.from_pretrained(miniature_dir, ["resid_post@1"], dtype="float8")


def test_missing_hub_model_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ArtifactError) as info:
        Reader.from_pretrained("google/gemma-2-2b", ["resid_post@20"], cache_dir=tmp_path)
    text = str(info.value)
    assert "google/gemma-2-2b" in text
    assert str(tmp_path) in text
    assert "hf download google/gemma-2-2b" in text


def test_hub_id_resolves_through_cache(miniature_dir, tmp_path, monkeypatch):
    """A hub id already in the HF cache loads offline, from the cache's snapshot layout."""
    import shutil

    repo = tmp_path / "models--google--gemma-2-2b"
    snapshot = repo / "snapshots" / ("a" * 40)
    shutil.copytree(miniature_dir, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reader = Reader.from_pretrained("google/gemma-2-2b", ["resid_post@1"], cache_dir=tmp_path)
    assert reader.name == reader.info.name
    assert reader.read("q", "an answer").n_tokens > 0


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ArtifactError, match=r"no config\.json"):
        Reader.from_pretrained(tmp_path, ["resid_post@1"])
    with pytest.raises(ArtifactError, match=r"neither a model folder, a \.gguf file"):
        Reader.from_pretrained(tmp_path / "nope" / "deeper" / "x", ["resid_post@1"])


def test_unsupported_architecture(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="supported: gemma2, gemma3_text, gemma3"):
        Reader.from_pretrained(tmp_path, ["resid_post@1"])


def test_checkpoint_missing_weights(miniature_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(miniature_dir, tmp_path / "m")
    weights = load_file(tmp_path / "m" / "model.safetensors")
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, tmp_path / "m" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ArtifactError, match=r"layers.1.mlp.up_proj"):
        Reader.from_pretrained(tmp_path / "m", ["resid_post@2"])


def test_sites_are_parsed_and_sorted(reader):
    assert Site(2, "attn_out") in reader.sites
    assert list(reader.sites) == sorted(reader.sites)
