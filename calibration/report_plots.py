"""Figures of an evaluation report: reliability diagrams and score histograms, as PNG bytes.

matplotlib is imported lazily (it is an optional dependency, the ``report`` extra) and only through
its object-oriented API: a :class:`matplotlib.figure.Figure` is drawn by the Agg canvas without
pyplot, so rendering never switches the backend of a host's interactive session and no figure
is left in pyplot's registry. Sizes, dpi and fonts are fixed and the PNG ``Software`` tag is
dropped, so the same report gives the same bytes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from calibration.metrics import reliability_curve
from calibration.report_model import DetectorEvaluation, EvaluationReport
from scope_guard.errors import ConfigError, InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "N_BINS",
    "FigureNames",
    "figure_names",
    "histogram_png",
    "reliability_png",
    "render_figures",
]

N_BINS = 15
"""Bins of the reliability diagram (the same 15 as the ECE)."""

_HIST_BINS = 20
_DPI = 100
_SIZE = (5.0, 4.2)
_NEGATIVE, _POSITIVE = "#4c72b0", "#dd8452"


class FigureNames(NamedTuple):
    """File names (``images/`` relative) of one detector's two figures."""

    reliability: str
    histogram: str


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "detector"


def figure_names(report: EvaluationReport) -> list[FigureNames | None]:
    """PNG file names per evaluation, in order; ``None`` where it recorded no scored rows.

    Names come from the detector name, made filesystem-safe; a clash (two evaluations of the same
    detector, or names that differ only in punctuation) gets the evaluation's index appended.
    """
    names: list[FigureNames | None] = []
    seen: set[str] = set()
    for index, evaluation in enumerate(report.evaluations):
        if not evaluation.y:
            names.append(None)
            continue
        base = stem = _slug(evaluation.detector)
        suffix = index
        while stem in seen:  # "x", "x-2", "x" must not map the third onto the second
            stem = f"{base}-{suffix}"
            suffix += 1
        seen.add(stem)
        names.append(FigureNames(f"{stem}-reliability.png", f"{stem}-histogram.png"))
    return names


def _arrays(evaluation: DetectorEvaluation) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(evaluation.y, dtype=np.int64)
    probs = np.asarray(evaluation.probs, dtype=np.float64)
    if y.shape != probs.shape:
        msg = (
            f"detector {evaluation.detector!r}: {y.size} labels but {probs.size} probabilities; "
            "y and probs must have one entry per scored row"
        )
        raise InputError(msg)
    if not np.isin(y, (0, 1)).all():
        bad = sorted(set(y.tolist()) - {0, 1})
        msg = f"detector {evaluation.detector!r}: labels must be 0 or 1, got {bad}"
        raise InputError(msg)
    if not (np.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1).all()):
        msg = f"detector {evaluation.detector!r}: probabilities must be finite and in [0, 1]"
        raise InputError(msg)
    return y, probs


def _new_figure(*, two_panels: bool) -> tuple[Figure, list]:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        msg = "report figures need matplotlib: pip install 'scope-guard[report]'"
        raise ConfigError(msg) from exc
    fig = Figure(figsize=_SIZE, dpi=_DPI, layout="constrained")
    if two_panels:
        axes = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
        return fig, list(axes)
    return fig, [fig.subplots()]


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    fig.clear()
    return buffer.getvalue()


def reliability_png(evaluation: DetectorEvaluation) -> bytes:
    """Reliability diagram: observed positive rate against mean confidence per bin.

    The upper panel has the diagonal of perfect calibration; the lower one the rows per bin, so a
    far-off point backed by three rows reads as such.
    """
    y, probs = _arrays(evaluation)
    confidence, positive_rate, counts = reliability_curve(y, probs, n_bins=N_BINS)
    fig, (top, bottom) = _new_figure(two_panels=True)
    top.plot([0, 1], [0, 1], linestyle="--", color="0.5", linewidth=1, label="perfect calibration")
    top.plot(confidence, positive_rate, marker="o", color=_POSITIVE, label=evaluation.detector)
    top.set_xlim(0, 1)
    top.set_ylim(-0.02, 1.02)
    top.set_ylabel("fraction positive")
    ece = evaluation.metrics.ece.value
    suffix = f", ECE {ece:.3f}" if np.isfinite(ece) else ""
    top.set_title(f"{evaluation.detector}: reliability ({evaluation.calibration_method}{suffix})")
    top.legend(loc="upper left", fontsize="small")
    top.grid(alpha=0.3)
    # A bin's mean lies inside it, so the bin (and its bar) is recovered from it, with the same
    # edge rule as the metrics' binning.
    bins = np.searchsorted(np.linspace(0.0, 1.0, N_BINS + 1)[1:-1], confidence)
    bottom.bar((bins + 0.5) / N_BINS, counts, width=0.9 / N_BINS, color=_NEGATIVE)
    bottom.set_xlabel("mean predicted probability")
    bottom.set_ylabel("rows")
    return _png(fig)


def histogram_png(evaluation: DetectorEvaluation) -> bytes:
    """Histogram of calibrated probabilities, negatives and positives apart, with the threshold."""
    y, probs = _arrays(evaluation)
    fig, (ax,) = _new_figure(two_panels=False)
    edges = np.linspace(0.0, 1.0, _HIST_BINS + 1)
    for label, name, color in ((0, "negative", _NEGATIVE), (1, "positive", _POSITIVE)):
        scores = probs[y == label]
        ax.hist(scores, bins=edges, alpha=0.55, color=color, label=f"{name} (n={scores.size})")
    threshold = evaluation.metrics.threshold
    if np.isfinite(threshold):
        ax.axvline(
            threshold,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"threshold {threshold:.3f}",
        )
    ax.set_xlim(0, 1)
    ax.set_xlabel("calibrated probability")
    ax.set_ylabel("rows")
    ax.set_title(f"{evaluation.detector}: scores by label")
    ax.legend(loc="best", fontsize="small")
    return _png(fig)


def render_figures(
    report: EvaluationReport, names: Sequence[FigureNames | None] | None = None
) -> dict[str, bytes]:
    """Every figure of ``report``, as ``{file name: PNG bytes}`` in evaluation order.

    Args:
        report: The report.
        names: File names per evaluation, as :func:`figure_names` gives them (computed if omitted).
    """
    names = figure_names(report) if names is None else names
    figures: dict[str, bytes] = {}
    for evaluation, pair in zip(report.evaluations, names, strict=True):
        if pair is not None:
            figures[pair.reliability] = reliability_png(evaluation)
            figures[pair.histogram] = histogram_png(evaluation)
    return figures
