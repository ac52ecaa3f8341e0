"""Scoring detectors on labeled rows: metrics with intervals, breakdowns, report entries."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from calibration.data import LabeledDataset
from calibration.extract import extract_features
from calibration.layouts import token_probe_facts, top_heads, top_latents
from calibration.metrics import Metrics, compute_metrics, metrics_by
from calibration.report_examples import ExampleScorer, check_examples
from calibration.report_model import DetectorEvaluation, EvaluationReport, TokenExample
from detectors.bundle import DetectorBundle
from detectors.feature_blocks import BlockKind
from detectors.probe import ProbeDetector
from detectors.token_scoring import aggregate_scores
from scope_guard.errors import ConfigError, InputError

if TYPE_CHECKING:
    from detectors.grounding import GroundingDetector
    from scope_guard.reader import Reader

__all__ = [
    "BREAKDOWN_FIELDS",
    "breakdown_field",
    "dataset_summary",
    "evaluate",
    "evaluation_of",
    "reader_summary",
    "stand_in_notes",
]

logger = logging.getLogger(__name__)

BREAKDOWN_FIELDS = ("task_type", "domain", "source", "category")


def breakdown_field(dataset: LabeledDataset, requested: str | None) -> str | None:
    if requested is not None:
        return requested
    for name in BREAKDOWN_FIELDS:
        values = dataset.field(name)
        if len(values) and np.mean([v is not None for v in values]) > 0.5:
            return name
    return None


def evaluation_of(
    detector: ProbeDetector,
    kind: str,
    y: np.ndarray,
    probs: np.ndarray,
    groups: np.ndarray,
    breakdown: tuple[str, np.ndarray] | None,
    n_bootstrap: int,
    random_state: int,
    *,
    thresholds: np.ndarray | None = None,
    examples: list[TokenExample] | None = None,
) -> DetectorEvaluation:
    """Metrics of ``detector`` on scored rows (``thresholds``: one per row, when the rows were
    scored by several fold models; default: the detector's own threshold), what it weighs, and
    the ``examples`` to show with their per-token risk."""
    threshold: float | np.ndarray = detector.threshold if thresholds is None else thresholds
    metrics = compute_metrics(
        y,
        probs,
        threshold,
        groups=groups,
        n_bootstrap=n_bootstrap,
        random_state=random_state,
    )
    by_field: dict[str, dict[str, Metrics]] = {}
    if breakdown is not None:
        name, values = breakdown
        by_field[name] = metrics_by(
            np.array([str(v) for v in values], dtype=object),
            y,
            probs,
            threshold,
            groups=groups,
            n_bootstrap=n_bootstrap,
            random_state=random_state,
        )
    return DetectorEvaluation(
        detector=detector.name,
        risk=str(detector.risk),
        kind=kind,
        metrics=metrics,
        by_field=by_field,
        threshold_rule=str(detector.info.get("threshold_rule", "f1")),
        threshold_target=detector.info.get("threshold_target"),
        calibration_method=detector.calibration.method,
        held_out_log_loss=detector.calibration.held_out_log_loss,
        n_features=int(detector.info.get("n_features") or detector.coef.shape[0]),
        n_selected=int(np.count_nonzero(detector.coef)),
        top_latents=top_latents(detector),
        top_heads=top_heads(detector),
        token_probes=token_probe_facts(detector),
        examples=list(examples or []),
        y=[int(v) for v in y],
        probs=[float(p) for p in probs],
    )


def dataset_summary(dataset: LabeledDataset) -> dict[str, Any]:
    balance = {
        str(risk): {"n": b.n_labeled, "positive": b.n_positive, "negative": b.n_negative}
        for risk, b in dataset.class_balance().items()
    }
    return {
        "source": dataset.source,
        "format": dataset.format,
        "n": len(dataset),
        "class_balance": balance,
        "content_hash": dataset.content_hash(),
    }


def reader_summary(reader: Reader | None) -> dict[str, Any] | None:
    if reader is None:
        return None
    info = reader.info
    summary: dict[str, Any] = {
        "name": info.name,
        "model_type": info.model_type,
        "sites": [str(s) for s in info.sites],
        "dtype": info.dtype,
        "stand_in": info.is_stand_in,
    }
    # The reader-side blocks beyond the sites' activations, named only when read.
    blocks = [
        name for name, on in (("lookback", info.lookback), ("surprisal", info.surprisal)) if on
    ]
    if blocks:
        summary["reader_blocks"] = blocks
    return summary


def stand_in_notes(reader: Reader | None) -> list[str]:
    if reader is not None and reader.is_stand_in:
        return [
            "The reader is the built-in miniature stand-in (random weights): its SAE and raw "
            "probes measure nothing about real models; only the grounding features are real."
        ]
    return []


def evaluate(
    bundle: DetectorBundle,
    dataset: LabeledDataset,
    *,
    reader: Reader | None = None,
    grounding: GroundingDetector | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    n_bootstrap: int = 1000,
    random_state: int = 0,
    breakdown: str | None = None,
    progress: bool = True,
    examples: int = 3,
) -> EvaluationReport:
    """Score every detector of ``bundle`` on the rows of ``dataset`` labeled for its risk.

    ``examples`` rows per reader detector are shown in the report with their per-token risk
    (their response texts go into the report; 0 keeps every text out of it).
    """
    check_examples(examples)
    if reader is not None:
        bundle.check_reader(reader)
    evaluations = []
    for detector in bundle.detectors.values():
        data = dataset.with_label(detector.risk)
        if len(data) == 0:
            logger.warning("no rows labeled for %s: skipping %s", detector.risk, detector.name)
            continue
        if detector.needs_reader and reader is None:
            msg = f"detector {detector.name!r} needs the bundle's reader"
            raise ConfigError(msg)
        if detector.needs_grounding and grounding is None:
            msg = f"detector {detector.name!r} needs a grounding detector"
            raise ConfigError(msg)
        raw_sites = [b.parsed_site for b in detector.blocks if b.kind is BlockKind.RAW]
        token_blocks = [b for b in detector.blocks if b.kind is BlockKind.TOKENS]
        features = extract_features(
            data,
            reader=reader if detector.needs_reader else None,
            saes=detector.saes,
            raw_sites=raw_sites,
            pooling=detector.blocks[0].pooling if detector.blocks else "mean_max",
            grounding=grounding if detector.needs_grounding else None,
            cache_dir=cache_dir,
            progress=progress,
            token_sites=[b.parsed_site for b in token_blocks],
            lookback=detector.needs_lookback,
            surprisal=detector.needs_surprisal,
        )
        for block in token_blocks:  # the bundle's own probe, as the guard applies it
            probe = block.token_probe
            features.token_aggregates[block.parsed_site] = np.stack(
                [
                    aggregate_scores(probe.token_scores(acts))
                    for acts in features.tokens[block.parsed_site]
                ]
            )
        probs = detector.predict_proba(features.matrix(detector.blocks))
        y = data.y(detector.risk)
        field_name = breakdown_field(data, breakdown)
        split = (field_name, data.field(field_name)) if field_name else None
        shown: list[TokenExample] = []
        if examples and reader is not None and detector.needs_reader:
            scorer = ExampleScorer(data, reader, grounding)
            rows = np.arange(len(data))
            shown = scorer.examples([detector] * len(rows), rows, y, probs, examples)
        evaluations.append(
            evaluation_of(
                detector,
                str(detector.info.get("kind", "")),
                y,
                probs,
                data.groups(),
                split,
                n_bootstrap,
                random_state,
                examples=shown,
            )
        )
    if not evaluations:
        msg = "the dataset has no rows labeled for any risk of the bundle's detectors"
        raise InputError(msg)
    return EvaluationReport(
        title=f"scope-guard evaluation on {dataset.format} ({dataset.source})",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        dataset=dataset_summary(dataset),
        reader=reader_summary(reader),
        split={"method": "every row scored by the bundle's detectors (no fitting)"},
        evaluations=evaluations,
        notes=stand_in_notes(reader),
    )
