"""BEGIN (google/BEGIN-dataset): is a knowledge-grounded dialogue response attributable?

Input: tab-separated files (``*.tsv``; a file or a folder of them) with a header row and the
columns ``model_name``, ``data_source``, ``knowledge``, ``message``, ``response``,
``begin_label``; one record per line, no quoting.

Mapping, one example per line:

- ``id`` = ``<file stem>:<line>``; ``question`` = ``message`` (the user's last turn);
  ``contexts`` = ``[knowledge]``; ``response`` = ``response``.
- ``labels`` = ``{fabrication: 1}`` for "Not fully attributable", ``{fabrication: 0}`` for
  "Fully attributable".
- "Generic" responses are **left out** by default (``generic_label=None``): they make no claim
  about the knowledge ("that sounds fun!"), so they are neither supported nor fabricated, and
  labeling them either way would teach a probe "generic vs. informative" rather than "supported
  vs. unsupported". ``generic_label=0`` keeps them as not fabricated.
- ``group`` = SHA-256 of ``knowledge``: responses grounded in one passage share it.
- ``meta``: ``source`` (``data_source``: wow / cmu / tc), ``model`` (``model_name``) and
  ``begin_label``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from calibration.adapters._common import Collector, read_text, resolve_files, text_hash
from calibration.labeled import LabeledDataset
from scope_guard.errors import ConfigError
from scope_guard.risks import Risk

__all__ = ["COLUMNS", "LABELS", "load"]

logger = logging.getLogger(__name__)

COLUMNS = ("model_name", "data_source", "knowledge", "message", "response", "begin_label")
"""The columns each file must have (in any order)."""

LABELS = {"Fully attributable": 0, "Not fully attributable": 1, "Generic": None}
"""BEGIN label -> fabrication label (``None``: see ``generic_label``)."""


def load(path: Path, *, strict: bool = True, generic_label: int | None = None) -> LabeledDataset:
    """Read BEGIN records; see the module docstring for the mapping.

    Args:
        path: A BEGIN ``.tsv`` file, or a folder of them.
        strict: Raise on any bad record (default); ``False`` logs and skips bad records.
        generic_label: The fabrication label of "Generic" responses: ``None`` (default) leaves
            them out, 0 keeps them as not fabricated, 1 as fabricated.

    Raises:
        ConfigError: for a ``generic_label`` other than None, 0 or 1.
        DataError: for a missing column and for every bad record, as ``file:line: message``.
    """
    if generic_label not in (None, 0, 1):
        msg = f"generic_label must be None, 0 or 1, got {generic_label!r}"
        raise ConfigError(msg)
    collector = Collector("begin", path)
    n_generic = 0
    for file in resolve_files(path, "*.tsv"):
        lines = read_text(file).split("\n")
        header = lines[0].rstrip("\r").split("\t")
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            collector.problem(file, 1, f"header lacks columns {missing}; it has {header}")
            continue
        for lineno, line in enumerate(lines[1:], start=2):
            line = line.rstrip("\r")
            if not line.strip():
                continue
            values = line.split("\t")
            if len(values) != len(header):
                collector.problem(
                    file, lineno, f"expected {len(header)} tab-separated fields, got {len(values)}"
                )
                continue
            row = dict(zip(header, values, strict=True))
            label_name = row["begin_label"].strip()
            if label_name not in LABELS:
                valid = ", ".join(repr(k) for k in LABELS)
                collector.problem(file, lineno, f"begin_label {label_name!r}; valid: {valid}")
                continue
            label = LABELS[label_name]
            if label_name == "Generic":
                n_generic += 1
                label = generic_label
                if label is None:
                    continue
            fields = {
                "id": f"{file.stem}:{lineno}",
                "question": row["message"],
                "contexts": [row["knowledge"]],
                "response": row["response"],
                "labels": {Risk.FABRICATION: label},
                "group": text_hash(row["knowledge"]),
                "meta": {
                    "source": row["data_source"],
                    "model": row["model_name"],
                    "begin_label": label_name,
                },
            }
            collector.add(file, lineno, fields)
    if n_generic and generic_label is None:
        logger.info("begin: left out %d 'Generic' responses (generic_label=None)", n_generic)
    return collector.finish(strict=strict)
