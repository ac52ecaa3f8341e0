"""WiCE (ryokamoi/wice): Wikipedia claims checked against the sentences of their cited pages.

Input: JSON lines (a file, or a folder of ``*.jsonl``) with ``label`` (supported |
partially_supported | not_supported), ``claim``, ``evidence`` (a list of sentences) and ``meta``
(``id``, ``claim_title``, ``claim_section``, ``chunk_idx``: each evidence sentence's index in the
cited page). The oracle-chunk files hold several rows per claim (different evidence chunks, same
claim and label); they are aggregated per claim (``meta.id``).

Mapping, one example per claim:

- ``id`` = ``meta.id``; ``response`` = ``claim``; ``question`` = "".
- ``contexts`` = the union of the claim's evidence sentences, one context per sentence, in page
  order (by ``chunk_idx`` when every row has it, else in order of first appearance), each once.
- ``labels``: ``fabrication`` = 0 for supported, 1 for not_supported, and ``partial_label``
  (default 1) for partially_supported: a claim with an unsupported part states something its
  evidence does not support, which is what fabrication means here. ``partial_label=0`` counts
  such claims as supported, ``None`` leaves them out.
- ``group`` = ``meta.claim_title`` (the Wikipedia article): claims of one article often cite the
  same pages. Falls back to the claim id.
- ``meta``: ``claim_title``, ``claim_section``, ``wice_label`` and ``n_chunks`` (rows merged).

Rows of one claim that disagree on ``claim`` or ``label`` are reported, naming both lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from calibration.adapters._common import Collector, iter_json_lines, resolve_files
from calibration.labeled import LabeledDataset
from scope_guard.errors import ConfigError
from scope_guard.risks import Risk

__all__ = ["load"]

WiceLabel = Literal["supported", "partially_supported", "not_supported"]


class _Meta(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    claim_title: str | None = None
    claim_section: str | None = None
    chunk_idx: list[int] | None = None


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore")

    label: WiceLabel
    claim: str
    evidence: list[str]
    meta: _Meta


@dataclass
class _Claim:
    first: _Row
    file: Path
    line: int
    rows: list[_Row] = field(default_factory=list)

    def evidence(self) -> list[str]:
        """Each evidence sentence once, in page order where every row gives the indices."""
        pairs = [(r.meta.chunk_idx, r.evidence) for r in self.rows]
        if all(idx is not None and len(idx) == len(ev) for idx, ev in pairs):
            by_index = {i: s for idx, ev in pairs for i, s in zip(idx or [], ev, strict=True)}
            return [by_index[i] for i in sorted(by_index)]
        return list(dict.fromkeys(s for _, ev in pairs for s in ev))


def load(path: Path, *, strict: bool = True, partial_label: int | None = 1) -> LabeledDataset:
    """Read WiCE claims; see the module docstring for the mapping.

    Args:
        path: A WiCE ``.jsonl`` file, or a folder of them.
        strict: Raise on any bad record (default); ``False`` logs and skips bad records.
        partial_label: Fabrication label of partially_supported claims: 1 (default), 0, or
            ``None`` to leave them out.

    Raises:
        ConfigError: for a ``partial_label`` other than None, 0 or 1.
        DataError: listing every bad record as ``file:line: message``.
    """
    if partial_label not in (None, 0, 1):
        msg = f"partial_label must be None, 0 or 1, got {partial_label!r}"
        raise ConfigError(msg)
    to_label = {"supported": 0, "not_supported": 1, "partially_supported": partial_label}
    collector = Collector("wice", path)
    claims: dict[str, _Claim] = {}
    for file in resolve_files(path, "*.jsonl"):
        for lineno, raw in iter_json_lines(file, collector):
            row = collector.parse(_Row, raw, file, lineno)
            if row is None:
                continue
            claim = claims.setdefault(row.meta.id, _Claim(row, file, lineno))
            for name in ("claim", "label"):
                if getattr(row, name) != getattr(claim.first, name):
                    collector.problem(
                        file,
                        lineno,
                        f"claim {row.meta.id!r}: {name} differs from line {claim.line} "
                        f"of {claim.file.name}",
                    )
                    break
            else:
                claim.rows.append(row)
    for claim_id, claim in claims.items():
        label = to_label[claim.first.label]
        if label is None:
            continue
        meta = claim.first.meta
        fields = {
            "id": claim_id,
            "contexts": claim.evidence(),
            "response": claim.first.claim,
            "labels": {Risk.FABRICATION: label},
            "group": meta.claim_title or claim_id,
            "meta": {
                "claim_title": meta.claim_title,
                "claim_section": meta.claim_section,
                "wice_label": claim.first.label,
                "n_chunks": len(claim.rows),
            },
        }
        collector.add(claim.file, claim.line, fields)
    return collector.finish(strict=strict)
