"""From labeled data to a bundle of calibrated detectors, and back to honest metrics.

``calibrate`` holds out whole groups for evaluation, then on the training groups:

1. cross-fits the probe (each training row scored by a probe that never saw its group, and
   whose ``C`` was chosen without it);
2. fits the calibration map on those out-of-fold scores and picks the threshold on them;
3. fits the final probe on all training rows, narrows every SAE block to the latents it uses.

The held-out groups are scored once, at the end, by the finished detector. Probe fitting,
calibration and evaluation thus never share rows, and no group straddles a split. Every SAE
probe is fitted beside a raw-activation probe on the same rows, and both are reported.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from calibration.calibrators import fit_calibration_map
from calibration.data import LabeledDataset
from calibration.evaluation import (
    breakdown_field,
    dataset_summary,
    evaluation_of,
    reader_summary,
    stand_in_notes,
)
from calibration.extract import extract_features
from calibration.layouts import Variant, narrow_layout, probe_variants
from calibration.probe import SparseProbe
from calibration.reader_blocks import TokenBlocks, lookback_block, surprisal_block
from calibration.report_examples import ExampleScorer, check_examples
from calibration.report_model import EvaluationReport
from calibration.splits import cross_fit_scores, group_folds, group_train_test_split, take_rows
from calibration.thresholds import choose_threshold
from detectors.bundle import DetectorBundle
from detectors.feature_blocks import BlockKind, FeatureBlock
from detectors.latent_explanations import rendered_contexts
from detectors.probe import ProbeDetector
from scope_guard.errors import ArtifactError, ConfigError, InputError
from scope_guard.risks import Risk
from scope_guard.sites import Site

if TYPE_CHECKING:
    import os

    from detectors.grounding import GroundingDetector
    from scope_guard.reader import Reader
    from scope_guard.sae import JumpReLUSAE
    from scope_guard.sae.training.explain import LatentContext

__all__ = ["CalibrationResult", "CalibrationSettings", "calibrate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibrationSettings:
    """How to fit and calibrate.

    Attributes:
        risk: The risk to fit detectors for.
        penalty: ``"l1"`` (selects latents) or ``"l2"``.
        C: Inverse regularization strength; ``None`` chooses it by group-aware CV.
        nested_c: With ``C=None``, each cross-fitted probe chooses its own ``C`` on its own
            training folds (nested CV), so nothing chosen on a row reaches that row's
            out-of-fold score, which fits the calibration map and the threshold. This runs
            ``n_splits + 1`` searches of ``C`` instead of one, about 5x the fitting time
            (grounding-only RAGTruth dev, ``evaluation="cv"``: 50 s -> 4 min 20 s on 2 cores).
            ``False`` reuses the final probe's ``C`` in the cross-fitted probes: one scalar
            chosen on the rows they score, a slight optimism in calibration and threshold.
        calibration: ``"sigmoid"``, ``"isotonic"``, ``"temperature"`` or ``"auto"`` (by held-out
            log loss).
        threshold_rule: ``"f1"``, ``"fpr"`` (largest recall at FPR <= target) or ``"precision"``
            (largest recall at precision >= target).
        threshold_target: Target of the ``fpr`` rule, in ``[0, 1]`` (0 flags only what scores
            above every negative), or of the ``precision`` rule, in ``(0, 1]`` (a target of 0
            is met by every threshold, so it would flag everything).
        test_size: Fraction of groups held out for evaluation.
        n_splits: Folds of the cross-fitting.
        random_state: Seed of every split.
        n_bootstrap: Bootstrap resamples for the metric intervals.
        breakdown: Meta field for per-value metrics (default: the first of task_type, domain,
            source, category that the data has).
        evaluation: ``"holdout"``: hold out ``test_size`` of the groups, fit on the rest, and
            report on the held-out groups; the bundle is the detector fitted on the rest.
            ``"cv"``: ``n_outer`` grouped folds; each fold's groups are scored by the whole
            pipeline (fit, calibration, threshold) run on the other folds, so every row is
            held out once and the metrics use all of them; the bundle is then fitted on all
            rows. Costs ``n_outer + 1`` fits.
        n_outer: Outer folds of ``evaluation="cv"``.
        examples: Held-out rows per reader detector that the report shows with their per-token
            risk over the response (:mod:`calibration.report_examples`); their response texts
            go into the report. 0 keeps every text out of it.
    """

    risk: Risk
    penalty: Literal["l1", "l2"] = "l1"
    C: float | None = None
    nested_c: bool = True
    calibration: Literal["sigmoid", "isotonic", "temperature", "auto"] = "auto"
    threshold_rule: Literal["f1", "fpr", "precision"] = "f1"
    threshold_target: float | None = None
    test_size: float = 0.25
    n_splits: int = 5
    random_state: int = 0
    n_bootstrap: int = 1000
    breakdown: str | None = None
    evaluation: Literal["holdout", "cv"] = "holdout"
    n_outer: int = 5
    examples: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "risk", Risk.parse(self.risk))
        check_examples(self.examples)
        rule, target = self.threshold_rule, self.threshold_target
        if rule not in ("f1", "fpr", "precision"):
            msg = f"unknown threshold rule {rule!r}; valid: ['f1', 'fpr', 'precision']"
            raise ConfigError(msg)
        if rule == "f1" and target is not None:
            msg = "the 'f1' threshold rule takes no threshold_target (it is for 'fpr'/'precision')"
            raise ConfigError(msg)
        if rule != "f1":
            if target is None:
                msg = f"threshold rule {rule!r} needs a threshold_target"
                raise ConfigError(msg)
            # Checked here, so that a bad target fails before the features are extracted.
            ok = 0.0 <= target <= 1.0 if rule == "fpr" else 0.0 < target <= 1.0
            if not ok:
                bounds = "[0, 1]" if rule == "fpr" else "(0, 1]"
                msg = f"the {rule!r} threshold_target must be in {bounds}, got {target!r}"
                raise ConfigError(msg)
        if not 0.0 < self.test_size < 1.0:
            msg = f"test_size must be in (0, 1), got {self.test_size}"
            raise ConfigError(msg)
        if self.evaluation not in ("holdout", "cv"):
            msg = f"evaluation must be 'holdout' or 'cv', got {self.evaluation!r}"
            raise ConfigError(msg)
        if self.n_outer < 2:
            msg = f"n_outer must be >= 2, got {self.n_outer}"
            raise ConfigError(msg)


@dataclass
class CalibrationResult:
    """The bundle of fitted detectors and the report of their held-out evaluation."""

    bundle: DetectorBundle
    report: EvaluationReport
    held_out: dict[str, np.ndarray] = field(default_factory=dict)


def _threshold(settings: CalibrationSettings, probs: np.ndarray, y: np.ndarray) -> float:
    rule, target = settings.threshold_rule, settings.threshold_target
    return choose_threshold(probs, y, rule, target).threshold


def _sae_explanations(
    sae_map: Mapping[Site, JumpReLUSAE],
) -> dict[Site, dict[int, list[LatentContext]]]:
    """Per site, the top-activating contexts saved beside a local SAE (self-trained ones);
    registry SAEs (their source is a registry id) have Neuronpedia pages instead."""
    from pathlib import Path

    from scope_guard.sae.training.explain import load_explanations

    out = {}
    for site, sae in sae_map.items():
        source = sae.info.source
        if not source or not Path(source).exists():
            continue
        try:
            out[site] = load_explanations(Path(source))
        except ArtifactError as exc:  # they explain latents; the detectors do not need them
            logger.warning("latents at %s left unexplained: %s", site, exc)
    return out


@dataclass(frozen=True)
class _Fitted:
    detector: ProbeDetector
    probe: SparseProbe
    n_features: int


def _fit_detector(
    variant: Variant,
    X: Any,
    y: np.ndarray,
    groups: np.ndarray,
    rows: np.ndarray,
    settings: CalibrationSettings,
    sae_map: Mapping[Site, JumpReLUSAE],
    contexts: Mapping[Site, Mapping[int, list[LatentContext]]] | None = None,
) -> _Fitted:
    """The whole fitting recipe on ``rows``: probe, cross-fitted calibration, threshold; the
    kept latents' top ``contexts`` (:func:`_sae_explanations`) go with the detector."""

    def make_probe(C: float | None = settings.C) -> SparseProbe:
        return SparseProbe(
            penalty=settings.penalty, C=C, cv=settings.n_splits, random_state=settings.random_state
        )

    X_tr, y_tr, g_tr = take_rows(X, rows), y[rows], groups[rows]
    logger.info(
        "fitting %s (%s) on %d rows, %d features",
        variant.name,
        variant.kind,
        len(rows),
        X.shape[1],
    )
    probe = make_probe().fit(X_tr, y_tr, groups=g_tr)
    # The out-of-fold scores fit the calibration map and the threshold, so each cross-fitted
    # probe chooses C on its own training folds: the final probe's C was chosen on all these
    # rows, including the ones a copy scores (see CalibrationSettings.nested_c).
    oof = cross_fit_scores(
        make_probe if settings.nested_c else partial(make_probe, probe.C_),
        X_tr,
        y_tr,
        g_tr,
        n_splits=settings.n_splits,
        random_state=settings.random_state,
    )
    cmap = fit_calibration_map(
        oof, y_tr, settings.calibration, groups=g_tr, random_state=settings.random_state
    )
    threshold = _threshold(settings, cmap.apply(oof), y_tr)
    blocks, coef = narrow_layout(variant.blocks, probe.coef_.ravel())
    used = {b.parsed_site: b.latent_ids for b in blocks if b.kind is BlockKind.SAE}
    detector = ProbeDetector(
        name=variant.name,
        risk=settings.risk,
        blocks=blocks,
        coef=coef,
        intercept=float(probe.intercept_[0]),
        calibration=cmap,
        threshold=threshold,
        saes={site: sae_map[site].narrow(latents) for site, latents in used.items()},
        neuronpedia_ids={str(site): sae_map[site].info.neuronpedia_id for site in used},
        explanations={
            str(site): {
                latent: rendered_contexts(found[latent]) for latent in latents if found.get(latent)
            }
            for site, latents in used.items()
            if (found := (contexts or {}).get(site))
        },
        info={
            "kind": variant.kind,
            "penalty": settings.penalty,
            "C": float(probe.C_),
            "n_features": int(X.shape[1]),
            "threshold_rule": settings.threshold_rule,
            "threshold_target": settings.threshold_target,
            "n_train": len(rows),
        },
    )
    return _Fitted(detector, probe, int(X.shape[1]))


