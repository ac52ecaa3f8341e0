"""The feature layout of a probe detector: an ordered list of blocks, concatenated.

A block is one source of features:

- ``sae``: pooled SAE codes of selected latents at one site (``len(latent_ids) * parts`` columns;
  for ``mean_max`` all mean columns first, then all max columns);
- ``raw``: pooled raw activations at one site (``d * parts`` columns): the baseline probe;
- ``grounding``: the grounding detector's fixed feature vector;
- ``lookback``: the mean lookback ratio over the response of every head of layers ``0 ..`` the
  block's site layer (``(layer + 1) * heads`` columns, layer-major; needs a reader made with
  ``lookback=True``, see :mod:`scope_guard.reader.lookback`);
- ``tokens``: a token-level probe at one site (its fitted direction travels in the block), its
  per-token risk aggregated over the response (:data:`detectors.token_scoring.AGGREGATES`);
- ``surprisal``: the reader's surprisal and entropy of each response token, pooled
  (``4 + len(thresholds)`` columns, :mod:`detectors.surprisal_pooling`; no site: it needs a
  reader made with ``surprisal=True``, which runs every layer and the LM head).

The same layout is used to fit the probe (from cached, full-width features) and to score a live
request (from a :class:`~scope_guard.reader.Reading` and a grounding result), so a detector's
coefficients always meet the columns they were fitted on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from detectors.surprisal_pooling import (
    DEFAULT_THRESHOLDS,
    MAX_THRESHOLDS,
    SURPRISAL_VERSION,
    surprisal_column_names,
    surprisal_columns,
    surprisal_token_rows,
)
from detectors.token_scoring import AGGREGATES, TokenProbe, aggregate_scores
from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.features import Pooling, feature_names, pool_codes
from scope_guard.sites import Site

if TYPE_CHECKING:
    import torch

    from detectors.grounding import GroundingResult
    from scope_guard.reader import Reading
    from scope_guard.sae import JumpReLUSAE

__all__ = [
    "BlockKind",
    "FeatureBlock",
    "assemble",
    "layout_names",
    "layout_width",
    "surprisal_block",
    "surprisal_block_rows",
]


class BlockKind(StrEnum):
    SAE = "sae"
    RAW = "raw"
    GROUNDING = "grounding"
    LOOKBACK = "lookback"
    TOKENS = "tokens"
    SURPRISAL = "surprisal"


_SITED = (BlockKind.SAE, BlockKind.RAW, BlockKind.LOOKBACK, BlockKind.TOKENS)


class FeatureBlock(BaseModel):
    """One block of a detector's feature vector.

    Attributes:
        kind: Where the features come from.
        site: The hook site (``sae`` and ``raw`` blocks), e.g. ``"resid_post@20"``.
        pooling: How per-token vectors were pooled (``sae`` and ``raw`` blocks).
        latent_ids: ``sae``: the original SAE latent ids, in column order.
        d: ``raw``: width of the site's activations.
        names: ``grounding``: the grounding feature names, in order.
        version: ``grounding``: the grounding feature-set version; ``surprisal``: the
            column definitions' version (:data:`detectors.surprisal_pooling.SURPRISAL_VERSION`).
        heads: ``lookback``: attention heads per layer.
        probe_weights: ``tokens``: the probe's coefficients on standardized activations.
        probe_mean: ``tokens``: per-dimension mean used to standardize.
        probe_scale: ``tokens``: per-dimension standard deviation used to standardize.
        probe_bias: ``tokens``: the probe's intercept.
        thresholds: ``surprisal``: nats thresholds of its ``frac_above`` columns, increasing.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: BlockKind
    site: str | None = None
    pooling: Pooling = Pooling.MEAN_MAX
    latent_ids: list[int] = []
    d: int | None = None
    names: list[str] = []
    version: int | None = None
    heads: int | None = None
    probe_weights: list[float] = []
    probe_mean: list[float] = []
    probe_scale: list[float] = []
    probe_bias: float = 0.0
    thresholds: list[float] = []

    @model_validator(mode="after")
    def _check(self) -> FeatureBlock:
        if self.kind in _SITED:
            if self.site is None:
                msg = f"a {self.kind} block needs a site"
                raise ConfigError(msg)
            Site.parse(self.site)
        if self.kind is BlockKind.RAW and (self.d is None or self.d <= 0):
            msg = f"a raw block needs its width d, a positive integer; got {self.d!r}"
            raise ConfigError(msg)
        if self.kind is BlockKind.SAE:
            negative = [i for i in self.latent_ids if i < 0]
            if negative:
                msg = f"an sae block's latent ids must be >= 0, got {negative[:5]}"
                raise ConfigError(msg)
            if len(set(self.latent_ids)) != len(self.latent_ids):
                msg = "an sae block lists a latent id twice"
                raise ConfigError(msg)
        if self.kind is BlockKind.GROUNDING and (not self.names or self.version is None):
            msg = "a grounding block needs its feature names and version"
            raise ConfigError(msg)
        if self.kind is BlockKind.LOOKBACK and (self.heads is None or self.heads <= 0):
            msg = f"a lookback block needs its heads per layer (an integer > 0), got {self.heads!r}"
            raise ConfigError(msg)
        if self.kind is BlockKind.SURPRISAL:
            self._check_surprisal()
        if self.kind is BlockKind.TOKENS:
            sizes = {len(self.probe_weights), len(self.probe_mean), len(self.probe_scale)}
            if len(sizes) != 1 or not self.probe_weights:
                msg = "a tokens block needs probe weights, mean and scale of one length"
                raise ConfigError(msg)
            values = [*self.probe_weights, *self.probe_mean, *self.probe_scale, self.probe_bias]
            if not np.all(np.isfinite(values)) or min(self.probe_scale) <= 0:
                msg = "a tokens block's probe must be finite, with positive scales"
                raise ConfigError(msg)
        return self

    def _check_surprisal(self) -> None:
        if self.site is not None:
            msg = f"a surprisal block reads the whole model and has no site, got {self.site!r}"
            raise ConfigError(msg)
        if self.version != SURPRISAL_VERSION:
            msg = (
                f"a surprisal block of version {self.version!r}; this scope-guard computes "
                f"version {SURPRISAL_VERSION} (recalibrate the detector)"
            )
            raise ConfigError(msg)
        t = np.asarray(self.thresholds, dtype=np.float64)
        if not 1 <= t.size <= MAX_THRESHOLDS:
            msg = f"a surprisal block needs 1 to {MAX_THRESHOLDS} thresholds, got {t.size}"
            raise ConfigError(msg)
        if not np.all(np.isfinite(t)) or t.min() <= 0 or np.any(np.diff(t) <= 0):
            msg = (
                "a surprisal block's thresholds must be finite, positive nats in increasing "
                f"order, got {self.thresholds[:MAX_THRESHOLDS]}"
            )
            raise ConfigError(msg)

    @property
    def token_probe(self) -> TokenProbe:
        """``tokens``: the fitted probe the block carries."""
        return TokenProbe(
            weights=np.asarray(self.probe_weights, dtype=np.float64),
            bias=float(self.probe_bias),
            mean=np.asarray(self.probe_mean, dtype=np.float64),
            scale=np.asarray(self.probe_scale, dtype=np.float64),
        )

    @property
    def parsed_site(self) -> Site:
        if self.site is None:
            msg = f"a {self.kind} block has no site"
            raise ConfigError(msg)
        return Site.parse(self.site)

    @property
    def width(self) -> int:
        parts = len(self.pooling.parts)
        if self.kind is BlockKind.SAE:
            return len(self.latent_ids) * parts
        if self.kind is BlockKind.RAW:
            return int(self.d or 0) * parts
        if self.kind is BlockKind.LOOKBACK:
            return (self.parsed_site.layer + 1) * int(self.heads or 0)
        if self.kind is BlockKind.TOKENS:
            return len(AGGREGATES)
        if self.kind is BlockKind.SURPRISAL:
            return len(surprisal_column_names(self.thresholds))
        return len(self.names)

    def column_names(self) -> list[str]:
        if self.kind is BlockKind.SAE:
            return feature_names(self.parsed_site, np.asarray(self.latent_ids), self.pooling)
        if self.kind is BlockKind.RAW:
            width = range(self.d or 0)
            return [f"{self.site}/raw_{p}/{i}" for p in self.pooling.parts for i in width]
        if self.kind is BlockKind.LOOKBACK:
            layers = range(self.parsed_site.layer + 1)
            return [f"lookback/L{la}/H{h}" for la in layers for h in range(self.heads or 0)]
        if self.kind is BlockKind.TOKENS:
            return [f"{self.site}/tokens/{a}" for a in AGGREGATES]
        if self.kind is BlockKind.SURPRISAL:
            return [f"surprisal/{n}" for n in surprisal_column_names(self.thresholds)]
        return [f"grounding/{n}" for n in self.names]


