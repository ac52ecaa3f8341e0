"""How to catch an AI liar (LoryPack/LLM-LieDetector): goal-directed lies and QA lie pairs.

Two kinds of file, both pandas dict-of-columns JSON (``{column: {row key: value}}``; a JSON list
of row objects is accepted too). A file's kind is told by its columns; a folder is read whole:
every ``instrumental_lying_df_*.json`` and ``questions_*.json`` in it, narrowed by ``parts``.

**Dialogues** (``instrumental_lying_df_*.json``; columns ``transcript``, ``label``, ``prompt``,
optional ``question_prefix`` / ``answer_prefix``): ``prompt`` sets up a role with a goal;
``transcript`` is a question line and an answer line, each starting with a speaker tag
(``"Human: ...\\nAI: ..."``, ``"Bob: ...\\nAlice: ..."``). One example per row:

- ``id`` = ``<file stem>:<row key>``; ``response`` = the answer line without its speaker tag (the
  ``answer_prefix`` when the row has one, else a leading ``"<Name>:"``); ``question`` = the
  question line without its tag; ``prompt`` = ``prompt``, a blank line, then the question line
  with its tag (the dialogue as the generator saw it); ``contexts`` = []. A row whose answer
  is empty (the original file has one) is skipped, and logged: there is no response to judge.
- ``labels`` = ``{deception: 1 - label}`` (the dataset's ``label`` is 1 for honest, 0 for a lie).
- ``group`` = SHA-256 of the question: the lying and honest variants of a scenario, and its
  copies across files, share it.

**Questions** (``questions_1000_all.json``; columns ``question``, ``answer``, ``false_answer``,
``category``): two examples per question, one group per question (SHA-256 of its text):
``<file stem>:<row key>:answer`` (``response`` = ``answer``, ``deception`` = 0) and
``<file stem>:<row key>:false_answer`` (``deception`` = 1). ``prompt`` is ``None`` (the question
itself, by :func:`~scope_guard.prompting.render_prompt`). Rows whose two answers are the same are
skipped (logged). Caveat: these answers are written by the dataset authors; a "lie" here is a
known falsehood, not a model's own belief.

``meta``: ``part`` (``"dialogues"`` or ``"questions"``), ``file``, and ``category`` for questions.
Problems name the file and ``row '<key>'``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from calibration.adapters._common import Collector, load_json, resolve_files, text_hash
from calibration.labeled import LabeledDataset
from scope_guard.errors import ConfigError
from scope_guard.risks import Risk

__all__ = ["load"]

logger = logging.getLogger(__name__)

Part = Literal["all", "dialogues", "questions"]
_SPEAKER = re.compile(r"^\w[\w .'-]{0,30}:\s*")
_PATTERNS = {"dialogues": "instrumental_lying_df_*.json", "questions": "questions_*.json"}


class _Dialogue(BaseModel):
    model_config = ConfigDict(extra="ignore")

    transcript: str
    label: Literal[0, 1]
    prompt: str
    question_prefix: str | None = None
    answer_prefix: str | None = None


class _Question(BaseModel):
    model_config = ConfigDict(extra="ignore")

    question: str
    answer: str
    false_answer: str
    category: str | None = None


def _unprefix(text: str, prefix: str | None) -> str:
    """``text`` without its speaker tag: ``prefix`` when given and present, else ``"Name:"``."""
    if prefix and prefix.strip() and text.startswith(prefix.strip()):
        return text[len(prefix.strip()) :].strip()
    return _SPEAKER.sub("", text, count=1).strip()


def _rows(data: Any) -> Iterator[tuple[str, Any]] | None:
    """``(row key, row object)`` pairs of a dict-of-columns or list-of-rows table."""
    if isinstance(data, list):
        return ((str(i), row) for i, row in enumerate(data))
    if isinstance(data, dict) and data and all(isinstance(c, dict) for c in data.values()):
        keys = list(dict.fromkeys(k for column in data.values() for k in column))
        return ((k, {c: v[k] for c, v in data.items() if k in v}) for k in keys)
    return None


def _kind(data: Any) -> str | None:
    first = data[0] if isinstance(data, list) and data else None
    columns = set(data) if isinstance(data, dict) else set(first) if isinstance(first, dict) else ()
    if "transcript" in columns:
        return "dialogues"
    return "questions" if "false_answer" in columns else None


def _files(path: Path, parts: Part) -> list[Path]:
    if path.is_file():
        return [path]
    wanted = list(_PATTERNS) if parts == "all" else [parts]
    found = sorted({f for p in wanted for f in path.glob(_PATTERNS[p]) if f.is_file()})
    return found or resolve_files(path, _PATTERNS[wanted[0]])


def _dialogue(collector: Collector, file: Path, key: str, raw: Any) -> bool:
    where = f"row {key!r}: "
    row = collector.parse(_Dialogue, raw, file, None, where)
    if row is None:
        return True
    question_line, newline, answer_text = row.transcript.strip().partition("\n")
    if not newline:
        collector.problem(file, None, f"{where}transcript is not a question line + an answer")
        return True
    question_line = question_line.strip()
    question = _unprefix(question_line, row.question_prefix)
    response = _unprefix(answer_text.strip(), row.answer_prefix)
    if not response:
        return False
    fields = {
        "id": f"{file.stem}:{key}",
        "question": question,
        "prompt": f"{row.prompt.strip()}\n\n{question_line}",
        "response": response,
        "labels": {Risk.DECEPTION: 1 - row.label},
        "group": text_hash(question),
        "meta": {"part": "dialogues", "file": file.stem},
    }
    collector.add(file, None, fields, where)
    return True


def _question(collector: Collector, file: Path, key: str, raw: Any) -> bool:
    where = f"row {key!r}: "
    row = collector.parse(_Question, raw, file, None, where)
    if row is None:
        return True
    if row.answer.strip().lower() == row.false_answer.strip().lower():
        return False
    question = row.question.strip()
    for kind, answer, label in (("answer", row.answer, 0), ("false_answer", row.false_answer, 1)):
        fields = {
            "id": f"{file.stem}:{key}:{kind}",
            "question": question,
            "response": answer.strip(),
            "labels": {Risk.DECEPTION: label},
            "group": text_hash(question),
            "meta": {"part": "questions", "file": file.stem, "category": row.category},
        }
        collector.add(file, None, fields, f"{where}{kind}: ")
    return True


def load(path: Path, *, strict: bool = True, parts: Part = "all") -> LabeledDataset:
    """Read AI-liar dialogues and/or question pairs; see the module docstring for the mapping.

    Args:
        path: One file of either kind, or the folder holding them.
        strict: Raise on any bad record (default); ``False`` logs and skips bad records.
        parts: For a folder, which files to read: ``"all"``, ``"dialogues"`` or ``"questions"``.

    Raises:
        ConfigError: for an unknown ``parts``.
        DataError: for a file of neither kind and for every bad row.
    """
    if parts not in ("all", *_PATTERNS):
        msg = f"parts must be one of all, dialogues, questions; got {parts!r}"
        raise ConfigError(msg)
    collector = Collector("ai-liar", path)
    for file in _files(path, parts):
        data = load_json(file)
        rows = _rows(data)
        kind = _kind(data) if rows is not None else None
        if rows is None or kind is None:
            collector.problem(
                file,
                None,
                "not an AI-liar table: expected columns with 'transcript' (dialogues)"
                " or 'false_answer' (questions)",
            )
            continue
        read_row = _dialogue if kind == "dialogues" else _question
        skipped = sum(not read_row(collector, file, key, raw) for key, raw in rows)
        if skipped:
            why = "an empty answer" if kind == "dialogues" else "the same two answers"
            logger.info("ai-liar: %s: skipped %d rows with %s", file, skipped, why)
    return collector.finish(strict=strict)
