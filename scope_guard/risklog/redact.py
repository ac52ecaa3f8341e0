"""Keeping the request's text out of stored error messages.

An exception raised inside the guard may quote its input (a tokenizer's ``repr`` of a bad
string, a ``KeyError`` on a word). Without ``log_text=True`` a record must not carry the text,
so the message of a guard failure is stored with the parts that may come from the input
replaced by ``<redacted>``: every quoted literal whose content occurs in one of the request's
texts (however short: ``'HIV'``), and every run of at least :data:`MIN_SHARED_CHARS`
characters, starting at a word, that occurs in one of them (an unquoted or escaped excerpt).
Over-redaction (a phrase of the message that happens to occur in a long context) costs a
little diagnosis; the traceback stays in the application's own logging when it runs at DEBUG.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MAX_ERROR_CHARS", "MIN_SHARED_CHARS", "REDACTED", "redact_message"]

REDACTED = "<redacted>"
#: A shared run this long (from a word start) counts as quoted input.
MIN_SHARED_CHARS = 6
#: Error messages are cut to this many characters before redaction (and storage).
MAX_ERROR_CHARS = 500
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|«[^»]*»|“[^”]*”")
_WORD_START = re.compile(r"(?<!\w)\w")


def _shared_end(message: str, start: int, texts: list[str]) -> int:
    """The end of the longest run ``message[start:end]`` found in a text (``start`` if none)."""
    best = start
    for text in texts:
        if message[start : start + MIN_SHARED_CHARS] not in text:
            continue
        lo, hi = start + MIN_SHARED_CHARS, len(message)  # lo is known to be found
        while lo < hi:  # longest prefix found in this text: binary search on its end
            mid = (lo + hi + 1) // 2
            if message[start:mid] in text:
                lo = mid
            else:
                hi = mid - 1
        best = max(best, lo)
    return best


def redact_message(message: str, texts: Iterable[str]) -> str:
    """``message`` (cut to :data:`MAX_ERROR_CHARS`) with input-derived parts redacted.

    Args:
        message: An exception message.
        texts: The request's texts (question, prompt, response, contexts).
    """
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS] + "..."
    texts = [t for t in texts if t]

    def quoted(match: re.Match[str]) -> str:
        inner = match.group()[1:-1]
        return REDACTED if inner and any(inner in t for t in texts) else match.group()

    message = _QUOTED.sub(quoted, message)
    pool = [t for t in texts if len(t) >= MIN_SHARED_CHARS]
    if not pool:
        return message
    out: list[str] = []
    pos = 0
    for match in _WORD_START.finditer(message):
        start = match.start()
        if start < pos:
            continue
        end = _shared_end(message, start, pool)
        if end - start >= MIN_SHARED_CHARS:
            out.append(message[pos:start] + REDACTED)
            pos = end
    out.append(message[pos:])
    return "".join(out)
