"""Per-token risk as character spans of the response, for a UI to highlight.

A reading's token offsets index the response text (``response[start:end]`` is the token), so a
detector's per-token risk becomes ``(start, end, risk)`` spans of the text the guard assessed;
runs of tokens at or above a threshold merge into the predicted risky spans. Spans are plain
triples (:data:`scope_guard.types.Span`), computed with numpy: one per response token, so they
must cost next to nothing beside the score itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import NamedTuple

import numpy as np

from scope_guard.types import Span

__all__ = ["TokenSpans", "token_spans"]


class TokenSpans(NamedTuple):
    """A response's per-token risk as spans.

    Attributes:
        tokens: One ``(start, end, risk)`` per token that covers characters, in order.
        risky: Runs of consecutive tokens with risk ``>= threshold``, each ``(start of its
            first token, end of its last, its riskiest token's risk)``. A token joins the run
            of the token just before it when it starts at most one character after that one
            ends (a space between words does not break a run).
    """

    tokens: tuple[Span, ...]
    risky: tuple[Span, ...]


def token_spans(
    offsets: Sequence[tuple[int, int]], risks: Sequence[float] | np.ndarray, threshold: float
) -> TokenSpans:
    """The spans of per-token ``risks`` at character ``offsets``; zero-width tokens left out.

    Raises:
        ValueError: ``offsets`` and ``risks`` differ in length.
    """
    if len(offsets) != len(risks):
        msg = f"{len(offsets)} token offsets but {len(risks)} token risks"
        raise ValueError(msg)
    # fromiter: a reading's offsets are a tuple of pairs, which np.asarray reads 2x slower
    flat = chain.from_iterable(offsets)
    where = np.fromiter(flat, dtype=np.int64, count=2 * len(offsets)).reshape(-1, 2)
    risk = np.asarray(risks, dtype=np.float64).reshape(-1)
    wide = where[:, 1] > where[:, 0]
    starts, ends, risk = where[wide, 0], where[wide, 1], risk[wide]
    tokens = tuple(zip(starts.tolist(), ends.tolist(), risk.tolist(), strict=True))
    hot = risk >= threshold
    joins = np.zeros_like(hot)
    joins[1:] = hot[1:] & hot[:-1] & (starts[1:] <= ends[:-1] + 1)
    members = np.flatnonzero(hot)
    if members.size == 0:
        return TokenSpans(tokens, ())
    firsts = np.flatnonzero(hot & ~joins)
    cuts = np.searchsorted(members, firsts)  # where each run starts among the hot tokens
    run_ends = np.maximum.reduceat(ends[members], cuts)
    run_risks = np.maximum.reduceat(risk[members], cuts)
    risky = tuple(zip(starts[firsts].tolist(), run_ends.tolist(), run_risks.tolist(), strict=True))
    return TokenSpans(tokens, risky)
