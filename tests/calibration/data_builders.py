"""Tiny synthetic files in each labeled-data format, with made-up text, for the adapter tests."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from calibration.data import LabeledExample


def example(id: str = "e1", **fields: Any) -> LabeledExample:
    """A valid example; ``fields`` override the defaults."""
    base: dict[str, Any] = {
        "id": id,
        "question": "What colour is the moon of Zorb?",
        "contexts": ["The moon of Zorb is teal."],
        "response": "The moon of Zorb is teal.",
        "labels": {"fabrication": 0},
    }
    base.update(fields)
    return LabeledExample.model_validate(base)


def write_lines(path: Path, lines: Iterable[str | bytes]) -> Path:
    """Write raw lines (text as UTF-8, bytes as they are), each ending in a newline."""
    data = b"".join((x if isinstance(x, bytes) else x.encode("utf-8")) + b"\n" for x in lines)
    path.write_bytes(data)
    return path


def write_json_lines(path: Path, rows: Iterable[Any]) -> Path:
    """One JSON value per line."""
    return write_lines(path, (json.dumps(r) for r in rows))


def ragtruth_row(id: str, context: str, response: str, spans: Sequence[tuple[int, int]] = ()):
    """A RAGTruth row; ``hallucinated`` is true when there are spans."""
    return {
        "id": id,
        "task_type": "QA",
        "model": "model-a",
        "temperature": 0.7,
        "quality": "good",
        "split": "test",
        "query": "how tall is the tower of Ulm?",
        "context": context,
        "response": response,
        "labels": [
            {
                "start": s,
                "end": e,
                "text": response[s:e],
                "meta": "",
                "label_type": "Evident Baseless Info",
                "implicit_true": False,
                "due_to_null": False,
            }
            for s, e in spans
        ],
        "hallucinated": bool(spans),
    }


def halueval_row(n: int) -> dict[str, str]:
    return {
        "knowledge": f"Fact {n}: the river Quill is {n} km long.",
        "question": f"How long is river Quill number {n}?",
        "right_answer": f"{n} km",
        "hallucinated_answer": f"The river is {n + 100} km long.",
    }


def summedits_item(id: str, doc: str, label: int, edits: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "id": id,
        "doc": doc,
        "summary": f"Summary of {id}.",
        "label": label,
        "original_summary": f"Summary of {id}.",
        "edit_types": list(edits),
        "split": "test",
    }


BEGIN_HEADER = "model_name\tdata_source\tknowledge\tmessage\tresponse\tbegin_label"


def begin_line(knowledge: str, response: str, label: str, message: str = "hi there") -> str:
    return "\t".join(["t5", "wow", knowledge, message, response, label])


def wice_row(claim_id: str, label: str, claim: str, evidence: Sequence[tuple[int, str]]):
    """A WiCE row; ``evidence`` is ``(chunk index, sentence)`` pairs."""
    return {
        "label": label,
        "claim": claim,
        "evidence": [s for _, s in evidence],
        "meta": {
            "id": claim_id,
            "claim_title": f"Title of {claim_id}",
            "claim_section": "Career.",
            "chunk_idx": [i for i, _ in evidence],
            "oracle_idx": [],
        },
    }


def sycophancy_row(question_tail: str, matching: str, affiliation: str = "liberal"):
    other = " (B)" if matching.strip() == "(A)" else " (A)"
    return {
        "question": (
            "Hello, I am Kim, a gardener who strongly prefers option one. "
            f"{question_tail}\n (A) Plant more trees\n (B) Pave more roads\n\nAnswer:"
        ),
        "answer_matching_behavior": matching,
        "answer_not_matching_behavior": other,
        "user_affiliation": affiliation,
        "source_file": "quiz.jsonl",
    }


def dict_of_columns(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A pandas ``to_json()`` table: ``{column: {row key: value}}``."""
    columns: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        for col, value in row.items():
            columns.setdefault(col, {})[str(i)] = value
    return columns


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


TRUTHFULQA_HEADER = [
    "Type",
    "Category",
    "Question",
    "Best Answer",
    "Correct Answers",
    "Incorrect Answers",
    "Source",
]


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path
