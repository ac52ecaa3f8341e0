"""What a calibration / evaluation report shows: plain pydantic data, rendered by ``report``.

Kept apart from the renderer so that the pipeline can build it, ``--json`` can print it, and the
Markdown / HTML writer can be tested on hand-made instances.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from calibration.metrics import Metrics

__all__ = [
    "DetectorEvaluation",
    "EvaluationReport",
    "HeadWeight",
    "LatentWeight",
    "TokenExample",
    "TokenProbeFacts",
]


class LatentWeight(BaseModel):
    """One selected SAE latent of a probe, for the report's top-latent table.

    Attributes:
        site: The SAE's site.
        latent: The latent id.
        pooling: Which pooled part the weight is on (``"mean"``, ``"max"``).
        weight: The probe's coefficient.
        url: The latent's Neuronpedia page (registry SAEs).
        contexts: Its top-activating contexts, ``before [[token]] after`` (self-trained SAEs).
    """

    model_config = ConfigDict(frozen=True)
    site: str
    latent: int
    pooling: str
    weight: float
    url: str | None = None
    contexts: list[str] = Field(default_factory=list)


class HeadWeight(BaseModel):
    """One attention head of a lookback block and the probe's weight on its lookback ratio."""

    model_config = ConfigDict(frozen=True)
    layer: int
    head: int
    weight: float


class TokenProbeFacts(BaseModel):
    """A token-probe block of a detector: where it reads and how the detector weighs it.

    Attributes:
        site: Where the token probe reads.
        width: Its input width (the site's activation width).
        weights: The detector's coefficient on each response-level aggregate of the probe's
            per-token risk (``max``, ``top5_mean``, ``frac_above_half``, ``mean``).
    """

    model_config = ConfigDict(frozen=True)
    site: str
    width: int
    weights: dict[str, float]


class TokenExample(BaseModel):
    """One held-out response with its per-token risk, for the report to highlight.

    Attributes:
        label: The row's label for the detector's risk (1 = risky).
        probability: The detector's calibrated probability for the row.
        why: Why this row was chosen (``"highest-scoring positive"``...).
        response: The response, cut to a bound (spans beyond it are left out).
        cut: The response was longer and was cut.
        spans: Per token, ``(start, end, risk)`` character spans of ``response``.
        risky: Runs of tokens with risk ``>= span_threshold``.
        span_threshold: Where a token counts as risky.
        source: ``"token_probe"`` or ``"detector"`` (see ``ProbeScore.token_risk_source``).
    """

    model_config = ConfigDict(frozen=True)
    label: int
    probability: float
    why: str
    response: str
    cut: bool = False
    spans: list[tuple[int, int, float]] = Field(default_factory=list)
    risky: list[tuple[int, int, float]] = Field(default_factory=list)
    span_threshold: float
    source: str


class DetectorEvaluation(BaseModel):
    """One detector scored on one set of held-out rows.

    Attributes:
        detector: Detector name (``"fabrication"``, ``"fabrication-raw"``...).
        risk: The risk it scores.
        kind: Its inputs: ``"sae"``, ``"raw"`` (the raw-activation baseline), ``"grounding"``
            or a ``+``-joined combination such as ``"sae+grounding"``.
        metrics: Metrics at the chosen threshold, with bootstrap intervals.
        by_field: Per breakdown field (e.g. ``"task_type"``), per value, the same metrics.
        threshold_rule: How the threshold was chosen (``"f1"``, ``"fpr"``, ``"precision"``,
            ``"fixed"``), on out-of-fold training predictions.
        threshold_target: The rule's target (e.g. 0.05 for a 5% FPR), if any.
        calibration_method: ``"sigmoid"``, ``"isotonic"``, ``"temperature"`` or ``"identity"``.
        held_out_log_loss: Per candidate calibration method, its held-out log loss.
        n_features: Width of the probe's input.
        n_selected: Nonzero coefficients.
        top_latents: Largest-weight SAE latents (SAE probes only).
        top_heads: Largest-weight lookback heads (detectors with a lookback block).
        token_probes: The detector's token-probe blocks.
        examples: A few scored rows with their per-token risk (only when the report was built
            with the texts: the user's own data).
        y: Labels of the scored rows (for plots).
        probs: Calibrated probabilities of the scored rows (for plots).
    """

    model_config = ConfigDict(frozen=True)
    detector: str
    risk: str
    kind: str
    metrics: Metrics
    by_field: dict[str, dict[str, Metrics]] = Field(default_factory=dict)
    threshold_rule: str = "f1"
    threshold_target: float | None = None
    calibration_method: str = "identity"
    held_out_log_loss: dict[str, float] | None = None
    n_features: int = 0
    n_selected: int = 0
    top_latents: list[LatentWeight] = Field(default_factory=list)
    top_heads: list[HeadWeight] = Field(default_factory=list)
    token_probes: list[TokenProbeFacts] = Field(default_factory=list)
    examples: list[TokenExample] = Field(default_factory=list)
    y: list[int] = Field(default_factory=list)
    probs: list[float] = Field(default_factory=list)


class EvaluationReport(BaseModel):
    """A whole report: what was evaluated, on what, and how each detector did.

    Attributes:
        title: Heading of the report.
        created: ISO timestamp.
        dataset: Source, format, number of rows, class balance, content hash.
        reader: The reader's description (name, stand-in flag...), ``None`` for grounding only.
        split: How rows were split (held-out groups, fractions, seeds).
        evaluations: One entry per detector (the SAE probe beside the raw baseline).
        notes: Free lines shown at the top (e.g. "reader is a stand-in: latents mean nothing").
    """

    model_config = ConfigDict(frozen=True)
    title: str
    created: str
    dataset: dict[str, Any]
    reader: dict[str, Any] | None = None
    split: dict[str, Any] = Field(default_factory=dict)
    evaluations: list[DetectorEvaluation]
    notes: list[str] = Field(default_factory=list)
