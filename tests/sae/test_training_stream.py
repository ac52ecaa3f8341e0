"""The activation stream: BOS and padding masked, rows equal the model's hidden states,
the shuffling buffer mixes, the corpus splits by document."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM

from scope_guard.reader import Reader
from scope_guard.reader.miniature import miniature_model_path
from scope_guard.sae.training import ReaderActivations, TextCorpus
from scope_guard.sae.training.buffer import ShufflingBuffer
from scope_guard.sae.training.stream import read_windows, text_windows
from scope_guard.sites import Site


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader.miniature(["resid_post@2"])


def test_rows_are_hidden_states_of_text_tokens_only(reader: Reader) -> None:
    texts = ["The river tower was built in 1890.", "Alice said <bos> is text here."]
    windows = [w for i, t in enumerate(texts) for w in text_windows(reader.tokenizer, t, i, 64)]
    rows = read_windows(reader, Site.parse("resid_post@2"), windows)
    model = AutoModelForCausalLM.from_pretrained(miniature_model_path()).eval()
    bos = reader.tokenizer.bos_token_id
    for window, got in zip(windows, rows, strict=True):
        assert bos not in window.ids  # "<bos>" written in text is not the BOS token
        ids = torch.tensor([[bos, *window.ids]])
        with torch.no_grad():
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[3]
        assert got.shape[0] == len(window.ids)  # BOS is not among the rows
        torch.testing.assert_close(got, hidden[0, 1:], rtol=1e-4, atol=1e-4)


def test_padding_does_not_change_rows(reader: Reader) -> None:
    site = Site.parse("resid_post@2")
    long, short = (text_windows(reader.tokenizer, t, 0, 64)[0] for t in ("a b c d e f g h", "a b"))
    together = read_windows(reader, site, [long, short])
    alone = read_windows(reader, site, [short])
    torch.testing.assert_close(together[1], alone[0], rtol=1e-5, atol=1e-5)


def test_long_documents_are_cut_into_windows(reader: Reader) -> None:
    text = " ".join(["the river and the tower"] * 40)
    windows = text_windows(reader.tokenizer, text, 0, 16)
    assert all(len(w.ids) <= 15 for w in windows)  # room left for BOS
    joined = [i for w in windows for i in w.ids]
    assert joined == reader.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert [w.start for w in windows] == list(range(0, len(joined), 15))


def test_stream_covers_the_corpus_once_per_pass(reader: Reader) -> None:
    corpus = TextCorpus.from_texts([f"document {i} about the bridge" for i in range(9)])
    source = ReaderActivations(reader, "resid_post@2", corpus, context_size=8, windows_per_read=3)
    total = sum(
        len(reader.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in corpus.texts
    )
    seen = 0
    while source.passes == 1:
        seen += source.read_chunk().shape[0]
    assert seen >= total  # the last chunk may run into the second pass
    assert source.state()["pass"] == 1


def test_buffer_mixes_and_returns_every_row_once() -> None:
    stream = iter(torch.arange(4000, dtype=torch.float32).reshape(-1, 1).split(100))
    buffer = ShufflingBuffer(1000, torch.Generator().manual_seed(0))
    out = torch.cat([buffer.take(100, lambda: next(stream)) for _ in range(30)]).flatten()
    assert len(set(out.tolist())) == 3000  # no row twice
    first = out[:100]
    assert float(first.max() - first.min()) > 500  # a batch spans far-apart stream positions


def test_heldout_split_is_by_document_and_order_free() -> None:
    texts = [f"doc {i}" for i in range(200)]
    train, held = TextCorpus.from_texts(texts).split_heldout(0.1)
    assert 5 <= len(held) <= 40
    assert not set(train.texts) & set(held.texts)
    _, held_again = TextCorpus.from_texts(list(reversed(texts))).split_heldout(0.1)
    assert set(held_again.texts) == set(held.texts)


def test_exchanges_give_contexts_and_responses_once() -> None:
    rows = [
        SimpleNamespace(question="q", contexts=["shared source"], response="answer one"),
        SimpleNamespace(question="q", contexts=["shared source"], response="answer two"),
    ]
    corpus = TextCorpus.from_exchanges(rows)
    assert corpus.texts == ("shared source", "answer one", "answer two")
    assert TextCorpus.from_exchanges(rows, parts=["response"]).texts == ("answer one", "answer two")
    assert TextCorpus.from_documents([SimpleNamespace(page_content="page")]).texts == ("page",)
