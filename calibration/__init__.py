"""Calibration: labeled data, feature extraction, probe fitting, calibration, metrics, reports.

``import calibration`` stays light (pydantic and numpy, no torch): the labeled-data API is
exported here; heavier parts are imported from their modules.
"""

from calibration.data import (
    ClassBalance,
    DataError,
    DataProblem,
    LabeledDataset,
    LabeledExample,
    LabeledSpan,
    available_formats,
    load_dataset,
    prompt_of,
    read_jsonl,
    render_prompt,
)

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
