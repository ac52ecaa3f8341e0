"""Input checks shared by the calibration modules (labels, scores, groups)."""

from __future__ import annotations

from typing import Any

import numpy as np

from scope_guard.errors import InputError

__all__ = ["as_binary_labels", "as_group_codes", "as_scores"]


def as_binary_labels(y: Any, name: str = "y") -> np.ndarray:
    """Validate labels that must be 0/1 (bools and floats equal to 0 or 1 are accepted).

    Args:
        y: Labels, shape ``(n,)``.
        name: Name used in error messages.

    Returns:
        ``(n,)`` int64 array of 0s and 1s.

    Raises:
        InputError: If ``y`` is not one-dimensional or holds values other than 0 and 1.
    """
    arr = np.asarray(y)
    if arr.ndim != 1:
        msg = f"{name} must be one-dimensional, got shape {arr.shape}"
        raise InputError(msg)
    if arr.dtype == bool:
        return arr.astype(np.int64)
    try:
        num = arr.astype(np.float64)
    except (TypeError, ValueError):
        msg = f"{name} must hold labels 0 and 1, got values like {arr[:3].tolist()}"
        raise InputError(msg) from None
    bad = ~np.isin(num, (0.0, 1.0))
    if bad.any():
        found = np.unique(arr[bad])[:5].tolist()
        msg = f"{name} must hold only labels 0 and 1; found {found}"
        raise InputError(msg)
    return num.astype(np.int64)


def as_scores(scores: Any, n: int | None = None, name: str = "scores") -> np.ndarray:
    """Validate a one-dimensional array of finite scores or probabilities.

    Args:
        scores: Values, shape ``(n,)``.
        n: Expected length, or ``None`` for any.
        name: Name used in error messages.

    Returns:
        ``(n,)`` float64 array.

    Raises:
        InputError: On a wrong shape or length, or a NaN or infinite value.
    """
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1:
        msg = f"{name} must be one-dimensional, got shape {arr.shape}"
        raise InputError(msg)
    if n is not None and arr.shape[0] != n:
        msg = f"{name} has {arr.shape[0]} rows but the labels have {n}"
        raise InputError(msg)
    if not np.all(np.isfinite(arr)):
        msg = f"{name} must be finite; {int((~np.isfinite(arr)).sum())} values are NaN or inf"
        raise InputError(msg)
    return arr


def as_group_codes(groups: Any, n: int) -> np.ndarray:
    """Integer codes ``0..G-1`` for group labels; ``None`` makes every row its own group.

    Args:
        groups: Group label per row (any hashable, comparable values), shape ``(n,)``, or None.
        n: Number of rows.

    Returns:
        ``(n,)`` int64 codes.

    Raises:
        InputError: If the length differs from ``n`` or a group label is missing (None/NaN).
    """
    if groups is None:
        return np.arange(n, dtype=np.int64)
    arr = np.asarray(groups)
    if arr.ndim != 1 or arr.shape[0] != n:
        msg = f"groups must have shape ({n},), got {arr.shape}"
        raise InputError(msg)
    if arr.dtype == object and any(g is None for g in arr):
        msg = "groups must not contain None"
        raise InputError(msg)
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        msg = "groups must not contain NaN"
        raise InputError(msg)
    _, codes = np.unique(arr.astype(str) if arr.dtype == object else arr, return_inverse=True)
    return codes.astype(np.int64).ravel()
