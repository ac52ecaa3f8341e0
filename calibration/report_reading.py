"""A plain-language reading of a report's figures, for the paragraph at its top.

Every sentence is derived from the numbers (nothing is claimed that a figure does not show), and
the wording follows them down as well as up: a weak detector is called weak, an AUROC whose
interval reaches 0.5 is said to be indistinguishable from chance, and a small sample is named as
such. Per risk it reads the primary detector (the one named like its risk, as the guard acts on)
and compares it with the raw-activation baseline when the report holds one.
"""

from __future__ import annotations

import math

from calibration.metrics import Interval
from calibration.report_model import DetectorEvaluation, EvaluationReport

__all__ = ["SMALL_CLASS", "TINY_CLASS", "reading"]

SMALL_CLASS = 30
"""Fewer rows than this in either class make every figure rough; the reading says so."""

TINY_CLASS = 10
"""Fewer rows than this in either class leave even the bootstrap intervals meaningless."""

_CLASS_WORDS = {
    "fabrication": ("fabricated", "grounded"),
    "sycophancy": ("sycophantic", "non-sycophantic"),
    "deception": ("deceptive", "honest"),
}

# (lowest AUROC, wording), best first; below the last: barely better than chance.
_SEPARATION = (
    (0.9, "separates {pos} from {neg} responses well"),
    (0.8, "separates {pos} from {neg} responses fairly well"),
    (0.7, "separates {pos} from {neg} responses moderately"),
    (0.6, "separates {pos} from {neg} responses weakly"),
)


def _finite(x: float) -> bool:
    return math.isfinite(x)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _interval(iv: Interval) -> str:
    if _finite(iv.low) and _finite(iv.high):
        return f" (95% interval {iv.low:.2f} to {iv.high:.2f})"
    return ""


def _primaries(report: EvaluationReport) -> list[DetectorEvaluation]:
    """Per risk in first-seen order: the detector named like the risk, else its first one."""
    out = []
    for risk in dict.fromkeys(e.risk for e in report.evaluations):
        candidates = [e for e in report.evaluations if e.risk == risk]
        out.append(next((e for e in candidates if e.detector == risk), candidates[0]))
    return out


def _separation(e: DetectorEvaluation, pos: str, neg: str) -> str:
    m = e.metrics
    rows = f"{m.n} rows ({m.n_positive} {pos})"
    auroc = m.auroc
    if not _finite(auroc.value):
        return (
            f"The {e.detector} detector could not be scored on its {rows}: both classes are "
            "needed for AUROC."
        )
    wording = next(
        (w for low, w in _SEPARATION if auroc.value >= low),
        "barely separates {pos} from {neg} responses",
    ).format(pos=pos, neg=neg)
    sentence = (
        f"The {e.detector} detector ({e.kind}) {wording} on {rows}: AUROC {auroc.value:.2f}"
        f"{_interval(auroc)}"
    )
    if _finite(auroc.low) and auroc.low <= 0.5:
        sentence += ", an interval that includes chance (0.5)"
    return sentence + "."


def _flag_rate(e: DetectorEvaluation) -> float | None:
    """Share of rows flagged at the threshold, from recall and precision (or the scores)."""
    m = e.metrics
    recall, precision = m.recall.value, m.precision.value
    # recall and precision were taken at the thresholds actually used (one per fold under
    # cross-validation), so they give the flagged count exactly: TP / precision
    if _finite(recall) and recall == 0.0:
        return 0.0
    if _finite(recall) and _finite(precision) and precision > 0 and m.n:
        return min(1.0, recall * m.n_positive / precision / m.n)
    if e.probs and len(e.probs) == m.n and m.n:
        return sum(p >= m.threshold for p in e.probs) / m.n
    return None


def _threshold(e: DetectorEvaluation, pos: str) -> str | None:
    m = e.metrics
    rate = _flag_rate(e)
    if rate is None:
        return None
    start = f"At its threshold of {m.threshold:.2f} it flags {_pct(rate)} of the rows"
    if rate == 0.0:
        return start + f", so it finds none of the {pos} ones."
    parts = []
    if _finite(m.recall.value):
        parts.append(f"finding {_pct(m.recall.value)} of the {pos} ones (recall)")
    if _finite(m.precision.value):
        parts.append(f"with {_pct(m.precision.value)} of its flags right (precision)")
    return start + (", " + " ".join(parts) if parts else "") + "."


def _calibration(e: DetectorEvaluation) -> str | None:
    ece = e.metrics.ece.value
    if not _finite(ece):
        return None
    if ece < 0.05:
        return f"Its probabilities are well calibrated (ECE {ece:.3f})."
    if ece < 0.1:
        return f"Its probabilities are roughly calibrated (ECE {ece:.3f})."
    return (
        f"Its probabilities are poorly calibrated (ECE {ece:.3f}): read them as a ranking, "
        "not as frequencies."
    )


def _small_sample(e: DetectorEvaluation, pos: str, neg: str) -> str | None:
    m = e.metrics
    n_neg = m.n - m.n_positive
    if min(m.n_positive, n_neg) >= SMALL_CLASS:
        return None
    fewer, count = (pos, m.n_positive) if m.n_positive <= n_neg else (neg, n_neg)
    if count < TINY_CLASS:  # a bootstrap of a handful of rows gives intervals that mean nothing
        return (
            f"With only {count} {fewer} rows, these figures say little: at this size even the "
            "intervals are unreliable."
        )
    return (
        f"With only {count} {fewer} rows, these figures are rough: read the intervals, not "
        "the point values."
    )


def _baseline(report: EvaluationReport, e: DetectorEvaluation) -> str | None:
    """How the SAE probe compares with the raw-activation baseline of the same risk."""
    if "sae" not in e.kind.split("+"):
        return None
    raw = next(
        (
            b
            for b in report.evaluations
            if b.risk == e.risk and b is not e and "raw" in b.kind.split("+")
        ),
        None,
    )
    if raw is None:
        return None
    ours, theirs = e.metrics.auroc, raw.metrics.auroc
    if not (_finite(ours.value) and _finite(theirs.value)):
        return None
    text = f"The raw-activation baseline {raw.detector} reaches AUROC {theirs.value:.2f}"
    overlap = not (
        all(map(_finite, (ours.low, ours.high, theirs.low, theirs.high)))
        and (ours.low > theirs.high or theirs.low > ours.high)
    )
    if overlap:
        return text + ": the two are level within their intervals."
    better = "better" if ours.value > theirs.value else "worse"
    return text + f": the SAE probe does {better}, beyond the intervals."


def reading(report: EvaluationReport) -> str:
    """One paragraph reading the report's figures in plain words ("" without evaluations)."""
    sentences: list[str] = []
    for e in _primaries(report):
        pos, neg = _CLASS_WORDS.get(e.risk, ("positive", "negative"))
        sentences.append(_separation(e, pos, neg))
        if not _finite(e.metrics.auroc.value):
            continue
        for sentence in (
            _threshold(e, pos),
            _calibration(e),
            _small_sample(e, pos, neg),
            _baseline(report, e),
        ):
            if sentence:
                sentences.append(sentence)
    return " ".join(sentences)
