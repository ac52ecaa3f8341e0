"""The labeled sets of the sycophancy / deception benchmark, and their fixed-seed subsamples.

Each set is read by its calibration adapter from ``../shared/data`` (never copied). Large sets
are subsampled by *unit* with a fixed seed: an A/B item (both its answers) for sycophancy, a
question (all its answers) elsewhere, so that a subsample never splits what belongs together.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from calibration.adapters import load_dataset
from calibration.data import LabeledDataset
from scope_guard.risks import Risk

__all__ = ["SETS", "BehaviourSet", "curve_rows", "load_set", "unit_of"]


@dataclass(frozen=True)
class BehaviourSet:
    """One labeled set: where it lives, how to read it, and how much of it to keep.

    Attributes:
        name: The set's name in results and tables.
        format: Its calibration adapter.
        path: Path under the data root.
        risk: The risk its labels are for.
        units: Units (see :func:`unit_of`) drawn, in a random order, with the seed.
            ``None`` keeps all.
        keep: How many of the drawn units to keep (the first ``keep``): a smaller subsample
            is a prefix of a larger one, so their cached features are shared.
        options: The adapter's keyword options.
        curve: Smaller ``keep`` values (prefixes of this subsample) scored as well, for a
            learning curve: did more units help?
    """

    name: str
    format: str
    path: str
    risk: Risk
    units: int | None = None
    keep: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    curve: tuple[int, ...] = ()


SETS = (
    BehaviourSet(
        "sycophancy",
        "anthropic-sycophancy",
        "anthropic_sycophancy/political_typology_v0_normalized.jsonl",
        Risk.SYCOPHANCY,
        units=500,
        # All 500 drawn items (1,000 responses): at 200 items a training side had ~320 rows
        # for 640-4,096 features; the 200-item prefix (the earlier subsample) is scored too.
        curve=(100, 200),
    ),
    BehaviourSet(
        "ai-liar-dialogues",
        "ai-liar",
        "ai_liar",
        Risk.DECEPTION,
        options={"parts": "dialogues"},
    ),
    BehaviourSet(
        "ai-liar-questions",
        "ai-liar",
        "ai_liar/questions_1000_all.json",
        Risk.DECEPTION,
        units=500,
        keep=400,
    ),
    BehaviourSet(
        "truthfulqa",
        "truthfulqa",
        "truthfulqa/TruthfulQA.csv",
        Risk.DECEPTION,
        units=300,
        # All 300 drawn questions: the 100 -> 200 curve (0.813 -> 0.837) said more would help;
        # the 200-question prefix (the earlier subsample) is scored too.
        curve=(100, 200),
    ),
    BehaviourSet(
        "halueval-qa",
        "halueval-qa",
        "halueval/qa_one-turn_data.json",
        Risk.FABRICATION,
        units=200,
        keep=120,
    ),
)


def unit_of(spec: BehaviourSet, example_id: str, group: str) -> str:
    """The subsampling unit of an example: its A/B item for sycophancy, else its group."""
    if spec.format == "anthropic-sycophancy":
        return example_id.rsplit(":", 1)[0]  # "<stem>:<line>:<kind>" -> the item
    return group


def load_set(spec: BehaviourSet, data_root: Path, seed: int = 0) -> tuple[LabeledDataset, int]:
    """The set's examples (subsampled by unit with ``seed``), and how many units it had."""
    dataset = load_dataset(data_root / spec.path, spec.format, **spec.options)
    units = [unit_of(spec, ex.id, ex.group_key) for ex in dataset]
    distinct = list(dict.fromkeys(units))
    if spec.units is None or spec.units >= len(distinct):
        return dataset, len(distinct)
    rng = np.random.default_rng(seed)
    order = rng.choice(len(distinct), size=spec.units, replace=False)
    kept = {distinct[i] for i in order[: spec.keep or spec.units]}
    rows = [i for i, unit in enumerate(units) if unit in kept]
    return dataset.subset(rows), len(distinct)


def curve_rows(
    spec: BehaviourSet, dataset: LabeledDataset, data_root: Path, seed: int = 0
) -> dict[int, list[int]]:
    """For each ``keep`` of ``spec.curve``: the rows of ``dataset`` (the set as
    :func:`load_set` gives it) in that smaller prefix of the subsample."""
    index = {ex.id: i for i, ex in enumerate(dataset)}
    out = {}
    for keep in spec.curve:
        smaller, _ = load_set(replace(spec, keep=keep), data_root, seed)
        out[keep] = sorted(index[ex.id] for ex in smaller)
    return out
