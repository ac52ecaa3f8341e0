"""Readers for the labeled grounding datasets (RAGTruth, SummEdits, WiCE, BEGIN).

Each reader turns a file (or a folder of files) into :class:`Example` rows with a common shape:
label 1 means the response is NOT supported by its contexts (hallucinated / inconsistent /
not attributable). The data is read from the path given on the command line; nothing is copied.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

__all__ = ["FORMATS", "Example", "load"]


class Example(NamedTuple):
    """One labeled response."""

    id: str
    task: str
    """Task type or domain, for per-task metrics."""
    group: str
    """Source document id: rows sharing it never straddle a CV split."""
    question: str | None
    contexts: list[str]
    response: str
    label: int
    """1 = unsupported / hallucinated, 0 = supported."""
    spans: list[tuple[int, int]] | None
    """Gold unsupported character spans in ``response`` (RAGTruth only)."""


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=8).hexdigest()


def _files(path: Path, pattern: str) -> list[Path]:
    return sorted(path.glob(pattern)) if path.is_dir() else [path]


def load_ragtruth(path: Path) -> list[Example]:
    """RAGTruth JSONL: one response per line, span labels, group = the source context."""
    out = []
    for f in _files(path, "*.jsonl"):
        for line in f.open(encoding="utf-8"):
            row = json.loads(line)
            spans = [(int(lab["start"]), int(lab["end"])) for lab in row.get("labels") or []]
            out.append(
                Example(
                    id=str(row["id"]),
                    task=row["task_type"],
                    group=_digest(row["context"]),
                    question=row.get("query"),
                    contexts=[row["context"]],
                    response=row["response"],
                    label=int(bool(row["hallucinated"])),
                    spans=spans,
                )
            )
    return out


def load_summedits(path: Path) -> list[Example]:
    """SummEdits JSON lists (a file or the folder of ``summedits_*.json``); label 0 = consistent."""
    out = []
    for f in _files(path, "summedits_*.json"):
        domain = f.stem.removeprefix("summedits_")
        for row in json.loads(f.read_text(encoding="utf-8")):
            out.append(
                Example(
                    str(row["id"]),
                    domain,
                    _digest(row["doc"]),
                    None,
                    [row["doc"]],
                    row["summary"],
                    1 - int(row["label"]),
                    None,
                )
            )
    return out


def load_wice(path: Path) -> list[Example]:
    """WiCE oracle chunks: rows of one claim are merged (evidence of all its chunks as contexts).

    Label 1 unless ``supported`` (partially supported counts as unsupported).
    """
    claims: dict[str, dict] = {}
    for f in _files(path, "*.jsonl"):
        for line in f.open(encoding="utf-8"):
            row = json.loads(line)
            key = row["meta"]["id"]
            entry = claims.setdefault(key, {"row": row, "evidence": []})
            entry["evidence"].extend(e for e in row["evidence"] if e not in entry["evidence"])
    out = []
    for key, entry in claims.items():
        row = entry["row"]
        title = row["meta"].get("claim_title", "")
        out.append(
            Example(
                key,
                "WiCE",
                _digest(title or key),
                None,
                ["\n".join(entry["evidence"])],
                row["claim"],
                int(row["label"] != "supported"),
                None,
            )
        )
    return out


def load_begin(path: Path) -> list[Example]:
    """BEGIN TSVs: label 1 = "Not fully attributable"; "Generic" responses (no claim) dropped."""
    out = []
    for f in _files(path, "*.tsv"):
        with f.open(encoding="utf-8", newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh, delimiter="\t")):
                if row["begin_label"] == "Generic":
                    continue
                out.append(
                    Example(
                        f"{f.stem}-{i}",
                        row["data_source"],
                        _digest(row["knowledge"]),
                        row["message"],
                        [row["knowledge"]],
                        row["response"],
                        int(row["begin_label"] != "Fully attributable"),
                        None,
                    )
                )
    return out


FORMATS: dict[str, Callable[[Path], list[Example]]] = {
    "ragtruth": load_ragtruth,
    "summedits": load_summedits,
    "wice": load_wice,
    "begin": load_begin,
}


def load(path: str | Path, fmt: str) -> list[Example]:
    """Read ``path`` in format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        msg = f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}"
        raise ValueError(msg)
    p = Path(path)
    if not p.exists():
        msg = f"no such file or folder: {p}"
        raise FileNotFoundError(msg)
    return FORMATS[fmt](p)
