"""Shared reading machinery for the adapters: files, JSON lines, row checks, the final dataset.

A loader walks its records and hands each one to a :class:`Collector`, which validates it, keeps
where it came from, and gathers every problem; :meth:`Collector.finish` then raises them all in one
:class:`DataError` (strict) or logs and skips them, and logs the class balance of what it kept.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from calibration.data_problems import DataError, DataProblem
from calibration.labeled import LabeledDataset, LabeledExample

__all__ = [
    "Collector",
    "JSONProblem",
    "iter_json_lines",
    "load_json",
    "log_balance",
    "parse_json",
    "read_bytes",
    "read_text",
    "resolve_files",
    "text_hash",
    "validation_messages",
]

logger = logging.getLogger(__name__)

RowT = TypeVar("RowT", bound=BaseModel)


def text_hash(text: str) -> str:
    """SHA-256 hex digest of ``text`` (UTF-8): the group key of a shared document or question."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def validation_messages(exc: ValidationError) -> list[str]:
    """One ``field.path: message`` line per error in a pydantic ``ValidationError``."""
    out = []
    for err in exc.errors():
        loc = ""
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else f"{'.' if loc else ''}{part}"
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{loc}: {msg}" if loc else msg)
    return out


def _fail(path: Path, message: str, line: int | None = None) -> DataError:
    return DataError([DataProblem(str(path), line, message)])


def resolve_files(path: Path, pattern: str) -> list[Path]:
    """``[path]`` for a file; the files in folder ``path`` matching ``pattern``, sorted by name.

    Raises:
        DataError: if ``path`` does not exist, or the folder holds no matching file.
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise _fail(path, "no such file or folder")
    files = sorted(p for p in path.glob(pattern) if p.is_file())
    if not files:
        raise _fail(path, f"no file matching {pattern!r} in this folder")
    return files


MAX_LINE_BYTES = 16 << 20
"""Longest line of a JSON-lines file (16 MiB): a longer one is reported, never held in memory."""

MAX_DOCUMENT_BYTES = 1 << 30
"""Largest whole-file document (JSON, CSV, TSV) read into memory (1 GiB)."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a record; no format needs more than a few."""


class _NotJSON(ValueError):
    """A value the JSON standard does not allow (NaN, Infinity), found while parsing."""


def _reject_constant(name: str) -> Any:
    msg = f"{name} is not valid JSON (write null for a missing value)"
    raise _NotJSON(msg)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):  # 1e999 parses to infinity
        msg = f"number {text[:40]} is out of range"
        raise _NotJSON(msg)
    return value


def _too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays / objects deeper than ``limit`` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class JSONProblem(ValueError):
    """Why a text is not accepted as JSON; ``line`` is its 1-based line when the decoder knows."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def parse_json(text: str) -> Any:
    """Decode one JSON document strictly: standard JSON only, nesting bounded.

    Raises:
        JSONProblem: with a message fit for a :class:`DataProblem` (invalid JSON with its
            column, NaN / Infinity literals, nesting deeper than :data:`MAX_JSON_DEPTH`).
    """
    too_deep = f"nested deeper than {MAX_JSON_DEPTH} levels of arrays / objects"
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        msg = f"invalid JSON: {exc.msg} (column {exc.colno})"
        raise JSONProblem(msg, exc.lineno) from None
    except _NotJSON as exc:
        raise JSONProblem(str(exc)) from None
    except RecursionError:  # the C decoder recurses once per level: refuse, never crash
        raise JSONProblem(too_deep) from None
    if _too_deep(value, MAX_JSON_DEPTH):
        raise JSONProblem(too_deep)
    return value


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n:,} bytes"


def read_bytes(path: Path, *, limit: int | None = None) -> bytes:
    """The file's bytes; an unreadable file, or one over ``limit`` bytes (default
    :data:`MAX_DOCUMENT_BYTES`), becomes a :class:`DataError`."""
    limit = MAX_DOCUMENT_BYTES if limit is None else limit
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise _fail(path, f"larger than {_size(limit)}: split it into several files")
    return data


def _bad_utf8(data: bytes, exc: UnicodeDecodeError) -> str:
    return f"invalid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"


def read_text(path: Path) -> str:
    """The whole file decoded as UTF-8 (a BOM is dropped); bad bytes name their line."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(path, _bad_utf8(data, exc), data.count(b"\n", 0, exc.start) + 1) from None


def load_json(path: Path) -> Any:
    """A whole-file JSON document (see :func:`parse_json`); a syntax error names its line."""
    try:
        return parse_json(read_text(path))
    except JSONProblem as exc:
        raise _fail(path, str(exc), exc.line) from None


