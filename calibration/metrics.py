"""Detection and calibration metrics with cluster-bootstrap 95% intervals.

All metrics are computed by one vectorized routine over row weights: the point estimate uses
weight 1 per row, and each bootstrap resample uses the number of times its row's group was drawn
(a cluster bootstrap when groups are given, a row bootstrap otherwise). Rows are sorted once, so
a thousand resamples cost a few matrix products. Point values equal scikit-learn's
``roc_auc_score``, ``average_precision_score``, ``brier_score_loss`` and ``precision/recall/f1``
(with ``zero_division=0``); ECE bins like ``calibration_curve(strategy="uniform")``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict

from calibration._validation import as_binary_labels, as_group_codes, as_scores
from scope_guard.errors import ConfigError, InputError

__all__ = [
    "Interval",
    "Metrics",
    "ReliabilityCurve",
    "compute_metrics",
    "expected_calibration_error",
    "metrics_by",
    "reliability_curve",
]

_NAMES = ("auroc", "auprc", "precision", "recall", "f1", "ece", "brier")
_FPR_TARGETS = {"tpr_at_1_fpr": 0.01, "tpr_at_5_fpr": 0.05}
_CELLS = 4_000_000  # bootstrap weights held in memory at once (floats)


class Interval(BaseModel):
    """A point estimate with its 95% percentile-bootstrap interval (NaN where undefined)."""

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="constants")

    value: float
    low: float
    high: float


class Metrics(BaseModel):
    """Metrics of calibrated probabilities at one threshold."""

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="constants")

    n: int
    n_positive: int
    threshold: float
    auroc: Interval
    auprc: Interval
    precision: Interval
    recall: Interval
    f1: Interval
    ece: Interval
    brier: Interval
    tpr_at_1_fpr: Interval
    tpr_at_5_fpr: Interval
    n_groups: int | None = None
    """Number of groups resampled by the bootstrap; ``None`` when rows were resampled."""
    n_bootstrap: int = 0
    """Number of bootstrap resamples behind the intervals."""


class ReliabilityCurve(NamedTuple):
    """Points of a reliability diagram, one per non-empty equal-width bin."""

    mean_predicted: np.ndarray
    """Mean probability in each bin."""
    fraction_positive: np.ndarray
    """Fraction of positive labels in each bin."""
    counts: np.ndarray
    """Rows in each bin."""


def _checked(y: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    y_arr = as_binary_labels(y)
    p = as_scores(probs, y_arr.shape[0], name="probs")
    if y_arr.size == 0:
        msg = "metrics need at least one row"
        raise InputError(msg)
    if p.min() < 0.0 or p.max() > 1.0:
        msg = f"probs must lie in [0, 1]; got range [{p.min()}, {p.max()}]"
        raise InputError(msg)
    return y_arr, p


def _bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    if n_bins < 1:
        msg = f"n_bins must be at least 1, got {n_bins}"
        raise ConfigError(msg)
    return np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], p)


def reliability_curve(y: Any, probs: Any, n_bins: int = 15) -> ReliabilityCurve:
    """Reliability diagram points over equal-width bins of ``[0, 1]``.

    Args:
        y: Binary labels, shape ``(n,)``.
        probs: Probabilities, shape ``(n,)``.
        n_bins: Number of bins.

    Returns:
        The :class:`ReliabilityCurve` (empty bins omitted).
    """
    y_arr, p = _checked(y, probs)
    ids = _bins(p, n_bins)
    counts = np.bincount(ids, minlength=n_bins)
    keep = counts > 0
    sum_p = np.bincount(ids, weights=p, minlength=n_bins)[keep]
    sum_y = np.bincount(ids, weights=y_arr, minlength=n_bins)[keep]
    return ReliabilityCurve(sum_p / counts[keep], sum_y / counts[keep], counts[keep])


def expected_calibration_error(y: Any, probs: Any, n_bins: int = 15) -> float:
    """ECE: the row-weighted mean over equal-width bins of ``|fraction positive - mean prob|``.

    Args:
        y: Binary labels, shape ``(n,)``.
        probs: Probabilities, shape ``(n,)``.
        n_bins: Number of bins.

    Returns:
        The ECE, in ``[0, 1]``.
    """
    curve = reliability_curve(y, probs, n_bins)
    gaps = np.abs(curve.fraction_positive - curve.mean_predicted)
    return float(np.sum(curve.counts * gaps) / np.sum(curve.counts))


def _weighted(
    W: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    tie_end: np.ndarray,
    onehot: np.ndarray,
    t: float | np.ndarray,
) -> dict[str, np.ndarray]:
    """Every metric for each row of weights ``W (b, n)``; rows sorted by ``p`` descending."""
    Wy, Wn = W * y, W * (1 - y)
    pos, neg, total = Wy.sum(axis=1), Wn.sum(axis=1), W.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tp = np.cumsum(Wy, axis=1)[:, tie_end]
        fp = np.cumsum(Wn, axis=1)[:, tie_end]
        zero = np.zeros((W.shape[0], 1))
        tpr = np.hstack([zero, tp / pos[:, None]])
        fpr = np.hstack([zero, fp / neg[:, None]])
        prec_k = np.nan_to_num(tp / (tp + fp))  # 0/0 only where recall does not move
        both = (pos > 0) & (neg > 0)
        out = {
            "auroc": np.where(
                both, np.sum(np.diff(fpr) * (tpr[:, 1:] + tpr[:, :-1]) / 2, 1), np.nan
            ),
            "auprc": np.where(pos > 0, np.sum(np.diff(tpr) * prec_k, axis=1), np.nan),
        }
        for name, target in _FPR_TARGETS.items():
            best = np.max(np.where(fpr <= target + 1e-12, tpr, 0.0), axis=1)
            out[name] = np.where(both, best, np.nan)
        flag = p >= t
        tp_t, fp_t = Wy @ flag, Wn @ flag
        out["precision"] = np.where(tp_t + fp_t > 0, tp_t / (tp_t + fp_t), 0.0)
        out["recall"] = np.where(pos > 0, tp_t / pos, np.nan)
        f1_den = tp_t + fp_t + pos
        out["f1"] = np.where(pos > 0, np.where(f1_den > 0, 2 * tp_t / f1_den, 0.0), np.nan)
        out["brier"] = (W @ (p - y) ** 2) / total
        out["ece"] = np.abs(Wy @ onehot - (W * p) @ onehot).sum(axis=1) / total
    return out


def _interval(value: float, samples: np.ndarray) -> Interval:
    ok = samples[np.isfinite(samples)]
    if ok.size < 2 or not np.isfinite(value):
        return Interval(value=value, low=float("nan"), high=float("nan"))
    low, high = np.percentile(ok, [2.5, 97.5])
    return Interval(value=value, low=float(low), high=float(high))


def compute_metrics(
    y: Any,
    probs: Any,
    threshold: float | np.ndarray,
    *,
    groups: Any = None,
    n_bootstrap: int = 1000,
    random_state: int = 0,
    n_bins: int = 15,
) -> Metrics:
    """All metrics at ``threshold`` (flag when ``prob >= threshold``) with bootstrap intervals.

    Args:
        y: Binary labels, shape ``(n,)``.
        probs: Calibrated probabilities, shape ``(n,)``.
        threshold: Decision threshold, or one per row, shape ``(n,)`` (cross-validated
            evaluation: each row is flagged by the threshold of the model that scored it;
            ``Metrics.threshold`` then reports their mean).
        groups: Group label per row; the bootstrap then resamples whole groups (cluster
            bootstrap). ``None`` resamples rows.
        n_bootstrap: Number of resamples; 0 gives NaN intervals.
        random_state: Seed; the same seed gives the same intervals.
        n_bins: ECE bins.

    Returns:
        The :class:`Metrics`. A metric undefined on the data (one class only) is NaN; resamples
        where it is undefined are left out of its interval.
    """
    y_arr, p = _checked(y, probs)
    if n_bootstrap < 0:
        msg = f"n_bootstrap must be >= 0, got {n_bootstrap}"
        raise ConfigError(msg)
    thr = np.asarray(threshold, dtype=np.float64)
    if thr.ndim not in (0, 1) or (thr.ndim == 1 and thr.shape[0] != p.size):
        msg = f"threshold must be a number or one per row ({p.size}), got shape {thr.shape}"
        raise ConfigError(msg)
    if not np.isfinite(thr).all():
        msg = f"threshold must be finite, got {threshold!r}"
        raise ConfigError(msg)
    order = np.argsort(-p, kind="stable")
    y_s, p_s = y_arr[order].astype(np.float64), p[order]
    tie_end = np.r_[np.flatnonzero(np.diff(p_s)), p_s.size - 1]
    onehot = np.eye(n_bins)[_bins(p_s, n_bins)]
    args = (y_s, p_s, tie_end, onehot, thr[order] if thr.ndim else float(thr))
    point = {k: float(v[0]) for k, v in _weighted(np.ones((1, p.size)), *args).items()}

    codes = as_group_codes(groups, p.size)[order]
    n_groups = int(codes.max()) + 1
    rng = np.random.default_rng(random_state)
    chunk = max(1, _CELLS // p.size)
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=b)
        parts.append(_weighted(counts[:, codes].astype(np.float64), *args))
    fields = {}
    for name in (*_NAMES, *_FPR_TARGETS):
        samples = np.concatenate([d[name] for d in parts]) if parts else np.empty(0)
        fields[name] = _interval(point[name], samples)
    return Metrics(
        n=int(p.size),
        n_positive=int(y_arr.sum()),
        threshold=float(thr.mean()) if thr.size else float("nan"),
        n_groups=None if groups is None else n_groups,
        n_bootstrap=n_bootstrap,
        **fields,
    )


def metrics_by(
    field_values: Any,
    y: Any,
    probs: Any,
    threshold: float | np.ndarray,
    *,
    groups: Any = None,
    min_size: int = 30,
    **kw: Any,
) -> dict[str, Metrics]:
    """:func:`compute_metrics` per value of a field (e.g. RAGTruth's task type).

    Args:
        field_values: The field's value per row, shape ``(n,)``; keys are ``str(value)``.
        y: Binary labels, shape ``(n,)``.
        probs: Calibrated probabilities, shape ``(n,)``.
        threshold: Decision threshold, or one per row (sliced along with the rows).
        groups: Group label per row, sliced along with the rows.
        min_size: Slices with fewer rows get NaN intervals (no bootstrap).
        **kw: Passed to :func:`compute_metrics` (``n_bootstrap``, ``random_state``, ``n_bins``).

    Returns:
        ``{value: Metrics}`` in sorted order of the values.
    """
    y_arr, p = _checked(y, probs)
    keys = np.asarray([str(v) for v in field_values], dtype=object)
    if keys.shape[0] != y_arr.shape[0]:
        msg = f"field_values has {keys.shape[0]} rows but the labels have {y_arr.shape[0]}"
        raise InputError(msg)
    g = None if groups is None else np.asarray(groups)
    if g is not None and g.shape[0] != y_arr.shape[0]:
        msg = f"groups has {g.shape[0]} rows but the labels have {y_arr.shape[0]}"
        raise InputError(msg)
    out = {}
    for key in sorted(set(keys.tolist())):
        rows = np.flatnonzero(keys == key)
        sub_kw = dict(kw)
        if rows.size < min_size:
            sub_kw["n_bootstrap"] = 0
        sub_groups = None if g is None else g[rows]
        thr = np.asarray(threshold, dtype=np.float64)
        sub_thr = thr[rows] if thr.ndim == 1 else float(thr)
        out[key] = compute_metrics(y_arr[rows], p[rows], sub_thr, groups=sub_groups, **sub_kw)
    return out
