"""Activations streamed for training: text windows read by a :class:`~scope_guard.reader.Reader`.

A document is tokenized as plain text (no chat template; special-token strings inside it stay
text), cut into windows of ``context_size - 1`` tokens, and each window is read with BOS in
front, the way Gemma Scope's SAEs were trained. BOS and padding never leave this module: only
the positions of the window's own tokens are captured. Windows are read a group at a time,
sorted by length, so batches carry little padding. Documents are visited in a seeded order that
changes every pass over the corpus; the cursor ``(pass, document, window)`` is all a checkpoint
needs to continue the stream exactly.

Activations stay in the reader's dtype (bf16 for a bf16 reader): the trainer casts to float32.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from scope_guard.errors import ConfigError, InputError
from scope_guard.reader import Reader
from scope_guard.reader.hooks import capture_sites, run_until_stopped, site_module
from scope_guard.sae.training.corpus import TextCorpus
from scope_guard.sites import Site

__all__ = [
    "ActivationSource",
    "ReaderActivations",
    "TensorActivations",
    "TokenWindow",
    "read_windows",
    "text_windows",
    "tokenize_text",
]

logger = logging.getLogger(__name__)


class ActivationSource(Protocol):
    """What the trainer reads from: rows of activations, in a resumable order."""

    @property
    def d_model(self) -> int:
        """Width of the rows."""
        ...

    @property
    def passes(self) -> int:
        """Passes over the underlying data begun so far (1 during the first)."""
        ...

    def read_chunk(self) -> torch.Tensor:
        """The next rows, shape ``(n, d_model)`` with ``n >= 1``, on the CPU."""
        ...

    def state(self) -> dict[str, int]:
        """The cursor, JSON-ready; :meth:`restore` of it continues at the same row."""
        ...

    def restore(self, state: dict[str, int]) -> None:
        """Continue from a cursor :meth:`state` returned."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the rows are, for the training manifest."""
        ...


@dataclass(frozen=True)
class TokenWindow:
    """A run of one document's tokens, read as one sequence (BOS is added at read time).

    Attributes:
        doc: Index of the document in its corpus.
        start: Index of the window's first token in the document's tokens.
        ids: The token ids (no BOS).
    """

    doc: int
    start: int
    ids: tuple[int, ...]


def tokenize_text(tokenizer: Any, text: str) -> list[int]:
    """Plain-text token ids of ``text``: no special tokens added, none recognised inside."""
    ids = tokenizer(text, add_special_tokens=False, split_special_tokens=True, verbose=False)
    special = {tokenizer.bos_token_id, tokenizer.pad_token_id} - {None}
    return [int(i) for i in ids["input_ids"] if i not in special]


def text_windows(tokenizer: Any, text: str, doc: int, context_size: int) -> list[TokenWindow]:
    """Cut a document into windows that fit ``context_size`` with BOS in front."""
    room = context_size - (tokenizer.bos_token_id is not None)
    ids = tokenize_text(tokenizer, text)
    return [
        TokenWindow(doc=doc, start=s, ids=tuple(ids[s : s + room]))
        for s in range(0, len(ids), room)
    ]


