"""Anthropic sycophancy evals (anthropics/evals): A/B questions put by users who state a view.

Input: JSON lines (a file, or a folder of ``*.jsonl``) with ``question`` (a user biography that
states a view, then an A/B question ending in ``Answer:``), ``answer_matching_behavior`` (the
option that agrees with the user's stated view, e.g. ``" (A)"``), ``answer_not_matching_behavior``
(a string or a list of them) and, in the political typology set, ``user_affiliation``.

The items are prompts, not responses, so each item becomes a pair (more for a list of
non-matching answers), sharing one group:

- ``<file stem>:<line>:matching``: ``response`` = the matching answer, ``sycophancy`` = 1 (it
  bends to the user's stated view);
- ``<file stem>:<line>:not_matching``: the other answer, ``sycophancy`` = 0.
- Response text: with ``option_text=True`` (default) the option's letter and its text as the
  question lists it (``"(A) A smaller government providing fewer services"``), so the reader sees
  what was chosen; when the option cannot be found, or with ``option_text=False``, the answer as
  given, stripped (``"(A)"``).
- ``question`` = ``prompt`` = the item's ``question`` (the exact text the generator answers);
  ``contexts`` = [].
- ``group`` (``group_by="biography"``, default) = SHA-256 of the item's *biography*: the text
  before its options, without its last sentence (the question stem); see :func:`biography_of`.
  In the political typology set 600 biographies are each put all 17 questions (10,200 items,
  every biography exactly 17 times), so a group per item would put one user's biography on both
  sides of a split, and a probe could recognise the user instead of judging the answer.
  ``group_by="question"`` keeps a group per item (SHA-256 of the whole ``question``).
- ``meta``: ``user_affiliation``, ``source_file`` and ``matching`` (bool).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from calibration.adapters._common import Collector, iter_json_lines, resolve_files, text_hash
from calibration.labeled import LabeledDataset
from scope_guard.errors import ConfigError
from scope_guard.risks import Risk

__all__ = ["biography_of", "load", "options_of"]

GroupBy = Literal["biography", "question"]

_OPTION = re.compile(r"^\s*\(([A-Z])\)\s*(\S.*?)\s*$", re.MULTILINE)
_LETTER = re.compile(r"^\s*\(?([A-Z])\)?\s*$")
_FIRST_OPTION = re.compile(r"^\s*\([A-Z]\)", re.MULTILINE)
# A sentence ends at . ! or ? before a space and a capital (or an opening quote / bracket):
# "the U.S. has..." is one sentence, so a stem with an abbreviation in it stays whole.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(\[])")


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore")

    question: str
    answer_matching_behavior: str
    answer_not_matching_behavior: str | list[str]
    user_affiliation: str | None = None
    source_file: str | None = None


def options_of(question: str) -> dict[str, str]:
    """The A/B/... options a question lists on lines like ``" (A) Some text"``: letter -> text."""
    return {m.group(1): m.group(2) for m in _OPTION.finditer(question)}


def biography_of(question: str) -> str:
    """The user's biography in an item: the text before its options, less its last sentence.

    The last sentence is the question stem (``"How do you feel toward Democrats?"``). A text with
    a single sentence is its own biography, so that items without one never share a group.
    """
    first = _FIRST_OPTION.search(question)
    head = (question[: first.start()] if first else question).strip()
    ends = [m.start() for m in _SENTENCE_END.finditer(head)]
    return head[: ends[-1]].strip() if ends else head


def _response(answer: str, options: dict[str, str], option_text: bool) -> str:
    match = _LETTER.match(answer)
    if option_text and match and match.group(1) in options:
        letter = match.group(1)
        return f"({letter}) {options[letter]}"
    return answer.strip()


def load(
    path: Path, *, strict: bool = True, option_text: bool = True, group_by: GroupBy = "biography"
) -> LabeledDataset:
    """Read sycophancy A/B items as response pairs; see the module docstring for the mapping.

    Args:
        path: A ``.jsonl`` file of items, or a folder of them.
        strict: Raise on any bad record (default); ``False`` logs and skips bad records.
        option_text: Answer with the option's letter and text (default) rather than the letter.
        group_by: ``"biography"`` (default): one group per user biography; ``"question"``: one
            group per item.

    Raises:
        ConfigError: for an unknown ``group_by``.
        DataError: listing every bad record as ``file:line: message``.
    """
    if group_by not in ("biography", "question"):
        msg = f"group_by must be 'biography' or 'question', got {group_by!r}"
        raise ConfigError(msg)
    collector = Collector("anthropic-sycophancy", path)
    for file in resolve_files(path, "*.jsonl"):
        for lineno, raw in iter_json_lines(file, collector):
            row = collector.parse(_Row, raw, file, lineno)
            if row is None:
                continue
            options = options_of(row.question)
            others = row.answer_not_matching_behavior
            others = [others] if isinstance(others, str) else others
            if row.answer_matching_behavior.strip() in {o.strip() for o in others}:
                collector.problem(file, lineno, "the matching answer is also a non-matching one")
                continue
            group = text_hash(
                biography_of(row.question) if group_by == "biography" else row.question
            )
            answers = [("matching", row.answer_matching_behavior, 1)]
            answers += [
                (f"not_matching{'' if len(others) == 1 else f'-{i}'}", answer, 0)
                for i, answer in enumerate(others)
            ]
            for kind, answer, label in answers:
                fields = {
                    "id": f"{file.stem}:{lineno}:{kind}",
                    "question": row.question,
                    "prompt": row.question,
                    "response": _response(answer, options, option_text),
                    "labels": {Risk.SYCOPHANCY: label},
                    "group": group,
                    "meta": {
                        "user_affiliation": row.user_affiliation,
                        "source_file": row.source_file,
                        "matching": bool(label),
                    },
                }
                collector.add(file, lineno, fields, where=f"{kind}: ")
    return collector.finish(strict=strict)
