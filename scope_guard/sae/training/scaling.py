"""The fixed transform that training applies to raw activations, and how export folds it away.

Training sees ``x' = (x - m) * s``: ``m`` the inputs' mean (zero when centring is off) and ``s``
a factor per dimension, a single value ``c`` that sets the mean squared norm, times a weight
``w_i <= 1`` that tames outlier dimensions. Both are estimated once, from the stream's head.

Why centre: residual streams carry a mean far larger than their spread (Gemma 3 270M at layer
9: mean norm ~6,500, spread ~2,700). Uncentred, every encoder gradient is dominated by the mean
direction, so one Adam step shifts the pre-activations of all tokens together and pushes
latents below their thresholds for good (dead latents); scaled by the uncentred norm, the part
that varies lives at a quarter of the scale the recipe's threshold and bandwidth assume.

Why weights: one dimension of that stream (163) holds ~80% of the variance, so a plain MSE
spends the SAE on it while the model reads the other dimensions (``outlier_dim_ratio`` in
:class:`~scope_guard.sae.training.config.TrainingConfig`).

:func:`fold` turns an SAE trained on ``x'`` into one that encodes raw ``x`` with the Gemma Scope
convention (no ``b_dec`` subtraction) and unit-norm decoder rows; JumpReLU is positively
homogeneous per latent, so rescaling a latent's code and its decoder row is exact.
"""

from __future__ import annotations

import logging
import math
from typing import NamedTuple

import torch

from scope_guard.errors import InputError

__all__ = ["FoldedWeights", "InputTransform", "fold"]

logger = logging.getLogger(__name__)


class InputTransform(NamedTuple):
    """``x' = (x - center) * scale``, both of shape ``(d_model,)``, float32.

    Attributes:
        center: Subtracted from raw inputs.
        scale: Multiplies the centred inputs, per dimension.
        norm_factor: The single factor ``c`` in ``scale`` (the rest is the outlier weights).
    """

    center: torch.Tensor
    scale: torch.Tensor
    norm_factor: float

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The training inputs of raw rows ``x`` (float32)."""
        return (x.float() - self.center) * self.scale

    @classmethod
    def estimate(
        cls,
        head: torch.Tensor,
        *,
        target: float,
        center: bool,
        outlier_dim_ratio: float | None,
    ) -> InputTransform:
        """Estimate the transform from the rows ``head`` of shape ``(n, d_model)``.

        Args:
            head: Raw rows from the stream's head.
            target: Mean squared norm of the training inputs.
            center: Subtract the mean.
            outlier_dim_ratio: Dimensions whose spread exceeds this multiple of the median
                dimension's are weighted down to it (``None``: no weights).

        Raises:
            InputError: the rows are constant (nothing to reconstruct).
        """
        x = head.double()
        mean = x.mean(dim=0) if center else torch.zeros(x.shape[1], dtype=torch.float64)
        spread = (x - x.mean(dim=0)).pow(2).mean(dim=0).sqrt()
        weight = torch.ones_like(spread)
        if outlier_dim_ratio is not None:
            cap = outlier_dim_ratio * float(spread.median())
            if cap > 0:
                weight = (cap / spread.clamp_min(1e-30)).clamp(max=1.0)
        mean_sq = float(((x - mean) * weight).pow(2).sum(dim=1).mean())
        if not mean_sq > 0 or not math.isfinite(mean_sq):
            msg = "the activations are constant (all zero, or one row repeated): nothing to learn"
            raise InputError(msg)
        c = math.sqrt(target / mean_sq)
        logger.info(
            "input scale %.6g (centred: %s), %d outlier dimensions weighted down",
            c,
            center,
            int((weight < 0.999).sum()),
        )
        return cls(center=mean.float(), scale=(weight * c).float(), norm_factor=c)


class FoldedWeights(NamedTuple):
    """The parameters of an SAE for raw activations (Gemma Scope convention)."""

    W_enc: torch.Tensor
    W_dec: torch.Tensor
    b_enc: torch.Tensor
    b_dec: torch.Tensor
    threshold: torch.Tensor


@torch.no_grad()
def fold(
    transform: InputTransform,
    W_enc: torch.Tensor,
    W_dec: torch.Tensor,
    b_enc: torch.Tensor,
    b_dec: torch.Tensor,
    threshold: torch.Tensor,
) -> FoldedWeights:
    """Fold ``transform`` into weights trained on transformed inputs.

    In raw units a latent's decoder row is ``u_j = W_dec[j] / scale``; the exported SAE keeps
    ``u_j / |u_j|`` and multiplies the latent's encoder column, bias and threshold by ``|u_j|``,
    so that its codes times its unit rows give the same reconstruction. With a single scale
    ``c`` (no outlier weights) this is the plain ``b_enc / c``, ``threshold / c``, ``W_enc``
    unchanged.
    """
    m, s = transform.center.double(), transform.scale.double()
    u = W_dec.double() / s  # (d_sae, d_model)
    n = u.norm(dim=1).clamp_min(1e-30)
    W = W_enc.double()
    return FoldedWeights(
        W_enc=((s[:, None] * W) * n).float(),
        W_dec=(u / n[:, None]).float(),
        b_enc=((b_enc.double() - (m * s) @ W) * n).float(),
        b_dec=(b_dec.double() / s + m).float(),
        threshold=(threshold.double() * n).float(),
    )
