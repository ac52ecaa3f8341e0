"""Bad input to the trainer: typed errors that name the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from training_builders import planted_activations, small_config

from scope_guard.errors import ConfigError, InputError
from scope_guard.reader import Reader
from scope_guard.sae.training import (
    ReaderActivations,
    TensorActivations,
    TextCorpus,
    Trainer,
    TrainingConfig,
    train_sae,
)


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader.miniature(["resid_post@2"])


@pytest.mark.parametrize("texts", [[], ["", "   \n\t "]])
def test_empty_corpus(reader: Reader, tmp_path: Path, texts: list[str]) -> None:
    corpus = TextCorpus.from_texts(texts)
    with pytest.raises(InputError, match="no text"):
        ReaderActivations(reader, "resid_post@2", corpus)
    with pytest.raises(InputError, match="no text"):
        train_sae(reader, "resid_post@2", corpus, small_config(width=64), tmp_path / "out")


def test_corpus_without_tokens(reader: Reader) -> None:
    # "<bos>" inside text is text, but a tokenizer-invisible corpus must not loop for ever.
    class Silent:
        bos_token_id = 2
        pad_token_id = 0

        def __call__(self, *_args: object, **_kwargs: object) -> dict[str, list[int]]:
            return {"input_ids": []}

    source = ReaderActivations(reader, "resid_post@2", TextCorpus.from_texts(["x"]))
    source.reader = type("R", (), {"tokenizer": Silent()})()
    with pytest.raises(InputError, match="no tokens"):
        source.read_chunk()


@pytest.mark.parametrize("site", ["resid_post@3", "resid_post@40", "attn_out@9"])
def test_site_the_reader_lacks(reader: Reader, site: str) -> None:
    corpus = TextCorpus.from_texts(["some text"])
    with pytest.raises(ConfigError, match=f"cannot provide site {site}"):
        ReaderActivations(reader, site, corpus)


def test_malformed_site(reader: Reader) -> None:
    with pytest.raises(ConfigError):
        ReaderActivations(reader, "residual@2", TextCorpus.from_texts(["text"]))


def test_width_below_d_model(reader: Reader, tmp_path: Path) -> None:
    x = planted_activations(n=500).x  # d_model 24
    with pytest.raises(ConfigError, match="below d_model=24"):
        Trainer(small_config(width=16), TensorActivations(x))
    corpus = TextCorpus.from_texts(["one text", "another text"])
    with pytest.raises(ConfigError, match="below d_model=64"):
        train_sae(reader, "resid_post@2", corpus, small_config(width=32), tmp_path / "o")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_activations(bad: float) -> None:
    x = planted_activations(n=3000).x
    x[1234, 5] = bad
    config = small_config(token_budget=6000, buffer_tokens=1024, scale_estimate_tokens=512)
    with pytest.raises(InputError, match="NaN or infinite"):
        Trainer(config, TensorActivations(x, chunk_tokens=500)).run()


@pytest.mark.parametrize("value", [0.0, 3.0])
def test_constant_activations(value: float) -> None:
    # Centred, a repeated row is as empty as zeros: nothing to scale by.
    with pytest.raises(InputError, match="constant"):
        Trainer(small_config(), TensorActivations(torch.full((5000, 24), value))).run()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("width", 0),
        ("width", 2.5),
        ("token_budget", -1),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("bandwidth", -0.1),
        ("l0_coefficient", -1.0),
        ("target_l0", 0.0),
        ("adam_beta2", 1.0),
        ("lr_decay_fraction", 1.5),
        ("buffer_tokens", 100),
        ("seed", True),
        ("time_budget_s", 0),
    ],
)
def test_bad_config_values(field: str, value: object) -> None:
    values: dict[str, object] = {"width": 64, field: value}
    with pytest.raises(ConfigError, match=field):
        TrainingConfig(**values)  # type: ignore[arg-type]


def test_unknown_config_field() -> None:
    with pytest.raises(ConfigError, match="unknown TrainingConfig fields"):
        TrainingConfig.from_dict({"width": 64, "widht": 3})


def test_existing_checkpoint_without_resume(reader: Reader, tmp_path: Path) -> None:
    corpus = TextCorpus.from_texts([f"text number {i} about the river" for i in range(30)])
    config = small_config(
        width=64, token_budget=400, batch_size=32, buffer_tokens=128, scale_estimate_tokens=64
    )
    out = tmp_path / "sae"
    train_sae(reader, "resid_post@2", corpus, config, out, max_steps=2, lm=None)
    with pytest.raises(ConfigError, match="already holds a training checkpoint"):
        train_sae(reader, "resid_post@2", corpus, config, out, lm=None)
    done = train_sae(
        reader, "resid_post@2", corpus, config, out, resume=True, lm=None, explain_tokens=0
    )
    assert done.report is not None
    assert done.report.delta_ce is None
    assert json.loads((out / "manifest.json").read_text())["tokens_trained"] >= 400


def test_corpus_readers_refuse_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such"):
        TextCorpus.from_text_files([tmp_path / "missing.txt"])
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(InputError, match="not UTF-8"):
        TextCorpus.from_text_files([bad])
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text('{"text": "fine"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"x.jsonl:2"):
        TextCorpus.from_jsonl(jsonl)
    jsonl.write_text('{"text": "fine"}\n{not json\n', encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON"):
        TextCorpus.from_jsonl(jsonl)
    with pytest.raises(InputError, match="page_content"):
        TextCorpus.from_documents([object()])