def read_windows(reader: Reader, site: Site, windows: Sequence[TokenWindow]) -> list[torch.Tensor]:
    """Read windows in one stopped forward pass; per window its tokens' activations at ``site``.

    As in :class:`~scope_guard.reader.Reader`, no attention mask is passed: padding sits on the
    right, where causal attention keeps every real token from seeing it, and a mask would move
    SDPA off its causal fast path.

    Returns:
        One ``(len(window.ids), d)`` tensor per window, in the reader's dtype, on the CPU.
    """
    if not windows:
        return []
    bos = reader.tokenizer.bos_token_id
    prefix = [] if bos is None else [int(bos)]
    width = len(prefix) + max(len(w.ids) for w in windows)
    ids = torch.full((len(windows), width), reader.pad_token_id, dtype=torch.long)
    rows: list[int] = []
    cols: list[int] = []
    for b, window in enumerate(windows):
        seq = [*prefix, *window.ids]
        ids[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        rows.extend([b] * len(window.ids))
        cols.extend(range(len(prefix), len(seq)))
    device = reader.device
    # The reader's pass lock: hooks go on the shared model, so no other pass may run meanwhile.
    with (
        reader._lock,
        torch.inference_mode(),
        capture_sites(
            reader.layers,
            (site,),
            torch.tensor(rows, device=device),
            torch.tensor(cols, device=device),
        ) as captured,
    ):
        run_until_stopped(
            reader.decoder,
            input_ids=ids.to(device),
            use_cache=False,
        )
    acts = captured[site].to("cpu")
    return list(torch.split(acts, [len(w.ids) for w in windows]))


def check_site(reader: Reader, site: Site | str) -> Site:
    """The site, parsed, if the reader's loaded layers can be hooked there.

    Raises:
        ConfigError: the site is malformed, or beyond the reader's layers, or the layer lacks
            the module the site's kind needs.
    """
    parsed = Site.parse(site)
    try:
        site_module(reader.layers, parsed)
    except ConfigError as exc:
        have = ", ".join(str(s) for s in reader.sites)
        msg = f"the reader {reader.name!r} cannot provide site {parsed}: {exc} (it reads: {have})"
        raise ConfigError(msg) from exc
    return parsed


class ReaderActivations:
    """Training activations read from a corpus by a reader, pass after pass.

    Args:
        reader: The reader (any dtype; bf16 is the intended one).
        site: Where to read; the reader's loaded layers must reach it.
        corpus: The documents; at least one must hold a token.
        context_size: Tokens per sequence, BOS included (>= 2).
        seed: Seed of the document order (one permutation per pass).
        windows_per_read: Windows per :meth:`read_chunk`, sorted by length into forward passes.
        batch_size: Windows per forward pass.

    Raises:
        ConfigError: a bad site, size or batch size.
        InputError: an empty corpus.
    """

    def __init__(
        self,
        reader: Reader,
        site: Site | str,
        corpus: TextCorpus,
        *,
        context_size: int = 256,
        seed: int = 0,
        windows_per_read: int = 32,
        batch_size: int = 8,
    ) -> None:
        self.site = check_site(reader, site)
        corpus.require_text()
        for name, value, low in (
            ("context_size", context_size, 2),
            ("windows_per_read", windows_per_read, 1),
            ("batch_size", batch_size, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                msg = f"{name} must be an integer >= {low}, got {value!r}"
                raise ConfigError(msg)
        self.reader = reader
        self.corpus = corpus
        self.context_size = context_size
        self.seed = seed
        self.windows_per_read = windows_per_read
        self.batch_size = batch_size
        self._pass = 0
        self._doc = 0
        self._window = 0
        self._order = self._permutation(0)
        self._pending: list[TokenWindow] = []  # windows of the current document not yet read
        self._tokens_this_pass = 0

    @property
    def d_model(self) -> int:
        return self.reader.site_dim(self.site)

    @property
    def passes(self) -> int:
        return self._pass + 1

    def _permutation(self, n_pass: int) -> list[int]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + n_pass)
        return torch.randperm(len(self.corpus), generator=gen).tolist()

    def _load_document(self) -> None:
        doc = self._order[self._doc]
        windows = text_windows(
            self.reader.tokenizer, self.corpus.texts[doc], doc, self.context_size
        )
        self._pending = windows[self._window :]

    def _next_window(self) -> TokenWindow:
        while not self._pending:
            if self._doc >= len(self._order):
                if self._tokens_this_pass == 0:
                    msg = f"the corpus {self.corpus.name!r} tokenizes to no tokens at all"
                    raise InputError(msg)
                self._pass += 1
                self._order = self._permutation(self._pass)
                self._doc = self._window = self._tokens_this_pass = 0
                logger.info("starting pass %d over the corpus", self._pass + 1)
            self._load_document()
            if not self._pending:
                self._doc += 1
                self._window = 0
        window = self._pending.pop(0)
        self._window += 1
        self._tokens_this_pass += len(window.ids)
        if not self._pending:
            self._doc += 1
            self._window = 0
        return window

    def read_chunk(self) -> torch.Tensor:
        windows = [self._next_window() for _ in range(self.windows_per_read)]
        windows.sort(key=lambda w: (-len(w.ids), w.doc, w.start))
        parts: list[torch.Tensor] = []
        for start in range(0, len(windows), self.batch_size):
            parts.extend(
                read_windows(self.reader, self.site, windows[start : start + self.batch_size])
            )
        return torch.cat(parts)

    def state(self) -> dict[str, int]:
        return {
            "pass": self._pass,
            "doc": self._doc,
            "window": self._window,
            "tokens_this_pass": self._tokens_this_pass,
        }

    def restore(self, state: dict[str, int]) -> None:
        self._pass = int(state["pass"])
        self._doc = int(state["doc"])
        self._window = int(state["window"])
        self._tokens_this_pass = int(state["tokens_this_pass"])
        self._order = self._permutation(self._pass)
        self._pending = []
        if self._window and self._doc < len(self._order):
            self._load_document()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "reader",
            "site": str(self.site),
            "corpus": self.corpus.name,
            "corpus_sha256": self.corpus.sha256,
            "n_documents": len(self.corpus),
            "context_size": self.context_size,
            "reader_dtype": str(self.reader.dtype).removeprefix("torch."),
        }


class TensorActivations:
    """Rows of a tensor given in memory, in order, cycled (the shuffling buffer mixes them).

    Args:
        activations: Shape ``(n_tokens, d_model)``, at least one row.
        chunk_tokens: Rows per :meth:`read_chunk`.
        name: A label for the manifest.
    """

    def __init__(
        self, activations: torch.Tensor, *, chunk_tokens: int = 4096, name: str = "tensor"
    ) -> None:
        if activations.ndim != 2 or activations.shape[0] == 0:
            shape = tuple(activations.shape)
            msg = f"activations must be a non-empty (n_tokens, d_model) tensor, got {shape}"
            raise InputError(msg)
        self.activations = activations.detach().cpu()
        self.chunk_tokens = chunk_tokens
        self.name = name
        self._pass = 0
        self._row = 0

    @property
    def d_model(self) -> int:
        return int(self.activations.shape[1])

    @property
    def passes(self) -> int:
        return self._pass + 1

    def read_chunk(self) -> torch.Tensor:
        if self._row >= self.activations.shape[0]:
            self._pass += 1
            self._row = 0
        chunk = self.activations[self._row : self._row + self.chunk_tokens]
        self._row += int(chunk.shape[0])
        return chunk

    def state(self) -> dict[str, int]:
        return {"pass": self._pass, "row": self._row}

    def restore(self, state: dict[str, int]) -> None:
        self._pass, self._row = int(state["pass"]), int(state["row"])

    def describe(self) -> dict[str, Any]:
        return {"kind": "tensor", "name": self.name, "n_tokens": int(self.activations.shape[0])}
