"""Making any value storable in every sink: escape what UTF-8 and JSON cannot hold.

A record must never be lost because one of its values cannot be written: a lone surrogate
(from ``surrogateescape`` decoding, or a generator that emits half of a pair) cannot be encoded
as UTF-8, and an arbitrary object, a non-finite float or a huge integer is not JSON. Rather
than drop the record, such values are stored *escaped*: a surrogate becomes the six characters
``\\udXXX``, an object its ``repr``, ``nan`` the string ``"nan"``. Escaping is one-way (an
original text that already contained a backslash sequence reads back the same), which is the
price of never losing the record.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_STORED_DEPTH", "escape_strings", "escape_text", "storable"]

_SURROGATES = re.compile("[\ud800-\udfff]")
#: Containers nested deeper than this are stored as a note (a cycle also ends here).
MAX_STORED_DEPTH = 32
_MAX_REPR = 2_000
_INT_BOUND = 1 << 64


def escape_text(text: str) -> str:
    """``text`` with every lone surrogate written as its ``\\udXXX`` escape (else unchanged)."""
    if not _SURROGATES.search(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not cost the record
        return f"<unrepresentable {type(value).__name__}>"
    if len(text) > _MAX_REPR:
        text = f"{text[:_MAX_REPR]}... ({len(text)} characters)"
    return escape_text(text)


def storable(value: Any, depth: int = 0) -> Any:
    """``value`` as plain JSON data that encodes to UTF-8, losing as little as possible.

    str -> surrogates escaped; bool, None, 64-bit ints and finite floats unchanged; larger ints
    -> their hex string; non-finite floats -> ``"nan"``, ``"inf"``, ``"-inf"``; mappings ->
    dicts with str keys; lists, tuples and sets -> lists; anything else -> its ``repr``.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return escape_text(value)
    if isinstance(value, int):
        return int(value) if -_INT_BOUND < value < _INT_BOUND else hex(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, Mapping | list | tuple | set | frozenset) and depth >= MAX_STORED_DEPTH:
        return f"<{type(value).__name__} nested deeper than {MAX_STORED_DEPTH} levels>"
    if isinstance(value, Mapping):
        return {
            (escape_text(k) if isinstance(k, str) else _repr(k)): storable(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [storable(v, depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        return [storable(v, depth + 1) for v in sorted(value, key=repr)]
    return _repr(value)


def escape_strings(value: Any, depth: int = 0) -> Any:
    """Like :func:`storable` for typed fields: escape the strings, leave every other value as is
    (so that pydantic still validates numbers as numbers)."""
    if isinstance(value, str):
        return escape_text(value)
    if depth >= MAX_STORED_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            (escape_text(k) if isinstance(k, str) else k): escape_strings(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [escape_strings(v, depth + 1) for v in value]
    return value
