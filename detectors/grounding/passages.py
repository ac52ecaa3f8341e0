"""Split retrieved contexts into passages with offsets; one passage per field for structured data.

Prose is cut into sentences (long ones into windows of at most ``max_words`` words). A JSON or
Python-literal object at the start of a context (as in RAG over product or business records),
a markdown table, or a block of ``key: value`` lines becomes one passage per field, row or line,
rendered as "key words: value" so the field name is searchable ("RestaurantsGoodForGroups: True"
-> "Restaurants Good For Groups: yes").
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, NamedTuple

from detectors.grounding.claims import split_sentences
from detectors.grounding.lexicon import split_identifier

__all__ = ["Passage", "split_context", "split_contexts"]

# The longest key of a "key: value" line.
_MAX_KEY = 48
_TABLE_SEP = re.compile(r"^\s*+\|?\s*+:?-{2,}")
# Lines with a non-space, each tried from its start only (from every position of a long blank
# line, the search was quadratic).
_TEXT_LINE = re.compile(r"^[^\S\n]*+\S[^\n]*", re.MULTILINE)
# Scanning for a structured key that is not in the text (a list index, an escaped name) costs the
# rest of the text; past this many characters per character of the record (plus a floor), keys
# are no longer looked for and their passages get the whole record's span (best-effort offsets).
_LOCATE_BUDGET, _LOCATE_FLOOR = 32, 1 << 20
_PARAGRAPH = re.compile(r"\S(?:.*\S)?(?:\n(?!\s*\n).*\S)*")


class Passage(NamedTuple):
    """A passage of one context, with its place in that context."""

    text: str
    """Text used for matching (for structured fields: "key words: value")."""
    context_index: int
    """Which context it comes from (index into the contexts given)."""
    start: int
    """Start offset in that context's text (best effort for structured fields)."""
    end: int
    """End offset (exclusive)."""
    field: str | None
    """Dotted field path for structured data (``attributes.WiFi``), else None."""
    value: str | None = None
    """The field's value as rendered ("yes", "no", "none", "11:0-17:0"), else None."""


def _match_bracket(text: str, start: int) -> int:
    """Index after the bracket closing ``text[start]``, or -1 (quote-aware, linear)."""
    depth, quote, escaped = 0, "", False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


