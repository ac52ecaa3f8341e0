"""Exchange encoding: exact response spans, BOS handling, truncation."""

from __future__ import annotations

import copy

import pytest
from transformers import AutoTokenizer

from scope_guard.errors import ConfigError, InputError
from scope_guard.reader import ExchangeEncoder
from scope_guard.reader.exchange import PLAIN_RENDERING

RESPONSES = [
    "The tower was completed in 1889.",
    "  Leading and trailing spaces stay.  ",
    "Multibyte: café, naïve, Zürich, 日本語, emoji 😀🚀 and “quotes”.",
    "Line one.\n\n- item one\n- item two\n",
    "A literal <bos> and <start_of_turn> in text are just text.",
]


@pytest.fixture(scope="module")
def tokenizer(miniature_dir):
    return AutoTokenizer.from_pretrained(miniature_dir)


@pytest.fixture(scope="module")
def plain_tokenizer(tokenizer):
    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    return plain


def _check_span(tok, enc, response):
    ids = list(enc.input_ids[enc.response_start :])
    assert tok.decode(ids) == response
    assert tok.bos_token_id not in ids
    # Offsets are monotone, inside the response, and together cover every character.
    covered = set()
    last_start = 0
    for start, end in enc.response_offsets:
        assert 0 <= start <= end <= len(response)
        assert start >= last_start
        last_start = start
        covered.update(range(start, end))
    assert covered == set(range(len(response)))


@pytest.mark.parametrize("response", RESPONSES)
def test_chat_template_span_is_exact(tokenizer, response):
    enc = ExchangeEncoder(tokenizer, max_tokens=512).encode("What happened? Context: ...", response)
    _check_span(tokenizer, enc, response)
    assert enc.input_ids[0] == tokenizer.bos_token_id
    assert enc.input_ids.count(tokenizer.bos_token_id) == 1
    # The model turn opens right before the response.
    prefix = tokenizer.decode(list(enc.input_ids[: enc.response_start]))
    assert prefix.endswith("<start_of_turn>model\n")
    assert prefix.startswith("<bos><start_of_turn>user\nWhat happened?")


@pytest.mark.parametrize("response", RESPONSES)
def test_plain_rendering_span_is_exact(plain_tokenizer, response):
    encoder = ExchangeEncoder(plain_tokenizer, max_tokens=512)
    assert not encoder.uses_chat_template
    assert encoder.rendering == PLAIN_RENDERING
    enc = encoder.encode("Question: what?", response)
    _check_span(plain_tokenizer, enc, response)
    assert enc.input_ids[0] == plain_tokenizer.bos_token_id  # BOS still leads
    # BOS, the prompt, a blank line, the response.
    prompt_part = plain_tokenizer.decode(list(enc.input_ids[1 : enc.response_start]))
    assert prompt_part == "Question: what?\n\n"


def test_plain_rendering_without_prompt_reads_the_text_alone(plain_tokenizer):
    encoder = ExchangeEncoder(plain_tokenizer, max_tokens=512)
    enc = encoder.encode("", "The tower was completed in 1889.")
    assert enc.response_start == 1  # BOS only: no separator before a text with no prompt
    _check_span(plain_tokenizer, enc, "The tower was completed in 1889.")


def test_chat_template_can_be_turned_off(tokenizer):
    encoder = ExchangeEncoder(tokenizer, max_tokens=64, use_chat_template=False)
    enc = encoder.encode("Q", "A")
    assert "<start_of_turn>" not in tokenizer.decode(list(enc.input_ids))


def test_chat_template_required_but_missing(plain_tokenizer):
    with pytest.raises(ConfigError, match="no chat template"):
        ExchangeEncoder(plain_tokenizer, max_tokens=64, use_chat_template=True)


def test_prompt_is_cut_from_its_start(tokenizer):
    encoder = ExchangeEncoder(tokenizer, max_tokens=40)
    prompt = " ".join(f"word{i}" for i in range(60))
    response = "The answer is short."
    full_prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    enc = encoder.encode(prompt, response)
    assert len(enc.input_ids) == 40
    assert enc.prompt_truncated
    assert not enc.response_truncated
    kept = len(full_prompt_ids) - enc.n_prompt_tokens_dropped
    head = len(encoder.head_ids)
    assert list(enc.input_ids[head : head + kept]) == full_prompt_ids[-kept:]
    _check_span(tokenizer, enc, response)


def test_response_alone_too_long_is_cut_and_flagged(tokenizer):
    encoder = ExchangeEncoder(tokenizer, max_tokens=24)
    response = " ".join(["the river tower"] * 30)
    enc = encoder.encode("prompt text", response)
    assert len(enc.input_ids) == 24
    assert enc.response_truncated
    assert enc.prompt_truncated
    full = tokenizer(response, add_special_tokens=False)["input_ids"]
    n = enc.n_response_tokens
    assert list(enc.input_ids[enc.response_start :]) == full[:n]
    assert n == 24 - len(encoder.head_ids) - len(encoder.middle_ids)


def test_fits_exactly_is_not_truncated(tokenizer):
    encoder = ExchangeEncoder(tokenizer, max_tokens=4096)
    enc = encoder.encode("short prompt", "short answer")
    tight = ExchangeEncoder(tokenizer, max_tokens=len(enc.input_ids)).encode(
        "short prompt", "short answer"
    )
    assert tight.input_ids == enc.input_ids
    assert not tight.prompt_truncated
    assert not tight.response_truncated


def test_max_tokens_too_small(tokenizer):
    with pytest.raises(ConfigError, match="no room for the response"):
        ExchangeEncoder(tokenizer, max_tokens=3)


@pytest.mark.parametrize(("prompt", "response"), [(None, "a"), ("a", 3), ("a", b"bytes")])
def test_non_text_input(tokenizer, prompt, response):
    with pytest.raises(InputError, match="must be a str"):
        ExchangeEncoder(tokenizer, max_tokens=64).encode(prompt, response)


def test_empty_response(tokenizer):
    enc = ExchangeEncoder(tokenizer, max_tokens=64).encode("prompt", "")
    assert enc.n_response_tokens == 0
    assert enc.response_offsets == ()


def test_plain_rendering_gives_the_separators_room_to_the_response(plain_tokenizer):
    """With no prompt, or none left, the blank line is not read, so it reserves no tokens."""
    response = "The tower was completed in 1889."
    n = len(plain_tokenizer(response, add_special_tokens=False)["input_ids"])
    encoder = ExchangeEncoder(plain_tokenizer, max_tokens=n + 1)  # BOS + the whole response
    alone = encoder.encode("", response)
    assert not alone.response_truncated
    assert alone.n_response_tokens == n
    squeezed = encoder.encode("A prompt that cannot fit.", response)
    assert squeezed.prompt_truncated
    assert not squeezed.response_truncated
    assert squeezed.input_ids == alone.input_ids
    assert len(encoder.encode("", response * 3).input_ids) == n + 1
