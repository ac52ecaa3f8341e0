"""Feature layouts of the probes ``calibrate`` fits, and narrowing them after an L1 fit."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from calibration.extract import ExtractedFeatures
from calibration.report_model import HeadWeight, LatentWeight, TokenProbeFacts
from detectors.feature_blocks import BlockKind, FeatureBlock
from detectors.probe import ProbeDetector
from detectors.token_scoring import AGGREGATES
from scope_guard.errors import ConfigError
from scope_guard.risks import Risk
from scope_guard.sites import Site

if TYPE_CHECKING:
    from scope_guard.reader import Reader
    from scope_guard.sae import JumpReLUSAE

__all__ = [
    "Variant",
    "narrow_layout",
    "probe_variants",
    "token_probe_facts",
    "top_heads",
    "top_latents",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """One probe to fit: its detector name, a label of its inputs, and its layout."""

    name: str
    kind: str
    blocks: list[FeatureBlock]


def probe_variants(
    risk: Risk,
    features: ExtractedFeatures,
    saes: Mapping[Site, JumpReLUSAE],
    reader: Reader | None,
    raw_sites: Sequence[Site] = (),
    extra: Sequence[FeatureBlock] = (),
) -> list[Variant]:
    """The detectors to fit: per risk, an SAE probe beside a raw-activation probe (both over the
    grounding features when there are any); without SAEs, a raw-activation probe at
    ``raw_sites`` beside the grounding features alone; with neither, grounding alone.

    ``extra`` reader blocks (lookback, token probes) join every detector that reads the reader;
    with neither SAEs nor raw sites they make the reader detector by themselves."""
    extra_blocks = list(extra)
    grounding = []
    if features.grounding is not None:
        grounding = [
            FeatureBlock(
                kind=BlockKind.GROUNDING,
                names=list(features.grounding_names),
                version=features.grounding_version,
            )
        ]
    if (saes or raw_sites) and reader is None:
        msg = "SAE and raw features need a reader"
        raise ConfigError(msg)
    if not saes and not raw_sites and extra_blocks:
        if not grounding:
            return [Variant(str(risk), "reader", extra_blocks)]
        return [
            Variant(str(risk), "reader+grounding", extra_blocks + grounding),
            Variant(f"{risk}-grounding", "grounding", grounding),
        ]
    if not saes and raw_sites and reader is not None:
        raw_only = [
            FeatureBlock(
                kind=BlockKind.RAW,
                site=str(site),
                pooling=features.pooling,
                d=reader.site_dim(site),
            )
            for site in raw_sites
        ]
        raw_only += extra_blocks
        if not grounding:
            return [Variant(str(risk), "raw", raw_only)]
        return [
            Variant(str(risk), "raw+grounding", raw_only + grounding),
            Variant(f"{risk}-grounding", "grounding", grounding),
        ]
    if not saes:
        if not grounding:
            msg = "nothing to fit: give a reader with SAEs or raw sites, or grounding features"
            raise ConfigError(msg)
        return [Variant(str(risk), "grounding", grounding)]
    if reader is None:  # for the type checker: checked above
        msg = "SAE features need a reader"
        raise ConfigError(msg)
    sae_blocks = [
        FeatureBlock(
            kind=BlockKind.SAE,
            site=str(site),
            pooling=features.pooling,
            latent_ids=[int(i) for i in features.sae_latents[site]],
        )
        for site in saes
    ]
    raw_blocks = [
        FeatureBlock(
            kind=BlockKind.RAW, site=str(site), pooling=features.pooling, d=reader.site_dim(site)
        )
        for site in saes
    ]
    suffix = "+grounding" if grounding else ""
    return [
        Variant(str(risk), "sae" + suffix, sae_blocks + extra_blocks + grounding),
        Variant(f"{risk}-raw", "raw" + suffix, raw_blocks + extra_blocks + grounding),
    ]


def narrow_layout(
    blocks: Sequence[FeatureBlock], coef: np.ndarray
) -> tuple[list[FeatureBlock], np.ndarray]:
    """Keep, in each SAE block, only latents with a nonzero coefficient in some pooled part."""
    out_blocks, out_coef, start = [], [], 0
    for block in blocks:
        width = block.width
        part = coef[start : start + width]
        start += width
        if block.kind is not BlockKind.SAE:
            out_blocks.append(block)
            out_coef.append(part)
            continue
        n = len(block.latent_ids)
        per_part = part.reshape(len(block.pooling.parts), n)
        keep = np.flatnonzero(np.any(per_part != 0, axis=0))
        if keep.size == 0:
            logger.warning("the probe uses no latent at %s; dropping the block", block.site)
            continue
        latent_ids = [block.latent_ids[i] for i in keep]
        out_blocks.append(block.model_copy(update={"latent_ids": latent_ids}))
        out_coef.append(per_part[:, keep].reshape(-1))
    return out_blocks, np.concatenate(out_coef) if out_coef else np.zeros(0)


def _block_weights(
    detector: ProbeDetector, kind: BlockKind
) -> list[tuple[FeatureBlock, np.ndarray]]:
    """Each block of ``kind`` with its slice of the detector's coefficients."""
    out, start = [], 0
    for block in detector.blocks:
        if block.kind is kind:
            out.append((block, detector.coef[start : start + block.width]))
        start += block.width
    return out


def top_latents(detector: ProbeDetector, k: int = 20) -> list[LatentWeight]:
    """The ``k`` SAE latents with the largest absolute weights, with what explains them."""
    out = []
    for block, weights in _block_weights(detector, BlockKind.SAE):
        n = len(block.latent_ids)
        npid = detector.neuronpedia_ids.get(str(block.site))
        explained = detector.explanations.get(str(block.site), {})
        for j, weight in enumerate(weights):
            if weight == 0:
                continue
            latent = block.latent_ids[j % n]
            url = f"https://www.neuronpedia.org/{npid}/{latent}" if npid else None
            out.append(
                LatentWeight(
                    site=str(block.site),
                    latent=latent,
                    pooling=block.pooling.parts[j // n],
                    weight=float(weight),
                    url=url,
                    contexts=list(explained.get(latent, ())),
                )
            )
    return sorted(out, key=lambda lw: -abs(lw.weight))[:k]


def top_heads(detector: ProbeDetector, k: int = 10) -> list[HeadWeight]:
    """The ``k`` lookback heads with the largest absolute weights (columns are layer-major)."""
    out = []
    for block, weights in _block_weights(detector, BlockKind.LOOKBACK):
        heads = int(block.heads or 0)
        out += [
            HeadWeight(layer=j // heads, head=j % heads, weight=float(w))
            for j, w in enumerate(weights)
            if w != 0
        ]
    return sorted(out, key=lambda hw: -abs(hw.weight))[:k]


def token_probe_facts(detector: ProbeDetector) -> list[TokenProbeFacts]:
    """Each token-probe block: its site, input width and the detector's aggregate weights."""
    return [
        TokenProbeFacts(
            site=str(block.site),
            width=len(block.probe_weights),
            weights={a: float(w) for a, w in zip(AGGREGATES, weights, strict=True)},
        )
        for block, weights in _block_weights(detector, BlockKind.TOKENS)
    ]
