"""Turning a (prompt, response) exchange into token ids with an exact response span.

The chat template is rendered once with sentinel strings in place of the prompt and the response,
which splits it into fixed pieces (``head``, ``middle``) around the two texts. Each piece and each
text is tokenized on its own, so:

- the response's token span and character offsets are exact by construction, whatever the
  template does to whitespace (Gemma's trims message content) and however the tokenizer would
  have merged across a boundary;
- the response is tokenized the way the model generated it: as a continuation that starts right
  after the ``<start_of_turn>model\\n`` prefix;
- special-token strings inside user text (a literal ``"<bos>"``) stay text.

Text after the response (``<end_of_turn>``) is never read: attention is causal, so it cannot change
the response tokens' activations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from scope_guard.errors import ConfigError, InputError
from scope_guard.reader.template_render import render_chat_template

__all__ = ["PLAIN_RENDERING", "EncodedExchange", "ExchangeEncoder", "replace_surrogates"]

_PROMPT_SENTINEL = "\u27e6scope-guard-prompt\u27e7"
_RESPONSE_SENTINEL = "\u27e6scope-guard-response\u27e7"
# Without a chat template (pretrained checkpoints such as gemma-3-270m): BOS, the prompt, a blank
# line, the response. The blank line is left out when there is no prompt, so a plain text read
# as a response (SAE training, perplexity) is read exactly as written.
PLAIN_SEPARATOR = "\n\n"
PLAIN_RENDERING = "plain-v1: <bos>{prompt}\\n\\n{response} (no separator without a prompt)"


_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_surrogates(text: str) -> str:
    """``text`` with every lone surrogate code point replaced by U+FFFD (same length)."""
    return _SURROGATE.sub("\ufffd", text)


@dataclass(frozen=True)
class EncodedExchange:
    """One exchange as token ids, ready for the reader.

    Attributes:
        input_ids: Every token id the model reads, BOS first where the tokenizer uses one.
        response_start: Index in ``input_ids`` of the first response token; the response tokens
            are ``input_ids[response_start:]``.
        response_offsets: ``(start, end)`` character offsets into the response text, one per
            response token. Byte-fallback pieces of one character share that character's span.
        prompt_truncated: The prompt was cut (from its start) to fit ``max_tokens``.
        response_truncated: The response alone did not fit and was cut (keeping its start).
        n_prompt_tokens_dropped: How many prompt tokens the cut removed.
    """

    input_ids: tuple[int, ...]
    response_start: int
    response_offsets: tuple[tuple[int, int], ...]
    prompt_truncated: bool = False
    response_truncated: bool = False
    n_prompt_tokens_dropped: int = 0

    @property
    def n_response_tokens(self) -> int:
        return len(self.input_ids) - self.response_start


class ExchangeEncoder:
    """Encodes exchanges for one tokenizer, with the template split computed once.

    Args:
        tokenizer: A Hugging Face fast tokenizer (character offsets are required).
        max_tokens: The most tokens one exchange may occupy; longer ones are truncated.
        use_chat_template: Render through the tokenizer's chat template when it has one
            (``None``: whenever it has one). Without a template the rendering is
            :data:`PLAIN_RENDERING`: BOS, the prompt, a blank line, the response.
    """

    def __init__(self, tokenizer: Any, max_tokens: int, *, use_chat_template: bool | None = None):
        self.tokenizer = tokenizer
        self.max_tokens = int(max_tokens)
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if use_chat_template and not has_template:
            msg = "use_chat_template=True but the tokenizer has no chat template"
            raise ConfigError(msg)
        self.uses_chat_template = has_template if use_chat_template is None else use_chat_template
        head, middle = self._template_pieces() if self.uses_chat_template else ("", PLAIN_SEPARATOR)
        self.rendering: str = (
            str(tokenizer.chat_template) if self.uses_chat_template else PLAIN_RENDERING
        )
        """What identifies how exchanges are rendered: the chat template, or the plain form."""
        self.head_ids = self._tokenize_fixed(head)
        bos = tokenizer.bos_token_id
        if bos is not None and self._adds_bos() and (not self.head_ids or self.head_ids[0] != bos):
            self.head_ids = [bos, *self.head_ids]
        self.middle_ids = self._tokenize_fixed(middle)
        overhead = len(self.head_ids) + len(self.middle_ids)
        if self.max_tokens < overhead + 1:
            msg = (
                f"max_tokens={max_tokens} leaves no room for the response: the chat template alone "
                f"takes {overhead} tokens"
            )
            raise ConfigError(msg)
        self.special_ids = frozenset(
            i for i in (tokenizer.bos_token_id, tokenizer.pad_token_id) if i is not None
        )

    def _adds_bos(self) -> bool:
        """Whether the tokenizer puts BOS first by default (Gemma's do)."""
        ids = self.tokenizer("a", add_special_tokens=True)["input_ids"]
        return bool(ids) and ids[0] == self.tokenizer.bos_token_id

    def _template_pieces(self) -> tuple[str, str]:
        messages = [
            {"role": "user", "content": _PROMPT_SENTINEL},
            {"role": "assistant", "content": _RESPONSE_SENTINEL},
        ]
        template = self.tokenizer.get_chat_template()
        rendered = render_chat_template(
            template, messages, getattr(self.tokenizer, "special_tokens_map", {}) or {}
        )
        if rendered.count(_PROMPT_SENTINEL) != 1 or rendered.count(_RESPONSE_SENTINEL) != 1:
            msg = "the chat template does not place the user and assistant text exactly once"
            raise ConfigError(msg)
        head, rest = rendered.split(_PROMPT_SENTINEL)
        middle, _tail = rest.split(_RESPONSE_SENTINEL)
        if _RESPONSE_SENTINEL in head:
            msg = "the chat template puts the assistant turn before the user turn"
            raise ConfigError(msg)
        return head, middle

    def _tokenize_fixed(self, text: str) -> list[int]:
        """Tokenize template text: its special-token strings are meant as special tokens."""
        if not text:
            return []
        return list(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def _tokenize_user_text(self, text: str, *, offsets: bool) -> Any:
        """Tokenize user text: special-token strings inside it stay plain text."""
        return self.tokenizer(
            text,
            add_special_tokens=False,
            split_special_tokens=True,
            return_offsets_mapping=offsets,
            verbose=False,  # no "longer than model_max_length" warning: encode() truncates
        )

    def encode(self, prompt: str, response: str) -> EncodedExchange:
        """Encode one exchange, truncating to ``max_tokens``.

        When prompt and response together are too long, the prompt is cut from its start (its end,
        nearest the response, is kept) and the response kept whole; a response too long on its own
        is cut, keeping its start, and the prompt dropped.

        Raises:
            InputError: if ``prompt`` or ``response`` is not a string.
        """
        for name, value in (("prompt", prompt), ("response", response)):
            if not isinstance(value, str):
                msg = f"{name} must be a str, got {type(value).__name__}"
                raise InputError(msg)
        # A lone surrogate (text a generator can emit, e.g. a split emoji) cannot be encoded
        # and makes the tokenizer raise; U+FFFD stands in for it, one code point for one, so
        # offsets into the response stay valid.
        prompt, response = replace_surrogates(prompt), replace_surrogates(response)
        prompt_ids = list(self._tokenize_user_text(prompt, offsets=False)["input_ids"])
        encoded = self._tokenize_user_text(response, offsets=True)
        response_ids = list(encoded["input_ids"])
        response_offsets = [tuple(o) for o in encoded["offset_mapping"]]
        # Defence in depth: a BOS or pad id inside the response must never reach an SAE.
        keep = [i for i, tok in enumerate(response_ids) if tok not in self.special_ids]
        if len(keep) != len(response_ids):
            response_ids = [response_ids[i] for i in keep]
            response_offsets = [response_offsets[i] for i in keep]

        # The plain rendering separates a prompt from the response; with no prompt (none given,
        # or none left after the cut) there is nothing to separate, and the separator's tokens
        # go to the response. A chat template's model-turn prefix always stays.
        bare = len(self.head_ids) + len(response_ids)
        no_room = bare + len(self.middle_ids) >= self.max_tokens  # not one prompt token fits
        plain_alone = not self.uses_chat_template and (not prompt_ids or no_room)
        overhead = len(self.head_ids) + (0 if plain_alone else len(self.middle_ids))
        room_for_prompt = self.max_tokens - overhead - len(response_ids)
        response_truncated = room_for_prompt < 0
        if response_truncated:
            cut = self.max_tokens - overhead
            response_ids, response_offsets = response_ids[:cut], response_offsets[:cut]
            room_for_prompt = 0
        dropped = max(0, len(prompt_ids) - room_for_prompt)
        kept_prompt = prompt_ids[dropped:]
        middle = self.middle_ids if self.uses_chat_template or kept_prompt else []
        input_ids = (*self.head_ids, *kept_prompt, *middle, *response_ids)
        return EncodedExchange(
            input_ids=input_ids,
            response_start=len(input_ids) - len(response_ids),
            response_offsets=tuple((int(a), int(b)) for a, b in response_offsets),
            prompt_truncated=dropped > 0,
            response_truncated=response_truncated,
            n_prompt_tokens_dropped=dropped,
        )
