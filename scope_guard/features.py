"""Sparse features: SAE codes of the response tokens, pooled into one vector per site.

Per-token codes are kept (for span localization: which tokens carry a latent), and the raw
activations are pooled the same way, for the raw-residual baseline probe that every report puts
beside the SAE probe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from scope_guard.errors import ConfigError
from scope_guard.sites import Site

if TYPE_CHECKING:
    from scope_guard.reader import Reading
    from scope_guard.sae import JumpReLUSAE

__all__ = [
    "PooledFeatures",
    "Pooling",
    "SiteFeatures",
    "SparseVector",
    "encode_reading",
    "feature_names",
    "pool_codes",
]


class Pooling(StrEnum):
    """How per-token vectors become one vector: mean, max, or both concatenated (mean first)."""

    MEAN = "mean"
    MAX = "max"
    MEAN_MAX = "mean_max"

    @classmethod
    def parse(cls, value: str | Pooling) -> Pooling:
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(p.value for p in cls)
            msg = f"unknown pooling {value!r}; valid: {valid}"
            raise ConfigError(msg) from None

    @property
    def parts(self) -> tuple[str, ...]:
        return ("mean", "max") if self is Pooling.MEAN_MAX else (self.value,)


class SparseVector(NamedTuple):
    """A sparse 1-D vector: the nonzero ``indices`` (ascending) and their ``values``."""

    indices: np.ndarray  # (nnz,) int64
    values: np.ndarray  # (nnz,) float32
    size: int

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> SparseVector:
        indices = np.flatnonzero(dense).astype(np.int64)
        return cls(indices, dense[indices].astype(np.float32), int(dense.shape[0]))

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.size, dtype=np.float32)
        out[self.indices] = self.values
        return out

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[0])


def pool_codes(codes: torch.Tensor, pooling: Pooling | str) -> torch.Tensor:
    """Pool ``(n_tokens, n)`` per-token vectors into ``(n * len(pooling.parts),)``.

    Zero tokens (an empty response) pool to zeros: a defined result, not an error.
    """
    mode = Pooling.parse(pooling)
    if codes.ndim != 2:
        msg = f"codes must be (n_tokens, n_latents), got shape {tuple(codes.shape)}"
        raise ConfigError(msg)
    values = codes.float()
    parts = []
    for part in mode.parts:
        if values.shape[0] == 0:
            parts.append(values.new_zeros(values.shape[1]))
        elif part == "mean":
            parts.append(values.mean(dim=0))
        else:
            parts.append(values.amax(dim=0))
    return torch.cat(parts)


def feature_names(site: Site, latent_ids: np.ndarray, pooling: Pooling | str) -> list[str]:
    """Stable names of the pooled SAE features: ``"resid_post@20/mean/1234"``."""
    mode = Pooling.parse(pooling)
    return [f"{site}/{part}/{int(i)}" for part in mode.parts for i in latent_ids]


@dataclass(frozen=True)
class SiteFeatures:
    """The features of one site for one response.

    Attributes:
        site: Where they were read.
        latent_ids: Original SAE index of each code column, ``(n_latents,)``.
        codes: Per-token SAE codes, ``(n_tokens, n_latents)``, float32 on CPU.
        pooled: Pooled codes (a sparse vector of size ``n_latents * len(pooling.parts)``; for
            ``mean_max`` the mean block comes first, then the max block).
        raw: Pooled raw activations, ``(d * len(pooling.parts),)``: the baseline probe's input.
    """

    site: Site
    latent_ids: np.ndarray
    codes: torch.Tensor
    pooled: SparseVector
    raw: np.ndarray


@dataclass(frozen=True)
class PooledFeatures:
    """Features of one response at every site read, with the pooling used."""

    pooling: Pooling
    sites: Mapping[Site, SiteFeatures]
    n_tokens: int

    def __getitem__(self, site: Site | str) -> SiteFeatures:
        key = Site.parse(site)
        if key not in self.sites:
            valid = ", ".join(str(s) for s in self.sites)
            msg = f"no features for site {key}; available: {valid}"
            raise ConfigError(msg)
        return self.sites[key]


def encode_reading(
    reading: Reading,
    saes: Mapping[Site, JumpReLUSAE] | Mapping[str, JumpReLUSAE],
    pooling: Pooling | str = Pooling.MEAN_MAX,
) -> PooledFeatures:
    """Encode a reading's activations with one SAE per site and pool them.

    Only the sites given in ``saes`` are encoded; a narrowed SAE computes only its latents.

    Raises:
        ConfigError: a site was not read, its SAE was trained on another site (when the SAE
            knows its site), or its SAE has another input width.
    """
    mode = Pooling.parse(pooling)
    out: dict[Site, SiteFeatures] = {}
    for key, sae in saes.items():
        site = Site.parse(key)
        # Widths alone cannot catch this: resid_post and mlp_out of one layer are both d_model.
        if sae.info.site is not None and sae.info.site != site:
            source = f" ({sae.info.source})" if sae.info.source else ""
            msg = f"the SAE given for {site} was trained on {sae.info.site}{source}"
            raise ConfigError(msg)
        acts = reading.activation(site)
        if acts.shape[1] != sae.d_model:
            msg = (
                f"SAE for {site} reads width {sae.d_model}, but the site has width {acts.shape[1]}"
            )
            raise ConfigError(msg)
        with torch.inference_mode():
            codes = sae.encode(acts).float().cpu()
            raw = pool_codes(acts, mode).cpu().numpy()
        pooled = pool_codes(codes, mode).numpy()
        out[site] = SiteFeatures(
            site=site,
            latent_ids=sae.latent_ids.cpu().numpy(),
            codes=codes,
            pooled=SparseVector.from_dense(pooled),
            raw=raw.astype(np.float32),
        )
    return PooledFeatures(pooling=mode, sites=out, n_tokens=reading.n_tokens)
