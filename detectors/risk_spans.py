"""Per-token risk as character spans of the response, for a UI to highlight.

A reading's token offsets index the response text (``response[start:end]`` is the token), so a
detector's per-token risk becomes ``(start, end, risk)`` spans of the text the guard assessed;
runs of tokens at or above a threshold merge into the predicted risky spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["RiskSpan", "risky_spans", "token_spans"]


class RiskSpan(NamedTuple):
    """Characters ``start:end`` of the response and their risk in [0, 1]."""

    start: int
    end: int
    risk: float


def token_spans(offsets: Sequence[tuple[int, int]], risks: Sequence[float]) -> tuple[RiskSpan, ...]:
    """One span per token that covers characters (zero-width tokens are left out).

    Raises:
        ValueError: ``offsets`` and ``risks`` differ in length.
    """
    if len(offsets) != len(risks):
        msg = f"{len(offsets)} token offsets but {len(risks)} token risks"
        raise ValueError(msg)
    return tuple(
        RiskSpan(int(a), int(b), float(r))
        for (a, b), r in zip(offsets, risks, strict=True)
        if b > a
    )


def risky_spans(spans: Sequence[RiskSpan], threshold: float) -> tuple[RiskSpan, ...]:
    """Runs of consecutive token spans with risk ``>= threshold``, merged; each run's risk is
    its riskiest token's. Tokens at most one character apart (a space) join one run."""
    out: list[RiskSpan] = []
    previous_risky = False
    for span in spans:
        if span.risk < threshold:
            previous_risky = False
            continue
        if out and previous_risky and span.start <= out[-1].end + 1:
            last = out[-1]
            out[-1] = RiskSpan(last.start, max(last.end, span.end), max(last.risk, span.risk))
        else:
            out.append(span)
        previous_risky = True
    return tuple(out)
