"""The labeled-data API in one place: the data models, the loaders, and their errors.

A facade: the models live in :mod:`calibration.labeled`, the errors in
:mod:`calibration.data_problems`, the readers in :mod:`calibration.adapters`. Nothing below imports
this module, so the imports run one way (``data -> adapters -> labeled``) and any of those modules
can be imported alone.
"""

from __future__ import annotations

import os

from calibration.adapters import available_formats, load_dataset
from calibration.data_problems import DataError, DataProblem
from calibration.labeled import (
    ClassBalance,
    LabeledDataset,
    LabeledExample,
    LabeledSpan,
    prompt_of,
)
from scope_guard.prompting import render_prompt

__all__ = [
    "ClassBalance",
    "DataError",
    "DataProblem",
    "LabeledDataset",
    "LabeledExample",
    "LabeledSpan",
    "available_formats",
    "load_dataset",
    "prompt_of",
    "read_jsonl",
    "render_prompt",
]


def read_jsonl(path: str | os.PathLike[str], *, strict: bool = True) -> LabeledDataset:
    """Read our JSONL format; see :func:`calibration.adapters.jsonl.read_jsonl`."""
    from calibration.adapters.jsonl import read_jsonl as _read_jsonl

    return _read_jsonl(path, strict=strict)
