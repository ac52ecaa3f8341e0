"""Explaining latents without Neuronpedia: each latent's top-activating contexts in the corpus.

For every latent, the ``top_k`` tokens of the scanned corpus where it fires most, each with a
few tokens either side, are saved beside the SAE as ``explanations.json``; :func:`load_explanations`
reads them back and :meth:`LatentContext.render` shows one with the token highlighted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from scope_guard.errors import ArtifactError
from scope_guard.reader import Reader
from scope_guard.sae.jumprelu import JumpReLUSAE
from scope_guard.sae.training.stream import TokenWindow, read_windows
from scope_guard.safe_files import read_json_object

__all__ = ["EXPLANATIONS_FILE", "LatentContext", "load_explanations", "top_contexts"]

logger = logging.getLogger(__name__)

EXPLANATIONS_FILE = "explanations.json"


class LatentContext(NamedTuple):
    """One top-activating token of a latent.

    Attributes:
        activation: The latent's code at the token (raw-activation units).
        doc: Document index in the scanned corpus.
        position: Token index in that document.
        before: Text of the tokens just before.
        token: Text of the token itself.
        after: Text of the tokens just after.
    """

    activation: float
    doc: int
    position: int
    before: str
    token: str
    after: str

    def render(self, marker: str = "[[{}]]") -> str:
        """``before [[token]] after`` on one line."""
        text = self.before + marker.format(self.token) + self.after
        return " ".join(text.split())


@torch.inference_mode()
def top_contexts(
    sae: JumpReLUSAE,
    reader: Reader,
    windows: Sequence[TokenWindow],
    *,
    top_k: int = 8,
    radius: int = 6,
    batch_size: int = 8,
) -> dict[int, list[LatentContext]]:
    """The ``top_k`` most activating tokens of every latent over ``windows``.

    Args:
        sae: A full SAE whose ``info.site`` is set.
        reader: The reader that produced its training activations.
        windows: The text to scan.
        top_k: Contexts kept per latent.
        radius: Tokens shown either side (only within the token's window).
        batch_size: Windows per forward pass.

    Returns:
        Latent id -> contexts, strongest first; latents that never fire are left out.
    """
    site = sae.info.site
    if site is None:
        msg = "top_contexts needs the SAE's site (info.site is None)"
        raise ArtifactError(msg)
    n_latents = sae.n_latents
    best = torch.full((n_latents, top_k), -1.0)
    where = torch.full((n_latents, top_k), -1, dtype=torch.long)  # global token index
    spans: list[tuple[int, int]] = []  # global token index -> (window, position in window)
    for first in range(0, len(windows), batch_size):
        chunk = windows[first : first + batch_size]
        acts = read_windows(reader, site, chunk)
        for offset, rows in enumerate(acts):
            spans.extend((first + offset, p) for p in range(rows.shape[0]))
        codes = sae.encode(torch.cat(acts).float()).cpu()  # (n, n_latents)
        base = len(spans) - codes.shape[0]
        k = min(top_k, codes.shape[0])
        values, index = codes.topk(k, dim=0)  # (k, n_latents)
        merged_v = torch.cat([best, values.T], dim=1)
        merged_i = torch.cat([where, index.T + base], dim=1)
        order = merged_v.topk(top_k, dim=1).indices
        best, where = merged_v.gather(1, order), merged_i.gather(1, order)
    tokenizer = reader.tokenizer
    out: dict[int, list[LatentContext]] = {}
    for latent in range(n_latents):
        found = []
        for value, token_index in zip(best[latent].tolist(), where[latent].tolist(), strict=True):
            if value <= 0 or token_index < 0:
                continue
            w, p = spans[token_index]
            ids = windows[w].ids
            found.append(
                LatentContext(
                    activation=float(value),
                    doc=windows[w].doc,
                    position=windows[w].start + p,
                    before=tokenizer.decode(list(ids[max(0, p - radius) : p])),
                    token=tokenizer.decode([ids[p]]),
                    after=tokenizer.decode(list(ids[p + 1 : p + 1 + radius])),
                )
            )
        if found:
            out[int(sae.latent_ids[latent])] = found
    logger.info("top contexts of %d of %d latents over %d tokens", len(out), n_latents, len(spans))
    return out


def write_explanations(
    folder: str | Path, contexts: dict[int, list[LatentContext]], meta: dict[str, Any]
) -> Path:
    """Write ``explanations.json`` into ``folder``."""
    payload = {
        **meta,
        "latents": {str(k): [c._asdict() for c in v] for k, v in sorted(contexts.items())},
    }
    path = Path(folder) / EXPLANATIONS_FILE
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def load_explanations(folder: str | Path) -> dict[int, list[LatentContext]]:
    """Read the top contexts saved beside an SAE (``{}`` when there are none).

    Raises:
        ArtifactError: the file exists but is malformed.
    """
    path = Path(folder)
    path = path / EXPLANATIONS_FILE if path.is_dir() else path.parent / EXPLANATIONS_FILE
    if not path.exists():
        return {}
    # Saved beside a downloadable SAE: read with the bounds of every artifact (confined to its
    # folder, a regular file, bounded size and depth).
    data = read_json_object(path, root=path.parent, what="latent explanations", max_bytes=256 << 20)
    try:
        latents = data["latents"]
        return {
            int(k): [
                LatentContext(
                    activation=float(c["activation"]),
                    doc=int(c["doc"]),
                    position=int(c["position"]),
                    before=str(c["before"]),
                    token=str(c["token"]),
                    after=str(c["after"]),
                )
                for c in v
            ]
            for k, v in latents.items()
        }
    except (
        OSError,
        UnicodeDecodeError,
        json.JSONDecodeError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
    ) as exc:
        msg = f"cannot read latent explanations from {path}: {exc}"
        raise ArtifactError(msg) from exc
