"""Validate and normalise the detector's inputs: types, size limits, lone surrogates."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from detectors.grounding.lexicon import sanitize
from scope_guard.errors import InputError

__all__ = ["normalize_contexts", "normalize_text"]


def normalize_text(value: Any, what: str, max_chars: int) -> str:
    """Return ``value`` as a UTF-8-safe string of the same length.

    Args:
        value: A str (None counts as empty); bytes are decoded as UTF-8 with replacement.
        what: Name for error messages ("response", "question").
        max_chars: Longest accepted length.

    Returns:
        The text, lone surrogates replaced by U+FFFD (offsets unchanged).

    Raises:
        InputError: Not a string, or longer than ``max_chars``.
    """
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", errors="replace")
    if not isinstance(value, str):
        msg = f"{what} must be a str, got {type(value).__name__}"
        raise InputError(msg)
    if len(value) > max_chars:
        msg = f"{what} has {len(value)} characters, more than the limit of {max_chars}"
        raise InputError(msg)
    return sanitize(value)


def _context_text(item: Any, i: int) -> str:
    if isinstance(item, str | bytes | bytearray):
        return normalize_text(item, f"contexts[{i}]", 1 << 62)
    content = getattr(item, "page_content", None)
    if isinstance(content, str):
        return sanitize(content)
    if isinstance(item, dict | list | tuple):
        try:
            return sanitize(json.dumps(item, ensure_ascii=False, default=str))
        except (TypeError, ValueError) as err:
            msg = f"contexts[{i}] is a {type(item).__name__} that cannot be rendered as JSON: {err}"
            raise InputError(msg) from err
        except RecursionError as err:
            msg = (
                f"contexts[{i}] is a {type(item).__name__} nested too deeply to render as JSON "
                f"(Python's recursion limit is {sys.getrecursionlimit()}); flatten the record"
            )
            raise InputError(msg) from err
    msg = (
        f"contexts[{i}] must be a str, a LangChain Document, or a dict/list record; "
        f"got {type(item).__name__}"
    )
    raise InputError(msg)


def normalize_contexts(contexts: Any, max_chars: int) -> list[str]:
    """Turn the contexts argument into a list of strings.

    Args:
        contexts: A sequence of str / LangChain ``Document`` / dict or list records, a single
            str (one context), or None (no contexts). Whitespace-only contexts are dropped.
        max_chars: Longest accepted total length.

    Returns:
        Context texts, in order.

    Raises:
        InputError: A wrong type, a dict/list record nested too deeply for ``json.dumps`` (about
            as deep as the recursion limit), or more characters than ``max_chars`` in total.
    """
    if contexts is None:
        return []
    if isinstance(contexts, str | bytes | bytearray | dict) or hasattr(contexts, "page_content"):
        contexts = [contexts]
    if not isinstance(contexts, Sequence):
        try:
            contexts = list(contexts)
        except TypeError as err:
            msg = f"contexts must be a sequence of documents, got {type(contexts).__name__}"
            raise InputError(msg) from err
    texts = [_context_text(item, i) for i, item in enumerate(contexts)]
    total = sum(len(t) for t in texts)
    if total > max_chars:
        msg = f"contexts have {total} characters in total, more than the limit of {max_chars}"
        raise InputError(msg)
    return [t for t in texts if t.strip()]
