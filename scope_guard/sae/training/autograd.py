"""Straight-through estimators of the JumpReLU paper (Rajamanoharan et al. 2024, section 4).

The JumpReLU ``f = z * H(z - theta)`` and the step ``H(z - theta)`` behind the L0 penalty are
piecewise constant in ``theta``: their true derivative in ``theta`` is zero almost everywhere.
Training uses pseudo-derivatives instead, with a kernel ``K`` of bandwidth ``epsilon``; here the
rectangle ``K(u) = 1 if -1/2 < u < 1/2 else 0``:

======================  ==================  ===========================================
function                d/dz (exact)        d/dtheta (pseudo-derivative)
======================  ==================  ===========================================
``JumpReLU(z, theta)``  ``H(z - theta)``    ``-(theta / eps) * K((z - theta) / eps)``
``Step(z, theta)``      ``0``               ``-(1 / eps) * K((z - theta) / eps)``
======================  ==================  ===========================================

So the reconstruction loss trains the encoder through the usual gradient of the active codes,
and both losses reach the thresholds only through the kernel: a threshold moves when
pre-activations fall within ``eps / 2`` of it.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["jumprelu", "rectangle", "step"]


def rectangle(u: torch.Tensor) -> torch.Tensor:
    """The rectangle kernel ``1`` on ``(-1/2, 1/2)``, ``0`` elsewhere, in ``u``'s dtype."""
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> Any:
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return z * (z > threshold).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> Any:
        z, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_z = grad_out * (z > threshold).to(z.dtype)
        pseudo = -(threshold / eps) * rectangle((z - threshold) / eps)
        grad_threshold = (grad_out * pseudo).reshape(-1, z.shape[-1]).sum(0)
        return grad_z, grad_threshold, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> Any:
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return (z > threshold).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> Any:
        z, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        pseudo = -(1.0 / eps) * rectangle((z - threshold) / eps)
        grad_threshold = (grad_out * pseudo).reshape(-1, z.shape[-1]).sum(0)
        return torch.zeros_like(z), grad_threshold, None


def jumprelu(z: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """``z * H(z - threshold)`` with the straight-through estimator for ``threshold``.

    Args:
        z: Pre-activations, shape ``(..., d_sae)``.
        threshold: Positive thresholds, shape ``(d_sae,)``.
        bandwidth: The kernel width ``epsilon``.
    """
    out: torch.Tensor = _JumpReLU.apply(z, threshold, bandwidth)
    return out


def step(z: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """``H(z - threshold)`` (1 where a latent is active) with the straight-through estimator.

    Its sum over latents is the L0 of each token; no gradient reaches ``z``.
    """
    out: torch.Tensor = _Step.apply(z, threshold, bandwidth)
    return out
