"""What the guard accepts at its boundary, and how it makes any generated text scoreable.

Any text a generator can produce must be scored, not refused: refusing would let the answer
pass unscored under ``failure_mode="open"``. So over-long texts are cut to bounded lengths
(kept: the start of the response and of the question, the first contexts in retrieval order,
the end of the prompt, which is what the reader keeps too) and the cut is reported in
``RiskReport.truncated``; lone surrogates, which no tokenizer encodes, are replaced by U+FFFD
(one for one, so claim offsets still index the caller's text).

``meta`` is different: it is the caller's own metadata, stored with every record, so it must be
JSON (str, finite float, 64-bit int, bool, None, lists, dicts with str keys) of bounded depth
and size; anything else is a clear :class:`~scope_guard.errors.InputError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from scope_guard.errors import ConfigError, InputError
from scope_guard.types import Exchange

__all__ = ["InputLimits", "PreparedExchange", "check_meta", "prepare_exchange"]

_INT_BOUND = 1 << 64


@dataclass(frozen=True)
class InputLimits:
    """The most the guard reads of one exchange; longer inputs are cut and flagged."""

    response_chars: int = 200_000
    """The response's first this-many characters are scored."""
    question_chars: int = 20_000
    """The question's first this-many characters are scored."""
    prompt_chars: int = 400_000
    """The prompt's last this-many characters are read (the reader cuts prompts from the start)."""
    context_chars: int = 2_000_000
    """All contexts together; contexts past this budget are cut, later ones dropped."""
    contexts: int = 1_000
    """The first this-many contexts are used."""
    meta_depth: int = 8
    """Deepest nesting of lists/dicts in ``meta``."""
    meta_items: int = 1_000
    """Most values in ``meta``, counting every nested one."""
    meta_chars: int = 65_536
    """Most characters of all strings (keys included) in ``meta``."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                msg = f"InputLimits.{name} must be an int >= 1, got {value!r}"
                raise ConfigError(msg)

    def within(self, grounding: Any) -> InputLimits:
        """These limits, lowered to what ``grounding`` (a GroundingDetector) accepts."""
        config = getattr(grounding, "config", None)
        response = getattr(config, "max_response_chars", None)
        contexts = getattr(config, "max_context_chars", None)
        changes: dict[str, int] = {}
        if isinstance(response, int) and response >= 1:
            # the grounding check applies its response limit to the question as well
            changes["response_chars"] = min(self.response_chars, response)
            changes["question_chars"] = min(self.question_chars, response)
        if isinstance(contexts, int) and contexts >= 1:
            changes["context_chars"] = min(self.context_chars, contexts)
        if not changes:
            return self
        return InputLimits(**{**vars(self), **changes})


class PreparedExchange(NamedTuple):
    """An exchange ready for the detectors.

    Attributes:
        exchange: Cleaned and bounded: what the grounding check and the reader read.
        truncated: Field -> original length in characters, for each field that was cut.
    """

    exchange: Exchange
    truncated: dict[str, int]


def _clean(text: str) -> str:
    # The grounding check's own cleaning, applied once here so the reader sees the same text.
    from detectors.grounding.lexicon import sanitize

    return sanitize(text)


def _bounded_contexts(contexts: list[str], limits: InputLimits) -> tuple[list[str], bool]:
    kept: list[str] = []
    budget = limits.context_chars
    for text in contexts[: limits.contexts]:
        if budget <= 0:
            break
        kept.append(text[:budget])
        budget -= len(kept[-1])
    cut = len(kept) < len(contexts) or any(
        len(a) != len(b) for a, b in zip(kept, contexts, strict=False)
    )
    return [_clean(t) for t in kept], cut


def prepare_exchange(exchange: Exchange, limits: InputLimits) -> PreparedExchange:
    """Cut ``exchange`` to ``limits`` and clean its code points (see the module docstring)."""
    truncated: dict[str, int] = {}
    if len(exchange.response) > limits.response_chars:
        truncated["response"] = len(exchange.response)
    if len(exchange.question) > limits.question_chars:
        truncated["question"] = len(exchange.question)
    prompt = exchange.prompt
    if prompt is not None and len(prompt) > limits.prompt_chars:
        truncated["prompt"] = len(prompt)
        prompt = prompt[-limits.prompt_chars :]
    contexts, cut = _bounded_contexts(exchange.contexts, limits)
    if cut:
        truncated["contexts"] = sum(len(c) for c in exchange.contexts)
    prepared = exchange.model_copy(
        update={
            "response": _clean(exchange.response[: limits.response_chars]),
            "question": _clean(exchange.question[: limits.question_chars]),
            "prompt": _clean(prompt) if prompt is not None else None,
            "contexts": contexts,
        }
    )
    return PreparedExchange(prepared, truncated)


class _MetaBudget:
    def __init__(self, limits: InputLimits) -> None:
        self.limits = limits
        self.items = 0
        self.chars = 0

    def fail(self, path: str, why: str) -> None:
        msg = (
            f"meta{path} {why}; meta must be JSON: str, finite float, 64-bit int, bool, None, "
            f"lists and dicts with str keys, at most {self.limits.meta_depth} levels deep, "
            f"{self.limits.meta_items} values and {self.limits.meta_chars} characters"
        )
        raise InputError(msg)

    def count(self, path: str, chars: int = 0) -> None:
        self.items += 1
        self.chars += chars
        if self.items > self.limits.meta_items:
            self.fail(path, f"makes meta hold more than {self.limits.meta_items} values")
        if self.chars > self.limits.meta_chars:
            self.fail(path, f"makes meta longer than {self.limits.meta_chars} characters")

    def check(self, value: Any, path: str, depth: int) -> None:
        if value is None or isinstance(value, bool):
            self.count(path)
        elif isinstance(value, str):
            self.count(path, len(value))
        elif isinstance(value, int):
            if not -_INT_BOUND < value < _INT_BOUND:
                self.fail(path, "is an integer beyond 64 bits")
            self.count(path)
        elif isinstance(value, float):
            if not math.isfinite(value):
                self.fail(path, f"is {value!r}, not a finite number")
            self.count(path)
        elif isinstance(value, Mapping | list | tuple):
            if depth >= self.limits.meta_depth:
                self.fail(path, f"is nested deeper than {self.limits.meta_depth} levels")
            self.count(path)
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if not isinstance(key, str):
                        self.fail(path, f"has a key of type {type(key).__name__}, not str")
                    self.count(path, len(key))
                    self.check(item, f"{path}[{key[:40]!r}]", depth + 1)
            else:
                for i, item in enumerate(value):
                    self.check(item, f"{path}[{i}]", depth + 1)
        else:
            self.fail(path, f"is of type {type(value).__name__}")


def check_meta(meta: Any, limits: InputLimits) -> None:
    """Refuse ``meta`` that is not bounded JSON.

    Raises:
        InputError: Names the first bad value's path and what is accepted.
    """
    if not isinstance(meta, Mapping):
        msg = f"meta must be a dict, got {type(meta).__name__}"
        raise InputError(msg)
    _MetaBudget(limits).check(meta, "", 0)
