"""The reader-side blocks beyond pooled activations: lookback ratios, surprisal and token-level
probes.

``calibrate`` selects them like any block (``lookback=True``, ``token_sites=[...]``). Lookback
and surprisal blocks are fixed functions of the reading. A tokens block carries a probe fitted
on labeled spans, so its columns depend on which rows trained it: :class:`TokenBlocks` fits the
probe on the training rows only, gives those rows cross-fitted aggregates (inner grouped folds)
and the scored rows the aggregates of the probe fitted on all training rows, once per fold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from calibration.data import LabeledDataset
from calibration.extract import ExtractedFeatures
from calibration.token_probe import cross_fit_aggregates, token_labels
from detectors.feature_blocks import BlockKind, FeatureBlock
from detectors.feature_blocks import surprisal_block as make_surprisal_block
from scope_guard.errors import ConfigError, InputError
from scope_guard.risks import Risk
from scope_guard.sites import Site, SiteKind

__all__ = ["TokenBlocks", "lookback_block", "surprisal_block"]


def lookback_block(features: ExtractedFeatures) -> FeatureBlock:
    """The lookback block of every layer the extraction read (layers 0 .. deepest)."""
    if features.lookback_shape is None:
        msg = "no lookback ratios extracted"
        raise ConfigError(msg)
    layers, heads = features.lookback_shape
    return FeatureBlock(
        kind=BlockKind.LOOKBACK, site=str(Site(layers - 1, SiteKind.RESID_POST)), heads=heads
    )


def surprisal_block(
    features: ExtractedFeatures, thresholds: Sequence[float] | None = None
) -> FeatureBlock:
    """The surprisal block over the extracted per-token surprisal (default thresholds:
    :data:`detectors.surprisal_pooling.DEFAULT_THRESHOLDS`)."""
    if features.token_surprisal is None:
        msg = "no surprisal extracted (extract with surprisal=True)"
        raise ConfigError(msg)
    return make_surprisal_block(thresholds)


class TokenBlocks:
    """Token-probe blocks at ``sites``, refitted for each set of training rows.

    Args:
        dataset: The labeled rows (their spans of ``risk`` label the tokens).
        features: Extracted features with per-token activations at every site.
        sites: Where the token probes read.
        risk: The risk whose spans are the positive tokens.
        inner_splits: Grouped folds that cross-fit the training rows' aggregates.
        random_state: Seed of those folds.
    """

    def __init__(
        self,
        dataset: LabeledDataset,
        features: ExtractedFeatures,
        sites: Sequence[Site],
        risk: Risk,
        *,
        inner_splits: int = 3,
        random_state: int = 0,
    ) -> None:
        if features.token_offsets is None or any(s not in features.tokens for s in sites):
            msg = "token probes need per-token activations at every token site"
            raise ConfigError(msg)
        self.features = features
        self.sites = list(sites)
        self.labels = [
            token_labels(off, ex.spans, risk)
            for off, ex in zip(features.token_offsets, dataset, strict=True)
        ]
        if not any(v.any() for v in self.labels):
            msg = (
                f"token probes need labeled spans of {risk}; this dataset has none (use pooled "
                "raw or SAE blocks instead)"
            )
            raise InputError(msg)
        self.y = dataset.y(risk)
        self.groups = dataset.groups()
        self.inner_splits = inner_splits
        self.random_state = random_state

    def fit(self, train: np.ndarray, test: np.ndarray) -> list[FeatureBlock]:
        """Fit each site's probe on ``train``; set the aggregates of ``train`` and ``test`` rows in
        ``features.token_aggregates``; return the blocks carrying the fitted probes."""
        blocks = []
        for site in self.sites:
            agg_train, agg_test, probe = cross_fit_aggregates(
                self.features.tokens[site],
                self.labels,
                self.y,
                self.groups,
                train,
                test,
                inner_splits=self.inner_splits,
                random_state=self.random_state,
            )
            column = np.zeros((self.features.n, agg_train.shape[1]))
            column[train] = agg_train
            column[test] = agg_test
            self.features.token_aggregates[site] = column
            blocks.append(
                FeatureBlock(
                    kind=BlockKind.TOKENS,
                    site=str(site),
                    probe_weights=probe.weights.tolist(),
                    probe_mean=probe.mean.tolist(),
                    probe_scale=probe.scale.tolist(),
                    probe_bias=probe.bias,
                )
            )
        return blocks
