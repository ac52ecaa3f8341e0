"""SummEdits (salesforce/factualNLG): summaries edited to be (in)consistent with a document.

Input: ``summedits_<domain>.json`` files, each a JSON list of ``{id, doc, summary, label,
original_summary, edit_types, split}``; ``path`` is one such file or a folder of them.

Mapping, one example per item:

- ``id`` = ``id``; ``response`` = ``summary``; ``contexts`` = ``[doc]``; ``question`` = "".
- ``labels`` = ``{fabrication: 1 - label}``: SummEdits' ``label`` is 1 for a summary consistent
  with the document and 0 for an inconsistent one, so an inconsistent summary is a fabrication.
- ``group`` = SHA-256 of ``doc``: every edit of one document's summary shares it.
- ``meta``: ``domain`` (from the file name: ``summedits_sales_call.json`` -> ``sales_call``),
  ``edit_types`` (a list, empty for unedited summaries) and ``split``.

Items have no line numbers: problems name the file and ``item <index>`` (0-based).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from calibration.adapters._common import Collector, load_json, resolve_files, text_hash
from calibration.labeled import LabeledDataset
from scope_guard.risks import Risk

__all__ = ["load"]


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | int
    doc: str
    summary: str
    label: Literal[0, 1]
    edit_types: list[str] | None = None
    split: str | None = None


def _domain(file: Path) -> str:
    return file.stem.removeprefix("summedits_")


def load(path: Path, *, strict: bool = True) -> LabeledDataset:
    """Read SummEdits items; see the module docstring for the mapping.

    Args:
        path: One ``summedits_*.json`` file, or a folder of them.
        strict: Raise on any bad record (default); ``False`` logs and skips bad records.

    Raises:
        DataError: for a file that is not a JSON list, and for every bad item.
    """
    collector = Collector("summedits", path)
    for file in resolve_files(path, "summedits_*.json"):
        items = load_json(file)
        if not isinstance(items, list):
            collector.problem(file, None, f"expected a JSON list, got {type(items).__name__}")
            continue
        for index, raw in enumerate(items):
            where = f"item {index}: "
            item = collector.parse(_Item, raw, file, None, where)
            if item is None:
                continue
            fields = {
                "id": str(item.id),
                "contexts": [item.doc],
                "response": item.summary,
                "labels": {Risk.FABRICATION: 1 - item.label},
                "group": text_hash(item.doc),
                "meta": {
                    "domain": _domain(file),
                    "edit_types": list(item.edit_types or []),
                    "split": item.split,
                },
            }
            collector.add(file, None, fields, where)
    return collector.finish(strict=strict)
