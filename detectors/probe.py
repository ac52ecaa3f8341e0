"""Probe detectors: a calibrated linear probe over a feature layout, for one risk.

The fabrication, sycophancy and deception detectors are all :class:`ProbeDetector` instances;
what differs is the risk, the feature layout and the fitted numbers, which come from a bundle
(:mod:`detectors.bundle`) produced by ``calibration``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from detectors.calibration_map import CalibrationMap
from detectors.feature_blocks import BlockKind, FeatureBlock, assemble, layout_width
from detectors.latent_explanations import LatentExplanations, check_explanations
from detectors.risk_spans import token_spans
from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.risks import Risk
from scope_guard.sites import Site
from scope_guard.types import Span

if TYPE_CHECKING:
    from detectors.grounding import GroundingResult
    from scope_guard.reader import Reading
    from scope_guard.sae import JumpReLUSAE

__all__ = ["TOKEN_PROBE_THRESHOLD", "LatentContribution", "ProbeDetector", "ProbeScore"]

TOKEN_PROBE_THRESHOLD = 0.5
"""Where a token probe's per-token probability marks a token risky: the probe is fitted with
balanced class weights, so 0.5 is its decision point (its ``frac_above_half`` aggregate too)."""


@dataclass(frozen=True)
class LatentContribution:
    """One feature's share of the probe's logit: ``weight * value``.

    Attributes:
        name: Column name (``"resid_post@20/max/1234"``, ``"grounding/min_support"``...).
        site: The site, for SAE and raw features.
        latent: The SAE latent id, for SAE features.
        weight: Probe coefficient (original units).
        value: The feature's value for this response.
        contribution: ``weight * value`` (positive pushes towards the risk).
        url: Neuronpedia page of the latent, when the SAE has one.
        contexts: The latent's top-activating contexts in the SAE's training corpus,
            ``before [[token]] after``, strongest first (self-trained SAEs; empty otherwise).
    """

    name: str
    site: str | None
    latent: int | None
    weight: float
    value: float
    contribution: float
    url: str | None = None
    contexts: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProbeScore:
    """A probe detector's verdict on one response.

    Attributes:
        detector: Detector name.
        risk: The risk scored.
        probability: Calibrated probability of the risk, in [0, 1].
        logit: The probe's raw decision score (before calibration).
        threshold: The detector's decision threshold on ``probability``.
        flagged: ``probability >= threshold``.
        top_contributions: Largest positive contributions to the logit, biggest first.
        token_risk: Per response token, its risk in [0, 1]; ``None`` when not asked for or
            when the layout has no per-token features (grounding only). See
            ``token_risk_source``.
        token_risk_source: ``"token_probe"``: the detector has ``tokens`` blocks, and the risk
            is their token probes' probability that the token lies in a labeled span (the mean
            over the blocks when there are several), the quantity those probes were trained
            on. ``"detector"``: the detector's calibrated probability with the token's own
            features standing for every pooled part (mean = max = the token) and
            response-level features (grounding) as they are; a proxy, since the probe was
            fitted on pooled rows.
        token_spans: ``token_risk`` as ``(start, end, risk)`` character spans of the response
            the reader read (``response[start:end]`` is the token); zero-width tokens left out.
        risky_spans: Runs of tokens with risk ``>= span_threshold``, merged
            (:class:`detectors.risk_spans.TokenSpans`).
        span_threshold: :data:`TOKEN_PROBE_THRESHOLD` for token-probe risk, else the
            detector's own threshold.
    """

    detector: str
    risk: Risk
    probability: float
    logit: float
    threshold: float
    flagged: bool
    top_contributions: tuple[LatentContribution, ...] = ()
    token_risk: tuple[float, ...] | None = None
    token_risk_source: Literal["token_probe", "detector"] | None = None
    token_spans: tuple[Span, ...] | None = None
    risky_spans: tuple[Span, ...] = ()
    span_threshold: float | None = None


@dataclass
class ProbeDetector:
    """A calibrated linear probe for one risk.

    Attributes:
        name: Unique name within a bundle (``"fabrication"``, ``"fabrication-raw"``...).
        risk: The risk it scores.
        blocks: Feature layout.
        coef: ``(n_features,)`` coefficients in original feature units.
        intercept: Probe intercept.
        calibration: Map from the logit to a probability.
        threshold: Decision threshold on the calibrated probability (above 1: never flags).
        saes: Per SAE-block site, the SAE narrowed to the block's latents.
        neuronpedia_ids: Per site, the SAE's Neuronpedia id (for latent links).
        explanations: Per SAE-block site, per kept latent, its top-activating contexts
            (:mod:`detectors.latent_explanations`); empty for registry SAEs.
        info: Free metadata from the bundle (metrics, threshold rule, training summary).
    """

    name: str
    risk: Risk
    blocks: Sequence[FeatureBlock]
    coef: np.ndarray
    intercept: float
    calibration: CalibrationMap
    threshold: float
    saes: Mapping[Site, JumpReLUSAE] = field(default_factory=dict)
    neuronpedia_ids: Mapping[str, str | None] = field(default_factory=dict)
    explanations: LatentExplanations = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.risk = Risk.parse(self.risk)
        self.blocks = tuple(self.blocks)
        self.coef = np.asarray(self.coef, dtype=np.float64).reshape(-1)
        if self.coef.shape[0] != layout_width(self.blocks):
            msg = (
                f"detector {self.name!r}: {self.coef.shape[0]} coefficients for a layout of "
                f"{layout_width(self.blocks)} features"
            )
            raise ArtifactError(msg)
        if not np.all(np.isfinite(self.coef)):
            bad = int((~np.isfinite(self.coef)).sum())
            msg = f"detector {self.name!r}: {bad} coefficients are NaN or inf"
            raise ConfigError(msg)
        if not np.isfinite(self.intercept):
            msg = f"detector {self.name!r}: intercept {self.intercept} must be finite"
            raise ConfigError(msg)
        # A threshold above 1 is the "never flag" threshold a target no row can meet yields.
        if not (self.threshold >= 0.0 and np.isfinite(self.threshold)):
            msg = f"detector {self.name!r}: threshold {self.threshold} must be finite and >= 0"
            raise ConfigError(msg)
        for block in self.blocks:
            if block.kind is BlockKind.SAE and block.parsed_site not in self.saes:
                msg = f"detector {self.name!r} has no SAE for its block at {block.site}"
                raise ArtifactError(msg)
        self.explanations = {
            str(site): {int(k): tuple(v) for k, v in latents.items()}
            for site, latents in self.explanations.items()
        }
        check_explanations(self.name, self.explanations, self.blocks)

    @property
    def sites(self) -> tuple[Site, ...]:
        """Sites the reader must capture for this detector."""
        siteless = (BlockKind.GROUNDING, BlockKind.SURPRISAL)
        return tuple(sorted({b.parsed_site for b in self.blocks if b.kind not in siteless}))

    @property
    def needs_reader(self) -> bool:
        return bool(self.sites) or self.needs_surprisal

    @property
    def needs_surprisal(self) -> bool:
        """The reader must compute surprisal (``Reader(..., surprisal=True)``)."""
        return any(b.kind is BlockKind.SURPRISAL for b in self.blocks)

    @property
    def needs_lookback(self) -> bool:
        """The reader must capture lookback ratios (``Reader(..., lookback=True)``)."""
        return any(b.kind is BlockKind.LOOKBACK for b in self.blocks)

    @property
    def needs_grounding(self) -> bool:
        return any(b.kind is BlockKind.GROUNDING for b in self.blocks)

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits of ``(n, n_features)`` feature rows (dense, or scipy sparse)."""
        if not hasattr(X, "tocsr"):
            X = np.asarray(X, dtype=np.float64)
        return np.asarray(X @ self.coef, dtype=np.float64).ravel() + self.intercept

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probabilities, ``(n,)``."""
        return self.calibration.apply(self.decision_function(X))

    def score(
        self,
        reading: Reading | None = None,
        grounding: GroundingResult | None = None,
        *,
        top_k: int = 10,
        per_token: bool = True,
    ) -> ProbeScore:
        """Score one response from its reading and/or grounding result.

        With ``per_token`` (and a reading), also the per-token risk and its spans (see
        :class:`ProbeScore`).
        """
        x = assemble(self.blocks, reading=reading, saes=self.saes, grounding=grounding)[0]
        logit = float(x @ self.coef + self.intercept)
        probability = float(self.calibration.apply(np.array([logit]))[0])
        token_risk, source, spans, span_threshold = None, None, None, None
        risky: tuple[Span, ...] = ()
        if per_token and self.needs_reader and reading is not None:
            source, risks = self._token_risk(reading, grounding)
            token_risk = tuple(risks.tolist())
            span_threshold = TOKEN_PROBE_THRESHOLD if source == "token_probe" else self.threshold
            spans, risky = token_spans(reading.offsets, risks, span_threshold)
        return ProbeScore(
            detector=self.name,
            risk=self.risk,
            probability=probability,
            logit=logit,
            threshold=self.threshold,
            flagged=probability >= self.threshold,
            top_contributions=self._top(x, top_k),
            token_risk=token_risk,
            token_risk_source=source,
            token_spans=spans,
            risky_spans=risky,
            span_threshold=span_threshold,
        )

    def _token_risk(
        self, reading: Reading, grounding: GroundingResult | None
    ) -> tuple[Literal["token_probe", "detector"], np.ndarray]:
        """Per-token risk: the token probes' own probability when there are any, else the
        detector's probability of per-token rows (see :class:`ProbeScore`)."""
        token_blocks = [b for b in self.blocks if b.kind is BlockKind.TOKENS]
        if token_blocks:
            scores = np.mean(
                [
                    b.token_probe.token_scores(
                        reading.activation(b.parsed_site).float().cpu().numpy()
                    )
                    for b in token_blocks
                ],
                axis=0,
            )
            return "token_probe", scores.reshape(-1)
        rows = assemble(
            self.blocks, reading=reading, saes=self.saes, grounding=grounding, per_token=True
        )
        return "detector", self.predict_proba(rows)

    def _top(self, x: np.ndarray, k: int) -> tuple[LatentContribution, ...]:
        contributions = x * self.coef
        order = [i for i in np.argsort(-contributions)[:k] if contributions[i] > 0]
        out = []
        names = [name for b in self.blocks for name in b.column_names()]
        offsets = np.cumsum([0, *[b.width for b in self.blocks]])
        for i in order:
            b = int(np.searchsorted(offsets, i, side="right") - 1)
            block = self.blocks[b]
            latent = None
            url = None
            contexts: tuple[str, ...] = ()
            if block.kind is BlockKind.SAE:
                latent = block.latent_ids[(i - offsets[b]) % len(block.latent_ids)]
                npid = self.neuronpedia_ids.get(str(block.site))
                url = f"https://www.neuronpedia.org/{npid}/{latent}" if npid else None
                contexts = self.explanations.get(str(block.site), {}).get(latent, ())
            out.append(
                LatentContribution(
                    name=names[i],
                    site=block.site,
                    latent=latent,
                    weight=float(self.coef[i]),
                    value=float(x[i]),
                    contribution=float(contributions[i]),
                    url=url,
                    contexts=contexts,
                )
            )
        return tuple(out)
