"""Builders of synthetic labeled data with a known answer, for the calibration tests."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

PLANTED_WEIGHTS = np.array([4.0, -3.0, 3.0, 5.0, -4.0])
PLANTED_INTERCEPT = -2.0


class PlantedData(NamedTuple):
    """Rows whose labels follow a logistic model over a few planted sparse features."""

    X: sp.csr_matrix
    """``(n, n_features)`` non-negative sparse features, like pooled SAE codes."""
    y: np.ndarray
    """``(n,)`` labels drawn from ``sigmoid(logit)``."""
    logit: np.ndarray
    """``(n,)`` the true logit (the Bayes-optimal score)."""
    planted: np.ndarray
    """Indices of the features the labels depend on."""
    groups: np.ndarray
    """``(n,)`` group ids: consecutive blocks of ``group_size`` rows."""


def make_planted(
    n: int,
    *,
    n_features: int = 200,
    density: float = 0.2,
    group_size: int = 5,
    seed: int = 0,
) -> PlantedData:
    """Draw ``n`` rows; five planted features, evenly spread (``n_features >= 10``).

    Each feature is active with probability ``density`` with an Exp(1) value when active.
    """
    rng = np.random.default_rng(seed)
    active = rng.random((n, n_features)) < density
    values = np.where(active, rng.exponential(1.0, size=(n, n_features)), 0.0)
    step = n_features // PLANTED_WEIGHTS.size
    planted = np.arange(PLANTED_WEIGHTS.size) * step + step // 2
    logit = values[:, planted] @ PLANTED_WEIGHTS + PLANTED_INTERCEPT
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    groups = np.arange(n) // group_size + seed * 1_000_000
    return PlantedData(sp.csr_matrix(values), y, logit, planted, groups)


def miscalibrated_scores(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``3 * logit + 1`` (overconfident and shifted) with labels from ``sigmoid(logit)``."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(0.0, 1.5, size=n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return 3.0 * logit + 1.0, y
