"""RAGTruth (ParticleMedia/RAGTruth): LLM responses to RAG tasks with hallucination spans.

Input: a JSON-lines file (or a folder of ``*.jsonl``), one response per line, with ``id``,
``task_type`` (QA | Summary | Data2txt), ``model``, ``temperature``, ``quality``, ``query``,
``context``, ``response``, ``labels`` (``[{start, end, text, label_type, ...}]``, character offsets
into ``response``), ``hallucinated`` and ``split``.

Mapping, one example per line:

- ``id`` = the row's ``id``; ``question`` = ``query`` (for Summary and Data2txt an instruction);
  ``contexts`` = ``[context]``; ``response`` = ``response``; ``prompt`` = the row's ``prompt``
  when a copy has one, else ``None`` (the default prompt is rendered from question and context).
- ``labels`` = ``{fabrication: hallucinated}``. Every RAGTruth label type (Evident / Subtle
  Conflict, Evident / Subtle Baseless Info) counts as fabrication: the response states something
  the context does not support.
- ``spans`` = each entry of ``labels`` as ``(start, end, fabrication)``; when an entry has
  ``text``, it must equal ``response[start:end]``.
- ``group`` = SHA-256 of ``context``: the six responses (six LLMs) to one source share it, so a
  group split never puts the same source on both sides.
- ``meta``: ``task_type``, ``model``, ``quality``, ``temperature``, ``split`` and
  ``label_types`` (the sorted distinct label types of the spans).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from calibration.adapters._common import Collector, iter_json_lines, resolve_files, text_hash
from calibration.labeled import LabeledDataset
from scope_guard.risks import Risk

__all__ = ["load"]


class _Span(BaseModel):
    model_config = ConfigDict(extra="ignore")

    start: int
    end: int
    text: str | None = None
    label_type: str | None = None


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | int
    task_type: str
    model: str | None = None
    temperature: float | None = None
    quality: str | None = None
    split: str | None = None
    query: str
    context: str
    response: str
    prompt: str | None = None
    labels: list[_Span]
    hallucinated: bool


def load(path: Path, *, strict: bool = True) -> LabeledDataset:
    """Read RAGTruth responses; see the module docstring for the mapping.

    Args:
        path: A RAGTruth ``.jsonl`` file, or a folder of them.
        strict: Raise on any bad record (default); ``False`` logs and skips bad records.

    Raises:
        DataError: listing every bad record as ``file:line: message``.
    """
    collector = Collector("ragtruth", path)
    for file in resolve_files(path, "*.jsonl"):
        for lineno, raw in iter_json_lines(file, collector):
            row = collector.parse(_Row, raw, file, lineno)
            if row is None:
                continue
            mismatched = [
                i
                for i, s in enumerate(row.labels)
                if s.text is not None and row.response[s.start : s.end] != s.text
            ]
            if mismatched:
                collector.problem(
                    file, lineno, f"labels{mismatched}: text differs from response[start:end]"
                )
                continue
            fields = {
                "id": str(row.id),
                "question": row.query,
                "contexts": [row.context],
                "response": row.response,
                "prompt": row.prompt,
                "labels": {Risk.FABRICATION: int(row.hallucinated)},
                "spans": [
                    {"start": s.start, "end": s.end, "risk": Risk.FABRICATION} for s in row.labels
                ],
                "group": text_hash(row.context),
                "meta": {
                    "task_type": row.task_type,
                    "model": row.model,
                    "quality": row.quality,
                    "temperature": row.temperature,
                    "split": row.split,
                    "label_types": sorted({s.label_type for s in row.labels if s.label_type}),
                },
            }
            collector.add(file, lineno, fields)
    return collector.finish(strict=strict)