def surprisal_block(thresholds: Sequence[float] | None = None) -> FeatureBlock:
    """A ``surprisal`` block (default thresholds: :data:`DEFAULT_THRESHOLDS`)."""
    chosen = DEFAULT_THRESHOLDS if thresholds is None else thresholds
    return FeatureBlock(
        kind=BlockKind.SURPRISAL, version=SURPRISAL_VERSION, thresholds=[float(t) for t in chosen]
    )


def layout_width(blocks: Sequence[FeatureBlock]) -> int:
    return sum(b.width for b in blocks)


def layout_names(blocks: Sequence[FeatureBlock]) -> list[str]:
    return [name for b in blocks for name in b.column_names()]


def _pooled_block(
    block: FeatureBlock, per_token: torch.Tensor, *, per_token_rows: bool
) -> np.ndarray:
    """``(1, width)`` pooled, or ``(n_tokens, width)`` with each token standing for the whole."""
    if not per_token_rows:
        return pool_codes(per_token, block.pooling).cpu().numpy()[None, :]
    rows = per_token.float().cpu().numpy()
    return np.concatenate([rows] * len(block.pooling.parts), axis=1)


def _lookback_block(block: FeatureBlock, reading: Reading, *, per_token_rows: bool) -> np.ndarray:
    ratios = reading.lookback_ratios()
    layers, heads = block.parsed_site.layer + 1, int(block.heads or 0)
    if ratios.shape[1] < layers or ratios.shape[2] != heads:
        msg = (
            f"the reading's lookback ratios are {tuple(ratios.shape[1:])} layers x heads; the "
            f"detector needs {layers} x {heads}"
        )
        raise ConfigError(msg)
    rows = ratios[:, :layers].reshape(ratios.shape[0], -1).double().cpu().numpy()
    if per_token_rows:
        return rows
    return rows.mean(axis=0, keepdims=True) if rows.shape[0] else np.zeros((1, rows.shape[1]))


