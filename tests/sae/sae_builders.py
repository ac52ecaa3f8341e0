"""Builders for SAE tests: small random JumpReLU SAEs with a seeded RNG."""

from __future__ import annotations

import torch

from scope_guard.sae import JumpReLUSAE, SAEInfo
from scope_guard.sites import Site, SiteKind

D_MODEL = 8
D_SAE = 16


def random_sae(
    seed: int = 0,
    *,
    d_model: int = D_MODEL,
    d_sae: int = D_SAE,
    site: Site | None = None,
    dtype: torch.dtype = torch.float32,
) -> JumpReLUSAE:
    """A random SAE whose codes are sparse but not empty on standard-normal inputs."""
    gen = torch.Generator().manual_seed(seed)
    return JumpReLUSAE(
        W_enc=torch.randn(d_model, d_sae, generator=gen, dtype=dtype),
        W_dec=torch.randn(d_sae, d_model, generator=gen, dtype=dtype),
        b_enc=0.1 * torch.randn(d_sae, generator=gen, dtype=dtype),
        b_dec=0.1 * torch.randn(d_model, generator=gen, dtype=dtype),
        threshold=0.5 + torch.rand(d_sae, generator=gen, dtype=dtype),
        info=SAEInfo(
            d_model=d_model,
            d_sae=d_sae,
            site=site if site is not None else Site(layer=3, kind=SiteKind.RESID_POST),
            model_name="tiny-gemma",
        ),
    )


def random_inputs(n: int = 32, seed: int = 1, d_model: int = D_MODEL) -> torch.Tensor:
    return torch.randn(n, d_model, generator=torch.Generator().manual_seed(seed))
