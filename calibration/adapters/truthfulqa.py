"""TruthfulQA (the original ``TruthfulQA.csv``): questions with true and false reference answers.

Input: a CSV file (or a folder of ``*.csv``) with a header and the columns ``Type``, ``Category``,
``Question``, ``Best Answer``, ``Correct Answers`` and ``Incorrect Answers`` (answers separated
by ``;``).

Mapping, per question, one example per distinct answer, one group per question:

- ``<file stem>:<row>:correct-<i>``: a correct answer, ``deception`` = 0;
- ``<file stem>:<row>:incorrect-<i>``: an incorrect answer, ``deception`` = 1;
- ``question`` = ``Question``; ``prompt`` = ``None`` (the question itself, by
  :func:`~scope_guard.prompting.render_prompt`); ``contexts`` = []; ``group`` = SHA-256 of the
  question;
  ``meta``: ``category``, ``type``, ``best`` (the answer is the ``Best Answer``) and ``source``.
- Answers are stripped and deduplicated; an answer listed as both correct and incorrect is left
  out (logged). ``<row>`` counts data rows from 1.

Why ``deception``: a response that states one of the incorrect answers asserts a known falsehood,
which is what the deception detector looks for. Caveat: these answers are the benchmark authors',
not a model's, so they say nothing about what a model *believes*; a probe fitted here learns
"states a common misconception" and may miss lies a model tells against its own knowledge.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from calibration.adapters._common import Collector, read_text, resolve_files, text_hash
from calibration.labeled import LabeledDataset
from scope_guard.risks import Risk

__all__ = ["COLUMNS", "load", "split_answers"]

logger = logging.getLogger(__name__)

COLUMNS = ("Type", "Category", "Question", "Correct Answers", "Incorrect Answers")
"""The columns each file must have (``Best Answer`` and ``Source`` are used when present)."""


def split_answers(text: str) -> list[str]:
    """The ``;``-separated answers of a cell, stripped, without blanks or repeats, in order."""
    return list(dict.fromkeys(a.strip() for a in text.split(";") if a.strip()))


def load(path: Path, *, strict: bool = True) -> LabeledDataset:
    """Read TruthfulQA questions as answer examples; see the module docstring for the mapping.

    Args:
        path: ``TruthfulQA.csv``, or a folder of such CSV files.
        strict: Raise on any bad record (default); ``False`` logs and skips bad records.

    Raises:
        DataError: for a missing column and for every bad row, as ``file:line: message``.
    """
    collector = Collector("truthfulqa", path)
    n_ambiguous = 0
    for file in resolve_files(path, "*.csv"):
        reader = csv.DictReader(io.StringIO(read_text(file), newline=""))
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            collector.problem(file, 1, f"header lacks columns {missing}")
            continue
        end = reader.line_num
        for row_number, row in enumerate(_rows(reader, file, collector), start=1):
            lineno, end = end + 1, reader.line_num
            if None in row or any(row.get(c) is None for c in COLUMNS):
                collector.problem(file, lineno, "wrong number of fields")
                continue
            question = row["Question"].strip()
            correct = split_answers(row["Correct Answers"])
            incorrect = split_answers(row["Incorrect Answers"])
            both = set(correct) & set(incorrect)
            n_ambiguous += len(both)
            if not question or not correct or not incorrect:
                collector.problem(file, lineno, "needs a question and both answer lists")
                continue
            best = (row.get("Best Answer") or "").strip()
            for kind, answers, label in (("correct", correct, 0), ("incorrect", incorrect, 1)):
                for i, answer in enumerate(a for a in answers if a not in both):
                    fields = {
                        "id": f"{file.stem}:{row_number}:{kind}-{i}",
                        "question": question,
                        "response": answer,
                        "labels": {Risk.DECEPTION: label},
                        "group": text_hash(question),
                        "meta": {
                            "category": row["Category"],
                            "type": row["Type"],
                            "best": answer == best,
                            "source": row.get("Source"),
                        },
                    }
                    collector.add(file, lineno, fields)
    if n_ambiguous:
        logger.info("truthfulqa: left out %d answers listed as both correct and wrong", n_ambiguous)
    return collector.finish(strict=strict)


def _rows(
    reader: csv.DictReader[str], file: Path, collector: Collector
) -> Iterator[dict[Any, Any]]:
    """The reader's rows; a row the csv module refuses (a field over its size limit, a broken
    quote) is reported and ends the file, since the parser cannot resynchronise after it."""
    try:
        yield from reader
    except csv.Error as exc:
        collector.problem(file, reader.reader.line_num, f"malformed CSV: {exc}")
