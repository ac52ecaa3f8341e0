"""The text an SAE is trained on: documents from files, JSONL fields, documents or exchanges.

A :class:`TextCorpus` is an ordered tuple of non-blank texts with a content hash (for the training
manifest). The held-out split is decided per document by a hash of its text, so it does not
depend on the order the documents come in, and a document repeated in the corpus lands on one
side only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scope_guard.errors import InputError

__all__ = ["TextCorpus"]

logger = logging.getLogger(__name__)

_HASH_SPAN = float(1 << 32)


def _doc_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        msg = f"{path} is not UTF-8 text: {exc}"
        raise InputError(msg) from exc
    except OSError as exc:
        msg = f"cannot read {path}: {exc}"
        raise InputError(msg) from exc


def _field(record: Any, dotted: str) -> Any:
    value = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _texts_of(value: Any) -> list[str]:
    """A field's text: a string, or the strings of a list (a ``contexts`` list)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


@dataclass(frozen=True)
class TextCorpus:
    """Documents to read, in order; blank ones are dropped on construction.

    Attributes:
        texts: The documents.
        name: Where they came from, for the manifest.
    """

    texts: tuple[str, ...]
    name: str = "texts"

    def __post_init__(self) -> None:
        bad = [i for i, t in enumerate(self.texts) if not isinstance(t, str)]
        if bad:
            msg = f"corpus documents must be strings; items {bad[:5]} are not"
            raise InputError(msg)
        object.__setattr__(self, "texts", tuple(t for t in self.texts if t.strip()))

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def sha256(self) -> str:
        """Hash of the documents, in order (each one's own hash, then the list)."""
        digest = hashlib.sha256()
        for text in self.texts:
            digest.update(_doc_hash(text).encode())
        return digest.hexdigest()

    def require_text(self) -> None:
        """Raise :class:`InputError` if the corpus holds no document."""
        if not self.texts:
            msg = f"the corpus {self.name!r} holds no text: nothing to train on"
            raise InputError(msg)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_texts(cls, texts: Iterable[str], *, name: str = "texts") -> TextCorpus:
        """Documents given directly."""
        return cls(tuple(texts), name=name)

    @classmethod
    def from_text_files(cls, paths: Sequence[str | Path]) -> TextCorpus:
        """One document per file; a folder contributes its ``*.txt`` files, sorted.

        Raises:
            InputError: a path is missing or a file is not UTF-8.
        """
        files: list[Path] = []
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                files.extend(sorted(path.rglob("*.txt")))
            elif path.is_file():
                files.append(path)
            else:
                msg = f"no such file or folder: {path}"
                raise InputError(msg)
        name = ",".join(str(p) for p in paths)
        return cls(tuple(_read_text(f) for f in files), name=f"text:{name}")

    @classmethod
    def from_jsonl(cls, path: str | Path, fields: Sequence[str] = ("text",)) -> TextCorpus:
        """The given fields of every JSON object of a JSON Lines file, in file order.

        A field may be dotted (``meta.body``) and may hold a string or a list of strings.
        Objects that lack every field are skipped and counted in the log.

        Raises:
            InputError: the file is missing, not UTF-8, or a line is not a JSON object.
        """
        file = Path(path)
        if not file.is_file():
            msg = f"no such JSONL file: {file}"
            raise InputError(msg)
        texts: list[str] = []
        skipped = 0
        for number, line in enumerate(_read_text(file).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                msg = f"{file}:{number} is not valid JSON: {exc}"
                raise InputError(msg) from exc
            if not isinstance(record, dict):
                msg = f"{file}:{number} holds a {type(record).__name__}, expected a JSON object"
                raise InputError(msg)
            found = [t for f in fields for t in _texts_of(_field(record, f))]
            skipped += not found
            texts.extend(found)
        if skipped:
            logger.info("%s: %d records had none of the fields %s", file, skipped, list(fields))
        return cls(tuple(texts), name=f"jsonl:{file}:{','.join(fields)}")

    @classmethod
    def from_documents(cls, documents: Iterable[Any], *, name: str = "documents") -> TextCorpus:
        """``page_content`` of LangChain-style documents (any object with that attribute)."""
        texts = []
        for i, doc in enumerate(documents):
            content = getattr(doc, "page_content", None)
            if not isinstance(content, str):
                msg = f"document {i} has no string page_content ({type(doc).__name__})"
                raise InputError(msg)
            texts.append(content)
        return cls(tuple(texts), name=name)

    @classmethod
    def from_exchanges(
        cls,
        examples: Iterable[Any],
        *,
        parts: Sequence[str] = ("contexts", "response"),
        name: str = "exchanges",
    ) -> TextCorpus:
        """The contexts and/or responses of labeled exchanges (``calibration`` examples).

        Each context is a document of its own, and so is each response. A context shared by
        several examples (RAGTruth gives one source to six responses) is kept once.
        """
        wanted = set(parts)
        if not wanted or not wanted <= {"contexts", "response", "question"}:
            msg = f"parts must be a non-empty subset of contexts, response, question; got {parts}"
            raise InputError(msg)
        seen: set[str] = set()
        texts: list[str] = []
        for example in examples:
            found: list[str] = []
            if "question" in wanted:
                found.extend(_texts_of(getattr(example, "question", None)))
            if "contexts" in wanted:
                found.extend(_texts_of(list(getattr(example, "contexts", None) or [])))
            if "response" in wanted:
                found.extend(_texts_of(getattr(example, "response", None)))
            for text in found:
                if text not in seen:
                    seen.add(text)
                    texts.append(text)
        return cls(tuple(texts), name=name)

    # ------------------------------------------------------------------ combining / splitting
    def plus(self, other: TextCorpus) -> TextCorpus:
        """This corpus followed by ``other``."""
        return TextCorpus(self.texts + other.texts, name=f"{self.name}+{other.name}")

    def split_heldout(self, fraction: float) -> tuple[TextCorpus, TextCorpus]:
        """``(train, heldout)``: a document is held out when its text hash falls below
        ``fraction``. With ``fraction > 0`` and two or more distinct documents, at least one
        is held out and at least one is kept.
        """
        if not 0 <= fraction < 1:
            msg = f"the held-out fraction must lie in [0, 1), got {fraction!r}"
            raise InputError(msg)
        position = {t: int(_doc_hash(t)[:8], 16) / _HASH_SPAN for t in self.texts}
        held = {t for t, p in position.items() if p < fraction}
        if fraction > 0 and len(position) >= 2:
            ordered = sorted(position, key=lambda t: position[t])
            if not held:
                held = {ordered[0]}
            if len(held) == len(position):
                held.discard(ordered[-1])
        train = tuple(t for t in self.texts if t not in held)
        heldout = tuple(t for t in self.texts if t in held)
        return (
            TextCorpus(train, name=f"{self.name}[train]"),
            TextCorpus(heldout, name=f"{self.name}[heldout]"),
        )