def surprisal_block_rows(
    block: FeatureBlock, surprisal: np.ndarray, entropy: np.ndarray, *, per_token_rows: bool
) -> np.ndarray:
    """A surprisal block's ``(1, width)`` pooled row, or ``(n_tokens, width)`` per-token rows,
    from one response's per-token surprisal and entropy (nats)."""
    if per_token_rows:
        return surprisal_token_rows(surprisal, entropy, block.thresholds)
    return surprisal_columns(surprisal, entropy, block.thresholds)[None, :]


def assemble(
    blocks: Sequence[FeatureBlock],
    *,
    reading: Reading | None = None,
    saes: Mapping[Site, JumpReLUSAE] | None = None,
    grounding: GroundingResult | None = None,
    per_token: bool = False,
) -> np.ndarray:
    """Build the feature matrix of one response for ``blocks``.

    Args:
        blocks: The detector's layout.
        reading: Needed by every block but ``grounding``.
        saes: Per site, an SAE computing exactly the block's ``latent_ids`` (narrowed).
        grounding: Needed by a ``grounding`` block.
        per_token: Return one row per response token, each token's own vector standing in for
            every pooled part (mean = max = the token), for per-token risk; response-level
            blocks (grounding) are repeated on every row.

    Returns:
        ``(1, width)``, or ``(n_tokens, width)`` with ``per_token``; float64.

    Raises:
        ConfigError: an input the layout needs is missing.
        ArtifactError: the grounding features do not match the layout (another version).
    """
    n_rows = reading.n_tokens if (per_token and reading is not None) else 1
    parts: list[np.ndarray] = []
    for block in blocks:
        if block.kind is BlockKind.GROUNDING:
            if grounding is None:
                msg = "this detector needs a grounding result (it has a grounding block)"
                raise ConfigError(msg)
            if list(grounding.feature_names) != block.names:
                msg = (
                    f"grounding features v{grounding.features_version} do not match the "
                    f"detector's v{block.version} layout; recalibrate the detector"
                )
                raise ArtifactError(msg)
            parts.append(np.repeat(grounding.feature_array()[None, :], n_rows, axis=0))
            continue
        if reading is None:
            where = f" at {block.site}" if block.site is not None else ""
            msg = f"this detector needs a reading (it has a {block.kind} block{where})"
            raise ConfigError(msg)
        if block.kind is BlockKind.LOOKBACK:
            parts.append(_lookback_block(block, reading, per_token_rows=per_token))
            continue
        if block.kind is BlockKind.SURPRISAL:
            values = reading.token_surprisal()
            if values.surprisal.shape[0] != reading.n_tokens:
                msg = (
                    f"the reading has {values.surprisal.shape[0]} surprisal values for "
                    f"{reading.n_tokens} tokens"
                )
                raise ConfigError(msg)
            parts.append(
                surprisal_block_rows(
                    block,
                    values.surprisal.double().numpy(),
                    values.entropy.double().numpy(),
                    per_token_rows=per_token,
                )
            )
            continue
        site = block.parsed_site
        acts = reading.activation(site)
        if block.kind is BlockKind.TOKENS:
            if acts.shape[1] != len(block.probe_weights):
                msg = (
                    f"the tokens block at {site} reads width {len(block.probe_weights)}; the "
                    f"reader gives {acts.shape[1]}"
                )
                raise ArtifactError(msg)
            scores = block.token_probe.token_scores(acts.float().cpu().numpy())
            if per_token:  # each token's own risk stands in for every aggregate
                parts.append(np.stack([scores, scores, (scores >= 0.5) * 1.0, scores], axis=1))
            else:
                parts.append(aggregate_scores(scores)[None, :])
            continue
        if block.kind is BlockKind.RAW:
            parts.append(_pooled_block(block, acts, per_token_rows=per_token))
            continue
        sae = (saes or {}).get(site)
        if sae is None or sae.latent_ids.tolist() != block.latent_ids:
            msg = f"no SAE narrowed to the detector's latents at {site}"
            raise ConfigError(msg)
        codes = sae.encode(acts)
        parts.append(_pooled_block(block, codes, per_token_rows=per_token))
    if not parts:  # an L1 probe that kept no feature: intercept only
        return np.zeros((n_rows, 0))
    return np.concatenate(parts, axis=1).astype(np.float64)
