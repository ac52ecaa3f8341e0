"""The JumpReLU SAE while it trains: parameters, the loss, unit-norm decoder rows, export.

Training runs on inputs centred and scaled by a fixed transform (see
:mod:`~scope_guard.sae.training.scaling`). On transformed inputs ``x' = (x - m) * s``::

    pre   = x' @ W_enc + b_enc
    f     = JumpReLU(pre, theta)          theta > 0, trained directly
    x'_hat = f @ W_dec + b_dec            rows of W_dec kept at unit norm
    loss  = mean_tokens ||x' - x'_hat||^2 + lambda * mean_tokens L0(pre)
            + alpha * mean_tokens sum_{j dead} ReLU(theta_j - pre_j)

The last term (Conerly et al. 2025's pre-activation loss, applied to dead latents only) is the
only gradient a dead latent gets: it raises the latent's pre-activations toward its threshold
until the latent fires again, where a live latent's codes and the L0 term alone would leave it
silent for good. :meth:`TrainableJumpReLU.export` folds the transform into the weights so that
the saved SAE encodes *raw* activations with the Gemma Scope convention (no ``b_dec``
subtraction) and unit-norm decoder rows.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from scope_guard.errors import ConfigError
from scope_guard.sae.jumprelu import JumpReLUSAE, SAEInfo
from scope_guard.sae.training.autograd import jumprelu, step
from scope_guard.sae.training.scaling import InputTransform, fold

__all__ = ["MIN_THRESHOLD", "StepLosses", "TrainableJumpReLU"]

#: Thresholds are kept at or above this value (scaled units) so that JumpReLU stays a JumpReLU.
MIN_THRESHOLD = 1e-6


class StepLosses(NamedTuple):
    """The pieces of one training step's loss (all on scaled inputs).

    Attributes:
        loss: ``mse + lambda * l0``, a scalar with gradients.
        mse: Mean over tokens of the squared reconstruction error (summed over dimensions).
        l0: Mean number of active latents per token (with the step's pseudo-gradient).
        aux: The dead latents' pre-activation loss (zero without dead latents).
        codes: The codes ``f``, shape ``(batch, d_sae)``, detached.
        reconstruction: ``x'_hat``, shape ``(batch, d_model)``, detached.
    """

    loss: torch.Tensor
    mse: torch.Tensor
    l0: torch.Tensor
    aux: torch.Tensor
    codes: torch.Tensor
    reconstruction: torch.Tensor


class TrainableJumpReLU(nn.Module):
    """A JumpReLU SAE with trainable parameters, initialised as in Gemma Scope.

    ``W_dec`` rows are random unit vectors, ``W_enc = (d_model / d_sae) * W_dec.T``, ``b_dec``
    the mean of the (scaled) inputs when given, ``b_enc = -b_dec @ W_enc``, thresholds all
    ``init_threshold``.

    Two departures from a plain ``W_enc = W_dec.T, b_enc = 0``, both about the first steps only:
    the encoder bias starts by centering the inputs (what a ``b_dec`` subtraction would do, while
    the saved SAE keeps the Gemma Scope convention of none), because residual streams carry a
    mean far larger than their spread, which every latent
    would otherwise copy into the reconstruction; and the encoder starts scaled down so that
    the half of the latents active before the sparsity warm-up sum to about half the input
    rather than ``d_sae / (2 d_model)`` times it.

    Args:
        d_model: Width of the activations.
        d_sae: Number of latents; at least ``d_model``.
        init_threshold: Initial threshold of every latent, > 0.
        generator: Seeded generator for the initialisation.
        b_dec_init: Optional ``(d_model,)`` initial decoder bias.

    Raises:
        ConfigError: if ``d_sae < d_model`` or a size is not positive.
    """

    def __init__(
        self,
        d_model: int,
        d_sae: int,
        *,
        init_threshold: float,
        generator: torch.Generator,
        b_dec_init: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if d_model <= 0 or d_sae <= 0:
            msg = f"d_model and d_sae must be positive, got {d_model} and {d_sae}"
            raise ConfigError(msg)
        if d_sae < d_model:
            msg = (
                f"width {d_sae} is below d_model={d_model}: an SAE must have at least as many "
                "latents as the activations have dimensions"
            )
            raise ConfigError(msg)
        W_dec = torch.randn(d_sae, d_model, generator=generator, dtype=torch.float32)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        W_enc = (d_model / d_sae) * W_dec.T.clone().contiguous()
        b_dec = torch.zeros(d_model) if b_dec_init is None else b_dec_init.float().clone()
        self.W_dec = nn.Parameter(W_dec)
        self.W_enc = nn.Parameter(W_enc)
        self.b_enc = nn.Parameter(-(b_dec @ W_enc))
        self.b_dec = nn.Parameter(b_dec)
        # theta itself is the parameter, not log(theta): Adam moves a parameter by about the
        # learning rate per step, and a log-threshold starting at log(0.001) would need tens of
        # thousands of steps to reach thresholds of order one, far more than a CPU run takes.
        self.threshold = nn.Parameter(torch.full((d_sae,), float(init_threshold)))

    @property
    def d_model(self) -> int:
        return int(self.W_enc.shape[0])

    @property
    def d_sae(self) -> int:
        return int(self.W_enc.shape[1])

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W_enc + b_enc`` for scaled inputs ``x`` of shape ``(batch, d_model)``."""
        return x @ self.W_enc + self.b_enc

    def losses(
        self,
        x: torch.Tensor,
        l0_coefficient: float,
        bandwidth: float,
        *,
        dead: torch.Tensor | None = None,
        aux_coefficient: float = 0.0,
    ) -> StepLosses:
        """The training loss on transformed inputs ``x`` of shape ``(batch, d_model)``.

        Args:
            x: The batch.
            l0_coefficient: lambda.
            bandwidth: The kernel width of the straight-through estimators.
            dead: Indices of the dead latents, for the pre-activation loss.
            aux_coefficient: Its weight alpha (0: off).
        """
        pre = self.pre_activations(x)
        threshold = self.threshold
        codes = jumprelu(pre, threshold, bandwidth)
        recon = codes @ self.W_dec + self.b_dec
        mse = (recon - x).pow(2).sum(dim=-1).mean()
        l0 = step(pre, threshold, bandwidth).sum(dim=-1).mean()
        aux = pre.new_zeros(())
        if dead is not None and dead.numel() and aux_coefficient > 0:
            gap = threshold[dead] - pre[:, dead]
            aux = torch.relu(gap).sum(dim=-1).mean()
        loss = mse + l0_coefficient * l0 + aux_coefficient * aux
        return StepLosses(loss, mse, l0, aux.detach(), codes.detach(), recon.detach())

    @torch.no_grad()
    def encode_scaled(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``f`` of scaled inputs, shape ``(batch, d_sae)`` (no gradients)."""
        pre = self.pre_activations(x)
        return pre * (pre > self.threshold).to(pre.dtype)

    # ------------------------------------------------------------------ decoder constraint
    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove from ``W_dec``'s gradient its component along each (unit) row.

        Moving a unit row along itself only changes its norm, which the renormalisation after
        the step undoes; without the projection Adam would waste its step size there.
        """
        grad = self.W_dec.grad
        if grad is None:
            return
        along = (grad * self.W_dec).sum(dim=1, keepdim=True)
        grad -= along * self.W_dec

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """After a step: every ``W_dec`` row back on the unit sphere, thresholds positive."""
        self.threshold.clamp_(min=MIN_THRESHOLD)
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    # ------------------------------------------------------------------ export
    @torch.no_grad()
    def export(self, transform: InputTransform, info: SAEInfo) -> JumpReLUSAE:
        """The trained SAE for raw activations, with ``transform`` folded in (float32, CPU).

        Args:
            transform: What training applied to raw activations.
            info: Metadata of the SAE; ``d_model`` and ``d_sae`` must match.
        """
        w = fold(
            transform,
            self.W_enc.detach().cpu(),
            self.W_dec.detach().cpu(),
            self.b_enc.detach().cpu(),
            self.b_dec.detach().cpu(),
            self.threshold.detach().cpu(),
        )
        return JumpReLUSAE(
            W_enc=w.W_enc,
            W_dec=w.W_dec,
            b_enc=w.b_enc,
            b_dec=w.b_dec,
            threshold=w.threshold,
            info=info,
        ).eval()
