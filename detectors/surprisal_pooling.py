"""The columns of a ``surprisal`` block: the reader's per-token surprise pooled over a response.

From each response token's surprisal ``s_i = -log p(token_i | prefix)`` and the entropy ``h_i``
of the distribution it was drawn from (nats; :mod:`scope_guard.reader.surprisal`):

- ``mean``: mean of ``s_i``, the response's cross-entropy under the reader;
- ``max``: the single most surprising token;
- ``top5_mean``: mean of the 5 largest ``s_i`` (all of them when fewer), a few surprising
  tokens (a made-up name or number) that the mean dilutes;
- ``frac_above_T`` for each threshold ``T``: share of tokens with ``s_i > T`` (``T`` = 2, 5,
  10 nats by default: unexpected, rare, nearly never predicted);
- ``entropy_mean``: mean of ``h_i``, how unsure the reader was where the text would go (high
  entropy with low surprisal is free text the context does not pin down).

A response with no tokens gives zeros. For per-token rows each token stands for the whole
(mean = max = top-5 mean = its ``s_i``, each share its indicator, ``entropy_mean`` its ``h_i``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MAX_THRESHOLDS",
    "SURPRISAL_VERSION",
    "TOP_K",
    "surprisal_column_names",
    "surprisal_columns",
    "surprisal_token_rows",
]

SURPRISAL_VERSION = 1
"""Version of the column definitions: a bundle of another version is refused."""
DEFAULT_THRESHOLDS = (2.0, 5.0, 10.0)
TOP_K = 5
MAX_THRESHOLDS = 16
"""Most ``frac_above`` columns one block may declare (a hostile bundle cannot ask for more)."""
_FIXED = ("mean", "max", f"top{TOP_K}_mean")


def surprisal_column_names(thresholds: Sequence[float]) -> list[str]:
    """Column names, in order: ``mean, max, top5_mean, frac_above_T..., entropy_mean``."""
    return [*_FIXED, *(f"frac_above_{t:g}" for t in thresholds), "entropy_mean"]


def _pairs(surprisal: np.ndarray, entropy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(surprisal, dtype=np.float64).reshape(-1)
    h = np.asarray(entropy, dtype=np.float64).reshape(-1)
    if s.shape != h.shape:
        msg = f"{s.size} surprisal values for {h.size} entropies"
        raise ValueError(msg)
    return s, h


def surprisal_columns(
    surprisal: np.ndarray, entropy: np.ndarray, thresholds: Sequence[float]
) -> np.ndarray:
    """The pooled columns of one response, ``(4 + len(thresholds),)`` float64.

    Args:
        surprisal: ``(n_tokens,)`` per-token surprisal, nats.
        entropy: ``(n_tokens,)`` per-token entropy, nats.
        thresholds: Nats thresholds of the ``frac_above`` columns.
    """
    s, h = _pairs(surprisal, entropy)
    width = len(_FIXED) + len(thresholds) + 1
    if s.size == 0:
        return np.zeros(width)
    top = np.sort(s)[-TOP_K:]
    fractions = [float(np.mean(s > t)) for t in thresholds]
    return np.array([s.mean(), s.max(), top.mean(), *fractions, h.mean()], dtype=np.float64)


def surprisal_token_rows(
    surprisal: np.ndarray, entropy: np.ndarray, thresholds: Sequence[float]
) -> np.ndarray:
    """``(n_tokens, 4 + len(thresholds))``: each token's own values standing for every column."""
    s, h = _pairs(surprisal, entropy)
    above = [(s > t).astype(np.float64) for t in thresholds]
    return np.stack([s, s, s, *above, h], axis=1)
