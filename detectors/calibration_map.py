"""A fitted calibration map: decision scores to probabilities, at run time.

The map is fitted by :func:`calibration.calibrators.fit_calibration_map`; a deployed detector only
applies it. It is a frozen pydantic model whose parameters are plain floats and lists, so a bundle
stores it in its JSON manifest and loads it back without pickle and without scikit-learn.
"""

from __future__ import annotations

import math
from typing import Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scope_guard.errors import InputError

__all__ = ["CalibrationMap", "CalibrationMethod", "stable_sigmoid"]

CalibrationMethod = Literal["identity", "sigmoid", "isotonic", "temperature"]


def stable_sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function without overflow.

    Args:
        z: Array of logits, any shape; ``±inf`` maps to 1 and 0.

    Returns:
        ``1 / (1 + exp(-z))``, same shape as ``z``, values in ``[0, 1]``.
    """
    # tanh form: never overflows, exact at ±inf.
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


class CalibrationMap(BaseModel):
    """Maps a detector's decision scores ``s`` to calibrated probabilities ``p``.

    Methods:
        - ``identity``: the scores already are probabilities; ``p = s`` (scores must lie in [0, 1]).
        - ``sigmoid`` (Platt): ``p = 1 / (1 + exp(-(a * s + b)))``.
        - ``temperature``: ``p = sigmoid(s / temperature)``, one parameter, no offset.
        - ``isotonic``: piecewise-linear interpolation through increasing knots ``(x, y)``;
          scores outside ``[x[0], x[-1]]`` take the end values (clipped), as scikit-learn's
          ``IsotonicRegression(out_of_bounds="clip")`` does.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: CalibrationMethod
    """Which family of map this is."""
    a: float = 1.0
    """Sigmoid slope on the decision score."""
    b: float = 0.0
    """Sigmoid offset."""
    temperature: float = Field(default=1.0, gt=0.0)
    """Temperature ``T > 0`` of ``sigmoid(s / T)``."""
    x: list[float] = Field(default_factory=list)
    """Isotonic knots on the score axis, non-decreasing."""
    y: list[float] = Field(default_factory=list)
    """Isotonic knot probabilities in [0, 1], non-decreasing."""
    held_out_log_loss: dict[str, float] | None = None
    """When the method was chosen automatically: held-out log loss of every candidate."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        # ValueError here surfaces as pydantic's ValidationError (itself a ValueError).
        for name in ("a", "b", "temperature"):
            if not math.isfinite(getattr(self, name)):
                msg = f"CalibrationMap.{name} must be finite, got {getattr(self, name)!r}"
                raise ValueError(msg)
        if self.method == "isotonic":
            x, y = np.asarray(self.x, dtype=float), np.asarray(self.y, dtype=float)
            if x.size == 0 or x.shape != y.shape:
                msg = (
                    "an isotonic CalibrationMap needs knots x and y of equal, non-zero length; "
                    f"got {x.size} and {y.size}"
                )
                raise ValueError(msg)
            if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
                msg = "isotonic knots must be finite"
                raise ValueError(msg)
            if np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0):
                msg = "isotonic knots must be non-decreasing in both x and y"
                raise ValueError(msg)
            if y[0] < 0.0 or y[-1] > 1.0:
                msg = f"isotonic knot probabilities must lie in [0, 1], got [{y[0]}, {y[-1]}]"
                raise ValueError(msg)
        elif self.x or self.y:
            msg = f"knots x/y are only used by the isotonic method, not {self.method!r}"
            raise ValueError(msg)
        return self

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for decision scores.

        Args:
            scores: Decision scores, shape ``(n,)`` (a scalar or any shape is accepted and kept).

        Returns:
            Probabilities in ``[0, 1]``, same shape as ``scores``, float64.

        Raises:
            InputError: If a score is NaN, or (identity map) outside ``[0, 1]``.
        """
        s = np.asarray(scores, dtype=np.float64)
        if np.isnan(s).any():
            msg = f"cannot calibrate NaN scores ({int(np.isnan(s).sum())} of {s.size} are NaN)"
            raise InputError(msg)
        if self.method == "identity":
            if s.size and (s.min() < 0.0 or s.max() > 1.0):
                msg = (
                    "the identity calibration map needs scores that are already probabilities "
                    f"in [0, 1]; got range [{s.min()}, {s.max()}]"
                )
                raise InputError(msg)
            return s.copy()
        if self.method in ("sigmoid", "temperature"):
            with np.errstate(over="ignore"):  # overflow to ±inf is exact after the sigmoid
                z = self.a * s + self.b if self.method == "sigmoid" else s / self.temperature
            return stable_sigmoid(z)
        # np.interp holds the end values outside [x[0], x[-1]]: the "clip" behaviour.
        p = np.interp(s, np.asarray(self.x), np.asarray(self.y))
        return np.clip(p, 0.0, 1.0)
