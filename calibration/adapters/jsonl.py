"""Our own format: one :class:`~calibration.labeled.LabeledExample` JSON object per line.

Example line::

    {"id": "q1", "question": "...", "contexts": ["..."], "response": "...",
     "labels": {"fabrication": 1}, "spans": [{"start": 4, "end": 9, "risk": "fabrication"}],
     "group": "doc-17", "meta": {"task_type": "QA"}}

Only ``id`` and ``response`` are required. Blank lines are skipped; a UTF-8 BOM is allowed. Every
bad record is reported with its file and line, all at once: invalid UTF-8, invalid JSON, a value
that is not an object, schema errors (with the field path, unknown fields included), a blank
``id`` or ``response``, labels outside {0, 1}, spans outside the response or marking a risk labeled
0, and duplicate ids (naming both lines). :func:`write_jsonl` writes the same format back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from calibration.adapters._common import Collector, iter_json_lines, resolve_files
from calibration.labeled import LabeledDataset, LabeledExample

__all__ = ["load", "read_jsonl", "write_jsonl"]


def load(path: Path, *, strict: bool = True) -> LabeledDataset:
    """Read a ``.jsonl`` file, or every ``*.jsonl`` file of a folder (ids unique across them).

    Args:
        path: The file or folder.
        strict: Raise on any bad record (default); ``False`` logs and skips bad records.

    Raises:
        DataError: listing every bad record as ``file:line: message``.
    """
    collector = Collector("jsonl", path)
    for file in resolve_files(path, "*.jsonl"):
        for lineno, raw in iter_json_lines(file, collector):
            if not isinstance(raw, dict):
                collector.problem(file, lineno, f"expected a JSON object, got {type(raw).__name__}")
                continue
            collector.add(file, lineno, raw)
    return collector.finish(strict=strict)


def read_jsonl(path: str | os.PathLike[str], *, strict: bool = True) -> LabeledDataset:
    """Read our JSONL format (a file or a folder of ``*.jsonl``); see :func:`load`."""
    return load(Path(path), strict=strict)


def write_jsonl(examples: Iterable[LabeledExample], path: str | os.PathLike[str]) -> Path:
    """Write examples in our JSONL format (UTF-8, one object per line, unset defaults omitted).

    Returns:
        The path written.
    """
    out = Path(path)
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        for example in examples:
            data = example.model_dump(mode="json", exclude_defaults=True)
            fh.write(json.dumps(data, ensure_ascii=False) + "\n")
    return out