def _with_token_blocks(variant: Variant, blocks: Sequence[FeatureBlock]) -> Variant:
    """``variant`` with its token-probe blocks, in order, replaced by ``blocks`` (a fold's)."""
    fresh = iter(blocks)
    layout = [next(fresh) if b.kind is BlockKind.TOKENS else b for b in variant.blocks]
    return Variant(variant.name, variant.kind, layout)


def _held_out_probs(fitted: _Fitted, X: Any, rows: np.ndarray) -> np.ndarray:
    return fitted.detector.calibration.apply(fitted.probe.decision_function(take_rows(X, rows)))


def calibrate(
    dataset: LabeledDataset,
    settings: CalibrationSettings,
    *,
    reader: Reader | None = None,
    saes: Mapping[Site, JumpReLUSAE] | Mapping[str, JumpReLUSAE] | None = None,
    grounding: GroundingDetector | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    raw_sites: Sequence[Site | str] | None = None,
    lookback: bool = False,
    token_sites: Sequence[Site | str] = (),
    surprisal: bool = False,
) -> CalibrationResult:
    """Fit calibrated detectors for ``settings.risk`` and evaluate them on held-out groups.

    With ``saes`` (and a reader), fits an SAE probe and a raw-activation baseline on the same
    rows, each over the grounding features too when ``grounding`` is given. Without SAEs but
    with ``raw_sites`` (and a reader), fits a raw-activation probe at those sites (over the
    grounding features, beside a grounding-only detector, when ``grounding`` is given: a reader
    for which no SAE exists yet). With neither, fits a grounding-only detector (no model
    weights needed). See :attr:`CalibrationSettings.evaluation` for the two ways rows are
    held out.

    ``lookback=True`` (a reader made with ``lookback=True``) adds the lookback block,
    ``surprisal=True`` (a reader made with ``surprisal=True``) the surprisal block, and
    ``token_sites`` a token-level probe per site trained on the rows' labeled spans
    (:mod:`calibration.reader_blocks`), to the reader detector; without SAEs or raw sites they
    form it alone, beside the grounding-only detector. A token probe is refitted inside every
    fold on that fold's training rows only.

    Raises:
        InputError: too few labeled examples or a single class.
    """
    risk = settings.risk
    data = dataset.with_label(risk)
    y = data.y(risk)
    if len(data) < 20 or len(np.unique(y)) < 2:
        msg = f"need at least 20 examples labeled for {risk} with both classes; got {len(data)}"
        raise InputError(msg)
    sae_map = {Site.parse(k): v for k, v in (saes or {}).items()}
    # dict.fromkeys: one site spelled twice (resid_post@2, blocks.2.hook_resid_post) is one block
    raw_only = [] if sae_map else list(dict.fromkeys(Site.parse(s) for s in (raw_sites or ())))
    token_list = list(dict.fromkeys(Site.parse(s) for s in token_sites))
    features = extract_features(
        data,
        reader=reader,
        saes=sae_map,
        raw_sites=list(sae_map) or raw_only,
        grounding=grounding,
        cache_dir=cache_dir,
        progress=progress,
        token_sites=token_list,
        lookback=lookback,
        surprisal=surprisal,
    )
    token_blocks = (
        TokenBlocks(data, features, token_list, risk, random_state=settings.random_state)
        if token_list
        else None
    )
    groups = data.groups()
    everything = np.arange(len(data))
    if settings.evaluation == "cv":
        folds = group_folds(
            y, groups, n_splits=settings.n_outer, random_state=settings.random_state
        )
        fit_rows, scored = everything, everything
        split_info: dict[str, Any] = {
            "method": f"{len(folds)}-fold grouped cross-validation: each fold scored by the whole "
            "pipeline fitted on the other folds; the bundle is fitted on all rows",
            "n_folds": len(folds),
        }
    else:
        split = group_train_test_split(
            y, groups, test_size=settings.test_size, random_state=settings.random_state
        )
        fit_rows, scored = split.train, split.test
        split_info = {
            "method": "held-out groups (no group on both sides); calibration on cross-fitted "
            "out-of-fold scores of the training groups",
            "n_train": len(split.train),
            "n_test": len(split.test),
            "test_size": settings.test_size,
        }
    split_info.update(n_splits=settings.n_splits, random_state=settings.random_state)
    field_name = breakdown_field(data, settings.breakdown)
    breakdown = (field_name, data.field(field_name)[scored]) if field_name else None

    extra = [lookback_block(features)] if lookback else []
    if surprisal:
        extra.append(surprisal_block(features))
    if token_blocks is not None:  # the bundle's probes: fitted on the rows the detector fits on
        unscored = np.setdiff1d(scored, fit_rows)
        extra += token_blocks.fit(fit_rows, unscored)
    final_columns = dict(features.token_aggregates)
    fold_columns: list[dict[Site, np.ndarray]] = []
    fold_token_blocks: list[list[FeatureBlock]] = []
    if token_blocks is not None and settings.evaluation == "cv":
        for train, test in folds:
            fold_token_blocks.append(token_blocks.fit(train, test))
            fold_columns.append(dict(features.token_aggregates))

    contexts = _sae_explanations(sae_map)
    scorer = ExampleScorer(data, reader, grounding) if reader is not None else None
    detectors, evaluations, held_out = [], [], {}
    for variant in probe_variants(risk, features, sae_map, reader, raw_only, extra):
        features.token_aggregates = final_columns
        X = features.matrix(variant.blocks)
        fitted = _fit_detector(variant, X, y, groups, fit_rows, settings, sae_map, contexts)
        fold_of = np.zeros(len(data), dtype=np.int64)
        fold_detectors = []
        if settings.evaluation == "cv":
            probs = np.empty(len(data))
            thresholds = np.empty(len(data))
            for k, (train, test) in enumerate(folds):
                fold_variant = variant
                if fold_columns:  # this fold's token probes never saw its test rows
                    features.token_aggregates = fold_columns[k]
                    fold_variant = _with_token_blocks(variant, fold_token_blocks[k])
                X_fold = features.matrix(variant.blocks) if fold_columns else X
                fold = _fit_detector(fold_variant, X_fold, y, groups, train, settings, sae_map)
                probs[test] = _held_out_probs(fold, X_fold, test)
                thresholds[test] = fold.detector.threshold
                fold_of[test] = k
                fold_detectors.append(fold.detector)
        else:
            probs = _held_out_probs(fitted, X, scored)
            thresholds = np.full(len(scored), fitted.detector.threshold)
            fold_detectors.append(fitted.detector)
        detector = fitted.detector
        detector.info["n_test"] = len(scored)
        held_out[variant.name] = probs
        examples = []
        if scorer is not None and settings.examples and detector.needs_reader:
            # each row scored token by token by the detector that scored it held out
            examples = scorer.examples(
                [fold_detectors[k] for k in fold_of[scored]],
                scored,
                y[scored],
                probs,
                settings.examples,
            )
        evaluation = evaluation_of(
            detector,
            variant.kind,
            y[scored],
            probs,
            groups[scored],
            breakdown,
            settings.n_bootstrap,
            settings.random_state,
            thresholds=thresholds,
            examples=examples,
        )
        detector.info["metrics"] = evaluation.metrics.model_dump(mode="json")
        detectors.append(detector)
        evaluations.append(evaluation)

    bundle = DetectorBundle(
        detectors,
        reader=DetectorBundle.reader_spec(reader, detectors) if reader is not None else None,
        saes=[DetectorBundle.sae_spec(sae, site) for site, sae in sae_map.items()],
        training={
            **dataset_summary(data),
            "risk": str(risk),
            "evaluation": settings.evaluation,
            "split": split_info,
            "n_fit": len(fit_rows),
            "grounding_version": features.grounding_version,
            # What the reader read: the examples' own prompts, or the rendered default. The
            # guard reads the same way by default (ScopeGuard.from_bundle).
            "prompt_mode": "observed" if any(ex.prompt is not None for ex in data) else "rendered",
        },
    )
    report = EvaluationReport(
        title=f"scope-guard calibration: {risk} on {data.format} ({data.source})",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        dataset=dataset_summary(data),
        reader=reader_summary(reader),
        split=split_info,
        evaluations=evaluations,
        notes=stand_in_notes(reader),
    )
    return CalibrationResult(bundle=bundle, report=report, held_out=held_out)
