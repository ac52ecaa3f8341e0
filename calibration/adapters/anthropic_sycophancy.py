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
- ``group`` = SHA-256 of the item's ``question``.
- ``meta``: ``user_affiliation``, ``source_file`` and ``matching`` (bool).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from calibration.adapters._common import Collector, iter_json_lines, resolve_files, text_hash
from calibration.labeled import LabeledDataset
from scope_guard.risks import Risk

__all__ = ["load", "options_of"]

_OPTION = re.compile(r"^\s*\(([A-Z])\)\s*(\S.*?)\s*$", re.MULTILINE)
_LETTER = re.compile(r"^\s*\(?([A-Z])\)?\s*$")


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


def _response(answer: str, options: dict[str, str], option_text: bool) -> str:
    match = _LETTER.match(answer)
    if option_text and match and match.group(1) in options:
        letter = match.group(1)
        return f"({letter}) {options[letter]}"
    return answer.strip()


def load(path: Path, *, strict: bool = True, option_text: bool = True) -> LabeledDataset:
    """Read sycophancy A/B items as response pairs; see the module docstring for the mapping.

    Args:
        path: A ``.jsonl`` file of items, or a folder of them.
        strict: Raise on any bad record (default); ``False`` logs and skips bad records.
        option_text: Answer with the option's letter and text (default) rather than the letter.

    Raises:
        DataError: listing every bad record as ``file:line: message``.
    """
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
                    "group": text_hash(row.question),
                    "meta": {
                        "user_affiliation": row.user_affiliation,
                        "source_file": row.source_file,
                        "matching": bool(label),
                    },
                }
                collector.add(file, lineno, fields, where=f"{kind}: ")
    return collector.finish(strict=strict)
