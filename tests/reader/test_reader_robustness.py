"""The reader under bad checkpoints, bad settings, odd inputs and concurrent use."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
import torch
from transformers import AutoTokenizer, Gemma2ForCausalLM

from scope_guard.errors import ArtifactError, ConfigError, InputError
from scope_guard.reader import Reader
from scope_guard.reader.loading import parse_device, parse_dtype

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def reader(miniature_dir):
    return Reader.from_pretrained(miniature_dir, ["resid_post@2"], dtype="float32")


def _copy(miniature_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(miniature_dir, folder)
    return folder


def test_folder_without_tokenizer_is_refused(miniature_dir, tmp_path):
    """transformers 5 would build an empty 5-token tokenizer and read every word as <unk>."""
    folder = _copy(miniature_dir, tmp_path)
    for path in folder.iterdir():
        if path.name.startswith(("tokenizer", "special_tokens")) or path.suffix == ".jinja":
            path.unlink()
    with pytest.raises(ArtifactError, match=r"has no tokenizer \(tokenizer\.json or"):
        Reader.from_pretrained(folder, ["resid_post@1"], dtype="float32")


def test_tokenizer_of_another_model_is_refused(miniature_dir, tmp_path):
    folder = _copy(miniature_dir, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 4 * config["vocab_size"]  # the 1,024-token tokenizer is too small
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="1024 tokens, but the model's embedding has 4096"):
        Reader.from_pretrained(folder, ["resid_post@1"], dtype="float32")


@pytest.mark.parametrize("keep", [1000, -64])
def test_corrupt_weights_file_is_an_artifact_error(miniature_dir, tmp_path, keep):
    """A torn download: safetensors' own error derives from Exception only."""
    folder = _copy(miniature_dir, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:keep])
    with pytest.raises(ArtifactError, match="cannot load the model weights"):
        Reader.from_pretrained(folder, ["resid_post@1"], dtype="float32")


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_batch_size_must_be_a_positive_integer(reader, size):
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1"):
        reader.read_batch([("q", "an answer")], batch_size=size)
    with pytest.raises(ConfigError, match="batch_size"):
        Reader(reader.decoder, reader.tokenizer, ["resid_post@1"], batch_size=size)


def test_any_iterable_of_exchanges_is_read(reader):
    pairs = [("q", "an answer"), ("another question", "a longer answer here")]
    expected = reader.read_batch(pairs)
    got = reader.read_batch(pair for pair in pairs)
    assert [r.token_ids for r in got] == [r.token_ids for r in expected]
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a.activation("resid_post@2"), b.activation("resid_post@2"))
    with pytest.raises(InputError, match=r"iterable of \(prompt, response\) pairs, got int"):
        reader.read_batch(3)  # type: ignore[arg-type]


def test_devices_are_checked_up_front(miniature_dir):
    with pytest.raises(ConfigError, match="unknown device 'bogus'"):
        parse_device("bogus")
    with pytest.raises(ConfigError, match="unknown device"):
        Reader.from_pretrained(miniature_dir, ["resid_post@1"], device="bogus")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no CUDA GPU"):
            Reader.from_pretrained(miniature_dir, ["resid_post@1"], device="cuda")
    assert parse_device("cpu") == CPU


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.float8_e4m3fn])
def test_non_float_dtypes_are_refused_at_parse_time(dtype):
    with pytest.raises(ConfigError, match="cannot run in"):
        parse_dtype(dtype, CPU)
    assert parse_dtype(torch.bfloat16, CPU) is torch.bfloat16


def test_two_readers_over_one_model_in_two_threads(miniature_dir):
    """Hooks go on the shared model, so the readers must take one lock, not one each."""
    model = Gemma2ForCausalLM.from_pretrained(miniature_dir, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(miniature_dir)
    shallow = Reader(model, tokenizer, ["resid_post@1"])
    deep = Reader(model.model, tokenizer, ["resid_post@4"])  # the decoder itself: same lock
    jobs = [
        (shallow, ("short prompt", "short answer here."), "resid_post@1"),
        (
            deep,
            ("a longer prompt about the bridge " * 3, "and a longer answer " * 3),
            "resid_post@4",
        ),
    ]
    expected = [r.read(*exchange).activation(site) for r, exchange, site in jobs]
    failures: list[str] = []
    start = threading.Barrier(len(jobs))

    def work(r: Reader, exchange: tuple[str, str], site: str, ref: torch.Tensor) -> None:
        start.wait()
        for _ in range(40):
            try:
                got = r.read(*exchange).activation(site)
            except Exception as exc:  # collected: an exception in a thread would be lost
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            if got.shape != ref.shape or not torch.allclose(got, ref, atol=1e-5):
                failures.append(f"wrong activations at {site}")

    threads = [
        threading.Thread(target=work, args=(*job, ref))
        for job, ref in zip(jobs, expected, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
