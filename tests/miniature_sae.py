"""A small random SAE for the miniature reader's 64-wide residual, shared by the bundle and
detector tests (codes fire on the stand-in's activations at the default threshold)."""

from __future__ import annotations

import torch

from scope_guard.sae.jumprelu import JumpReLUSAE, SAEInfo
from scope_guard.sites import Site


def miniature_sae(site: Site, *, threshold: float = 0.5, source: str = "test") -> JumpReLUSAE:
    """48 latents over ``d_model = 64``, seeded: the same SAE every call."""
    g = torch.Generator().manual_seed(0)
    return JumpReLUSAE(
        torch.randn(64, 48, generator=g) * 0.5,
        torch.randn(48, 64, generator=g),
        torch.zeros(48),
        torch.zeros(64),
        torch.full((48,), threshold),
        info=SAEInfo(d_model=64, d_sae=48, site=site, source=source),
    )
