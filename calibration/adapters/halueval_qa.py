"""HaluEval QA (RUCAIBox/HaluEval ``qa_data.json`` / ``qa_one-turn_data.json``).

Input: JSON lines with ``knowledge``, ``question``, ``right_answer`` and ``hallucinated_answer``
(a file, or a folder: every ``qa*.json`` in it).

Mapping, two examples per line, one group per question:

- ``<file stem>:<line>:right``: ``response`` = ``right_answer``, ``fabrication`` = 0;
- ``<file stem>:<line>:hallucinated``: ``response`` = ``hallucinated_answer``, ``fabrication`` = 1;
- both: ``question`` = ``question``, ``contexts`` = ``[knowledge]``, ``group`` = SHA-256 of the
  question, ``meta.answer`` = ``"right"`` or ``"hallucinated"``.

Caveat: the right answers are much shorter than the hallucinated ones, so response length alone
separates the classes. Use this set as a sanity check, not as evidence of detection quality.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from calibration.adapters._common import Collector, iter_json_lines, resolve_files, text_hash
from calibration.labeled import LabeledDataset
from scope_guard.risks import Risk

__all__ = ["load"]


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore")

    knowledge: str
    question: str
    right_answer: str
    hallucinated_answer: str


def load(path: Path, *, strict: bool = True) -> LabeledDataset:
    """Read HaluEval QA pairs; see the module docstring for the mapping.

    Args:
        path: A HaluEval QA JSON-lines file, or a folder of ``qa*.json`` files.
        strict: Raise on any bad record (default); ``False`` logs and skips bad records.

    Raises:
        DataError: listing every bad record as ``file:line: message``.
    """
    collector = Collector("halueval-qa", path)
    for file in resolve_files(path, "qa*.json"):
        for lineno, raw in iter_json_lines(file, collector):
            row = collector.parse(_Row, raw, file, lineno)
            if row is None:
                continue
            for kind, answer, label in (
                ("right", row.right_answer, 0),
                ("hallucinated", row.hallucinated_answer, 1),
            ):
                fields = {
                    "id": f"{file.stem}:{lineno}:{kind}",
                    "question": row.question,
                    "contexts": [row.knowledge],
                    "response": answer,
                    "labels": {Risk.FABRICATION: label},
                    "group": text_hash(row.question),
                    "meta": {"answer": kind},
                }
                collector.add(file, lineno, fields, where=f"{kind}_answer: ")
    return collector.finish(strict=strict)