def _parse_literal(text: str) -> Any:
    """The JSON or Python literal in ``text``, or None (also when nested too deeply to parse)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None


def _render(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return "none"
    return str(value)


class _Flattener:
    def __init__(self, raw: str, offset: int, context_index: int, max_words: int) -> None:
        self.raw, self.offset, self.ci, self.max_words = raw, offset, context_index, max_words
        self.cursor = 0
        self.out: list[Passage] = []
        self.budget = _LOCATE_BUDGET * len(raw) + _LOCATE_FLOOR

    def locate(self, key: str, value: str) -> tuple[int, int]:
        pos = self.raw.find(key, self.cursor) if key and self.budget > 0 else -1
        if pos < 0:
            self.budget -= len(self.raw) - self.cursor
            return self.offset, self.offset + len(self.raw)
        # Only a value that starts within 64 characters of its key is used: look no further.
        limit = pos + len(key) + 64 + len(value[:32])
        vpos = self.raw.find(value[:32], pos, limit) if value else -1
        end = vpos + len(value) if 0 <= vpos < pos + len(key) + 64 else pos + len(key)
        self.cursor = pos + len(key)
        return self.offset + pos, self.offset + min(end, len(self.raw))

    def walk(self, obj: Any) -> None:
        """Emit a passage per leaf, depth first in document order; iterative, so any depth works."""
        stack: list[tuple[Any, list[str]]] = [(obj, [])]
        while stack:
            node, path = stack.pop()
            if isinstance(node, dict):
                items = [(v, [*path, str(k)]) for k, v in node.items()]
            elif isinstance(node, list | tuple):
                items = [(v, [*path, str(i + 1)]) for i, v in enumerate(node)]
            else:
                self.leaf(node, path)
                continue
            stack.extend(reversed(items))

    def leaf(self, value: Any, path: list[str]) -> None:
        rendered = _render(value)
        key = path[-1] if path else ""
        label = " ".join(split_identifier(p) for p in path if not p.isdigit()) or "value"
        start, end = self.locate(key, str(value))
        field = ".".join(path) or None
        pieces = [rendered]
        if len(rendered.split()) > self.max_words:
            pieces = [rendered[s:e] for s, e in split_sentences(rendered)]
        for piece in pieces:
            self.out.append(Passage(f"{label}: {piece}", self.ci, start, end, field, rendered))


def _prose(text: str, offset: int, ci: int, max_words: int) -> list[Passage]:
    out: list[Passage] = []
    for para in _PARAGRAPH.finditer(text):
        for s, e in split_sentences(text, para.start(), para.end()):
            words = list(re.finditer(r"\S+", text[s:e]))
            for w in range(0, len(words), max_words):
                chunk = words[w : w + max_words]
                cs, ce = s + chunk[0].start(), s + chunk[-1].end()
                out.append(Passage(text[cs:ce], ci, offset + cs, offset + ce, None))
    return out


def _table(lines: list[re.Match[str]], ci: int) -> list[Passage]:
    header = [split_identifier(c.strip()) for c in lines[0].group().strip().strip("|").split("|")]
    out = []
    for row in lines[2:]:
        cells = [c.strip() for c in row.group().strip().strip("|").split("|")]
        text = "; ".join(f"{h}: {c}" for h, c in zip(header, cells, strict=False) if c)
        out.append(Passage(text, ci, row.start(), row.end(), None))
    return out


class _KeyValue(NamedTuple):
    key: str
    value: str
    start: int
    end: int


def _key_value(text: str, start: int, end: int) -> _KeyValue | None:
    """The line ``text[start:end]`` as "key: value", or None.

    The key (1-48 characters, no "|") runs to the first colon, spaces and tabs around it aside; the
    value is the rest of the line after that colon, from its first non-space. A digit right before
    and after the colon is a clock time, not a key ("The meeting starts at 10:30" has no key "The
    meeting starts at 10"). A linear scan: the equivalent regex backtracked over the line's spaces
    (cubic time on a long line of spaces).
    """
    colon = text.find(":", start, end)
    if colon <= start:
        return None
    head = text[start:colon]
    if "|" in head or "\n" in head:
        return None
    key = head.strip(" \t") or head[-1]  # all blank: the one-character key the pattern gave
    if len(key) > _MAX_KEY:
        return None
    if text[colon - 1].isdecimal() and colon + 1 < end and text[colon + 1].isdecimal():
        return None
    value = text[colon + 1 : end].lstrip(" \t")
    if not value or value[0].isspace() or "\n" in value:
        return None
    return _KeyValue(key, value, start, end)


def _records(text: str, kv: list[_KeyValue], ci: int, max_words: int) -> list[Passage]:
    """One passage per ``key: value`` line; the text between such lines (a note after a record,
    an e-mail's body after its headers) becomes prose passages in place."""
    out: list[Passage] = []
    cursor = 0
    for m in kv:
        out.extend(_prose(text[cursor : m.start], cursor, ci, max_words))
        key, value = m.key.strip(), m.value.strip()
        out.append(Passage(f"{split_identifier(key)}: {value}", ci, m.start, m.end, key, value))
        cursor = m.end
    out.extend(_prose(text[cursor:], cursor, ci, max_words))
    return out


def split_context(text: str, context_index: int = 0, *, max_words: int = 60) -> list[Passage]:
    """Split one context into passages.

    Args:
        text: The context's text.
        context_index: Index recorded in each passage.
        max_words: Longest prose passage, in words.

    Returns:
        Passages in order of appearance.
    """
    stripped = text.lstrip()
    lead = len(text) - len(stripped)
    if stripped[:1] in ("{", "["):
        close = _match_bracket(text, lead)
        obj = _parse_literal(text[lead:close]) if close > 0 else None
        if isinstance(obj, dict | list) and obj:
            flat = _Flattener(text[lead:close], lead, context_index, max_words)
            flat.walk(obj)
            return flat.out + _prose(text[close:], close, context_index, max_words)
    lines = list(_TEXT_LINE.finditer(text))
    is_table = len(lines) >= 3 and all(ln.group().strip().startswith("|") for ln in lines[:3])
    if is_table and _TABLE_SEP.match(lines[1].group()):
        return _table([ln for ln in lines if ln.group().strip().startswith("|")], context_index)
    kv = [m for m in (_key_value(text, ln.start(), ln.end()) for ln in lines) if m]
    if len(lines) >= 3 and len(kv) >= 0.6 * len(lines):
        return _records(text, kv, context_index, max_words)
    return _prose(text, 0, context_index, max_words)


def split_contexts(contexts: list[str], *, max_words: int = 60) -> list[Passage]:
    """Split every context into passages (see :func:`split_context`), concatenated in order."""
    out: list[Passage] = []
    for i, text in enumerate(contexts):
        out.extend(split_context(text, i, max_words=max_words))
    return out
