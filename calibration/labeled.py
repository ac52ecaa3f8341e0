"""Labeled examples and the dataset that holds them: the data models every loader builds.

A :class:`LabeledExample` is one (question, contexts, response) exchange with a 0/1 label per risk
it was judged for; a risk that is absent from ``labels`` is *unlabeled*, not negative. Examples that
share a source document or question share a ``group``, so every split can keep a group on one side.

This module sits below both :mod:`calibration.adapters` (which build these models) and
:mod:`calibration.data` (the public facade that re-exports them with the loaders), so the imports
run one way: ``data -> adapters -> labeled``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, overload

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scope_guard.errors import ConfigError, InputError
from scope_guard.prompting import render_prompt
from scope_guard.risks import Risk

__all__ = ["ClassBalance", "LabeledDataset", "LabeledExample", "LabeledSpan", "prompt_of"]


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class LabeledSpan(BaseModel):
    """A labeled character span ``response[start:end]`` showing where a risk occurs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: int = Field(ge=0)
    end: int
    risk: Risk

    @field_validator("risk", mode="before")
    @classmethod
    def _parse_risk(cls, value: Any) -> Any:
        return Risk.parse(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_order(self) -> LabeledSpan:
        if self.end <= self.start:
            msg = f"span end ({self.end}) must be greater than start ({self.start})"
            raise ValueError(msg)
        return self


class LabeledExample(BaseModel):
    """One labeled exchange.

    Attributes:
        id: Unique, non-blank identifier within its dataset.
        question: What the user asked ("" when the dataset has none, e.g. summaries).
        contexts: The retrieved / source texts the response should be grounded in.
        response: The text being judged; non-blank.
        prompt: The exact prompt the generator saw, when the dataset has it; otherwise
            :func:`prompt_of` renders a default from ``question`` and ``contexts``.
        labels: 0 or 1 per risk (JSON ``true``/``false`` accepted, ``null`` = unlabeled).
        spans: Labeled character spans into ``response``; a span's risk must not be labeled 0.
        group: Examples that share a source document or question share a group.
        meta: Free JSON fields (task type, model, domain...) for per-field breakdowns.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    question: str = ""
    contexts: list[str] = Field(default_factory=list)
    response: str
    prompt: str | None = None
    labels: dict[Risk, int] = Field(default_factory=dict)
    spans: list[LabeledSpan] = Field(default_factory=list)
    group: str | None = Field(default=None, min_length=1)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("question", "response", "prompt", "contexts")
    @classmethod
    def _no_lone_surrogates(cls, value: Any) -> Any:
        # JSON may escape half a surrogate pair ("\ud800"); such text cannot be encoded, hashed
        # or tokenized. One replacement character per code point keeps every span offset valid.
        if isinstance(value, str):
            return _LONE_SURROGATE.sub("\ufffd", value)
        if isinstance(value, list):
            return [_LONE_SURROGATE.sub("\ufffd", v) if isinstance(v, str) else v for v in value]
        return value

    @field_validator("id", "response")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if value.strip():
            return value
        msg = "must not be empty or blank"
        raise ValueError(msg)

    @field_validator("labels", mode="before")
    @classmethod
    def _check_labels(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        out: dict[Risk, int] = {}
        for key, label in value.items():
            risk = Risk.parse(key)
            if label is None:
                continue
            if not isinstance(label, bool | int) or label not in (0, 1):
                msg = f"label for {risk} must be 0 or 1, got {label!r}"
                raise ValueError(msg)
            out[risk] = int(label)
        return out

    @model_validator(mode="after")
    def _check_spans(self) -> LabeledExample:
        n = len(self.response)
        for i, span in enumerate(self.spans):
            if span.end > n:
                msg = f"spans[{i}] ends at {span.end}, past the response ({n} characters)"
                raise ValueError(msg)
            if self.labels.get(span.risk) == 0:
                msg = f"spans[{i}] marks {span.risk} but the example is labeled {span.risk}=0"
                raise ValueError(msg)
        return self

    @property
    def group_key(self) -> str:
        """The group used for group-aware splits: ``group``, or ``id`` when there is none."""
        return self.group if self.group is not None else self.id

    def label(self, risk: Risk | str) -> int | None:
        """The 0/1 label for ``risk``, or ``None`` when the example is unlabeled for it."""
        return self.labels.get(Risk.parse(risk))


def prompt_of(example: LabeledExample) -> str:
    """The prompt the reader should pair with ``example.response``."""
    if example.prompt is not None:
        return example.prompt
    return render_prompt(example.question, example.contexts)


class ClassBalance(NamedTuple):
    """How many examples are labeled for one risk, and how they split."""

    n_labeled: int
    n_positive: int
    n_negative: int

    @property
    def positive_rate(self) -> float:
        """Share of positives among labeled examples, in [0, 1]; NaN when none are labeled."""
        return self.n_positive / self.n_labeled if self.n_labeled else math.nan


class LabeledDataset(Sequence[LabeledExample]):
    """An immutable sequence of labeled examples, with the arrays probes and splits need.

    Args:
        examples: The examples, in order (readers make ids unique; a subset may repeat some).
        source: Where the examples came from (a path), for messages and manifests.
        format: The format they were read from (see :func:`available_formats`).
    """

    def __init__(
        self, examples: Iterable[LabeledExample], *, source: str = "", format: str = "jsonl"
    ) -> None:
        self._examples = tuple(examples)
        for i, example in enumerate(self._examples):
            if not isinstance(example, LabeledExample):
                msg = f"examples[{i}] is a {type(example).__name__}, not a LabeledExample"
                raise InputError(msg)
        self._source = source
        self._format = format

    @property
    def examples(self) -> tuple[LabeledExample, ...]:
        return self._examples

    @property
    def source(self) -> str:
        return self._source

    @property
    def format(self) -> str:
        return self._format

    def __len__(self) -> int:
        return len(self._examples)

    def __iter__(self) -> Iterator[LabeledExample]:
        return iter(self._examples)

    @overload
    def __getitem__(self, index: int) -> LabeledExample: ...
    @overload
    def __getitem__(self, index: slice) -> LabeledDataset: ...
    def __getitem__(self, index: int | slice) -> LabeledExample | LabeledDataset:
        if isinstance(index, slice):
            return self._derive(self._examples[index])
        return self._examples[index]

    def __repr__(self) -> str:
        return f"LabeledDataset(n={len(self)}, format={self._format!r}, source={self._source!r})"

    def _derive(self, examples: Iterable[LabeledExample]) -> LabeledDataset:
        return LabeledDataset(examples, source=self._source, format=self._format)

    def with_label(self, risk: Risk | str) -> LabeledDataset:
        """Only the examples labeled (0 or 1) for ``risk``, in order."""
        risk = Risk.parse(risk)
        return self._derive(e for e in self._examples if risk in e.labels)

    def y(self, risk: Risk | str) -> np.ndarray:
        """The labels for ``risk`` as an int64 array of shape ``(n,)``, values in {0, 1}.

        Raises:
            ConfigError: if some example is unlabeled for ``risk`` (use :meth:`with_label` first).
        """
        risk = Risk.parse(risk)
        missing = sum(risk not in e.labels for e in self._examples)
        if missing:
            msg = f"{missing} of {len(self)} examples have no {risk} label; use with_label() first"
            raise ConfigError(msg)
        return np.fromiter(
            (e.labels[risk] for e in self._examples), dtype=np.int64, count=len(self)
        )

    def groups(self) -> np.ndarray:
        """Each example's ``group_key``, an object array of str of shape ``(n,)``."""
        return _object_array([e.group_key for e in self._examples])

    def field(self, name: str) -> np.ndarray:
        """``meta[name]`` per example (``None`` where absent), an object array of shape ``(n,)``."""
        return _object_array([e.meta.get(name) for e in self._examples])

    def class_balance(self) -> dict[Risk, ClassBalance]:
        """Labeled / positive / negative counts for every risk (zeros where none is labeled)."""
        out = {}
        for risk in Risk:
            values = [e.labels[risk] for e in self._examples if risk in e.labels]
            out[risk] = ClassBalance(len(values), sum(values), len(values) - sum(values))
        return out

    def content_hash(self) -> str:
        """SHA-256 hex digest of the examples' canonical JSON, for training-data manifests.

        Canonical: each example's JSON form with sorted keys and no whitespace, one per line, in
        dataset order. The hash is **order-sensitive** on purpose: splits and folds are drawn
        from the dataset order, so a reordered dataset can give a different detector. It ignores
        ``source`` and ``format``: the same examples read from another path hash the same.
        """
        digest = hashlib.sha256()
        for example in self._examples:
            data = example.model_dump(mode="json")
            text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            digest.update(text.encode("utf-8"))
            digest.update(b"\n")
        return digest.hexdigest()

    def subset(self, indices: Sequence[int] | np.ndarray) -> LabeledDataset:
        """The examples at ``indices`` (ints, repeats allowed, or a boolean mask of length n)."""
        idx = np.asarray(indices)
        if idx.dtype == bool and idx.shape == (len(self),):
            idx = np.flatnonzero(idx)
        if idx.size and (idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer)):
            msg = f"indices must be 1-d ints or a boolean mask of length {len(self)}"
            raise InputError(msg)
        return self._derive(self._examples[int(i)] for i in idx)


def _object_array(values: list[Any]) -> np.ndarray:
    # Filled element by element: np.array() would turn equal-length lists into a 2-d array.
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out