def _raw_lines(path: Path) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, bytes)`` per line; ``None`` for a line over :data:`MAX_LINE_BYTES`, which
    is skipped in chunks so that it never sits in memory whole."""
    try:
        with path.open("rb") as fh:
            lineno = 0
            while raw := fh.readline(MAX_LINE_BYTES + 1):
                lineno += 1
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    while (chunk := fh.readline(1 << 20)) and not chunk.endswith(b"\n"):
                        pass
                    yield lineno, None
                    continue
                yield lineno, raw
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror or exc}") from exc


def iter_json_lines(path: Path, collector: Collector) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, decoded JSON value)`` per non-blank line of a JSON-lines file.

    Lines that are too long, not UTF-8 or not standard JSON (see :func:`parse_json`) are
    reported to ``collector`` and skipped, so one pass finds every bad line.
    """
    for lineno, raw in _raw_lines(path):
        if raw is None:
            collector.problem(path, lineno, f"line longer than {_size(MAX_LINE_BYTES)}")
            continue
        if lineno == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            collector.problem(path, lineno, _bad_utf8(raw, exc).replace("offset", "column"))
            continue
        if not text.strip():
            continue
        try:
            value = parse_json(text)
        except JSONProblem as exc:
            collector.problem(path, lineno, str(exc))
            continue
        yield lineno, value


class Collector:
    """Gathers the examples and the problems of one load.

    Args:
        format: The format name, recorded on the dataset.
        source: The path the user gave, recorded on the dataset.
    """

    def __init__(self, format: str, source: Path) -> None:
        self.format = format
        self.source = source
        self.problems: list[DataProblem] = []
        self.examples: list[LabeledExample] = []
        self._seen: dict[str, tuple[Path, int | None, str]] = {}

    def problem(self, path: Path, line: int | None, message: str) -> None:
        """Record one problem at ``path:line``."""
        self.problems.append(DataProblem(str(path), line, message))

    def _invalid(self, path: Path, line: int | None, exc: ValidationError, where: str) -> None:
        for message in validation_messages(exc):
            self.problem(path, line, f"{where}{message}")

    def parse(
        self, model: type[RowT], raw: Any, path: Path, line: int | None, where: str = ""
    ) -> RowT | None:
        """Validate one raw record against ``model``; ``None`` (and problems) when it fails.

        ``where`` prefixes each message, e.g. ``"row '7': "`` for formats without lines.
        """
        if not isinstance(raw, dict):
            self.problem(path, line, f"{where}expected a JSON object, got {type(raw).__name__}")
            return None
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            self._invalid(path, line, exc, where)
            return None

    def add(self, path: Path, line: int | None, fields: dict[str, Any], where: str = "") -> bool:
        """Build a :class:`LabeledExample` from ``fields`` and keep it; ``False`` if it is bad.

        A duplicate id is a problem that names both places.
        """
        try:
            example = LabeledExample.model_validate(fields)
        except ValidationError as exc:
            self._invalid(path, line, exc, where)
            return False
        if example.id in self._seen:
            first_path, first_line, first_where = self._seen[example.id]
            first = (
                f"line {first_line}"
                if first_line is not None
                else (first_where.rstrip(": ") or "an earlier record")
            )
            if first_path != path:
                first = f"{first_path}:{first_line}" if first_line else f"{first_path} {first}"
            self.problem(path, line, f"{where}duplicate id {example.id!r} (also at {first})")
            return False
        self._seen[example.id] = (path, line, where)
        self.examples.append(example)
        return True

    def finish(self, *, strict: bool) -> LabeledDataset:
        """The dataset, once every record has been seen.

        Raises:
            DataError: with every problem when ``strict``; or when no example is left.
        """
        if self.problems:
            if strict:
                raise DataError(self.problems)
            logger.warning(
                "%s: skipped %d bad records in %s; first: %s",
                self.format,
                len(self.problems),
                self.source,
                self.problems[0],
            )
        if not self.examples:
            raise _fail(self.source, f"no labeled examples found (format {self.format!r})")
        dataset = LabeledDataset(self.examples, source=str(self.source), format=self.format)
        log_balance(dataset)
        return dataset


def log_balance(dataset: LabeledDataset) -> None:
    """Log the size and, per labeled risk, the class balance of ``dataset`` at INFO level."""
    parts = [
        f"{risk}: {b.n_labeled} labeled, {b.n_positive} positive ({b.positive_rate:.1%})"
        for risk, b in dataset.class_balance().items()
        if b.n_labeled
    ]
    logger.info(
        "%s: %d examples from %s; %s",
        dataset.format,
        len(dataset),
        dataset.source,
        "; ".join(parts) or "no labels",
    )
