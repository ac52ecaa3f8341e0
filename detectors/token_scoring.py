"""A token-level probe's scoring half: per-token risk from a fitted logistic direction, and
its response-level aggregates.

Fitting lives in :mod:`calibration.token_probe`; this half travels in a detector bundle (as a
``tokens`` feature block) and scores live requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AGGREGATES", "TokenProbe", "aggregate_scores"]

AGGREGATES = ("max", "top5_mean", "frac_above_half", "mean")
"""Names of the response-level features of one token probe, in column order."""

_TOP_K = 5


@dataclass(frozen=True)
class TokenProbe:
    """A fitted per-token logistic probe over standardized activations.

    Attributes:
        weights: ``(d,)`` coefficients on standardized inputs.
        bias: The intercept.
        mean: ``(d,)`` per-dimension mean of the training tokens.
        scale: ``(d,)`` per-dimension standard deviation (1 where a dimension is constant).
    """

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray

    def logits(self, acts: np.ndarray) -> np.ndarray:
        """``(n_tokens,)`` decision scores of ``(n_tokens, d)`` activations."""
        x = (np.asarray(acts, dtype=np.float64) - self.mean) / self.scale
        return np.asarray(x @ self.weights + self.bias, dtype=np.float64)

    def token_scores(self, acts: np.ndarray) -> np.ndarray:
        """``(n_tokens,)`` probabilities that each token is inside a span."""
        z = np.clip(self.logits(acts), -50.0, 50.0)
        return 1.0 / (1.0 + np.exp(-z))


def aggregate_scores(scores: np.ndarray) -> np.ndarray:
    """The response-level features of one response's token scores, in :data:`AGGREGATES` order.

    An empty response aggregates to zeros (a defined result, not an error).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        return np.zeros(len(AGGREGATES))
    top = np.sort(s)[-_TOP_K:]
    return np.array([s.max(), top.mean(), float(np.mean(s >= 0.5)), s.mean()])
