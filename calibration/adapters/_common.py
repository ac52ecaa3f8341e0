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
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from calibration.data_problems import DataError, DataProblem
from calibration.labeled import LabeledDataset, LabeledExample

__all__ = [
    "Collector",
    "iter_json_lines",
    "load_json",
    "log_balance",
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


def read_bytes(path: Path) -> bytes:
    """The file's bytes; an unreadable file becomes a :class:`DataError`."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror or exc}") from exc


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
    """A whole-file JSON document; a syntax error names its line."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise _fail(path, f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno) from None


def iter_json_lines(path: Path, collector: Collector) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, decoded JSON value)`` per non-blank line of a JSON-lines file.

    Lines that are not UTF-8 or not JSON are reported to ``collector`` and skipped, so one pass
    finds every bad line.
    """
    for lineno, raw in enumerate(read_bytes(path).split(b"\n"), start=1):
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
            yield lineno, json.loads(text)
        except json.JSONDecodeError as exc:
            collector.problem(path, lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")


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
