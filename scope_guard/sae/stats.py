"""Quality statistics of an SAE on a set of activations: FVU, L0, dead latents."""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import torch

from scope_guard.errors import InputError
from scope_guard.sae.jumprelu import JumpReLUSAE

__all__ = ["SAEStats", "sae_stats"]

logger = logging.getLogger(__name__)


class SAEStats(NamedTuple):
    """How well an SAE fits a set of activations.

    Attributes:
        fvu: Fraction of variance unexplained: ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2``,
            sums over tokens and dimensions, ``mean`` over tokens per dimension. 0 is perfect.
        mean_l0: Mean number of active (non-zero) latents per token.
        dead_fraction: Fraction of latents never active on these tokens, in ``[0, 1]``.
        n_tokens: Number of tokens (rows) the statistics were computed on.
    """

    fvu: float
    mean_l0: float
    dead_fraction: float
    n_tokens: int


def sae_stats(
    sae: JumpReLUSAE, activations: torch.Tensor | np.ndarray, *, batch_size: int = 4096
) -> SAEStats:
    """Compute :class:`SAEStats` of a full SAE on ``activations``.

    Encoding runs in the SAE's dtype and on its device; the sums are accumulated in float64 on
    the CPU.

    Args:
        sae: A full (not narrowed) SAE; decoding is needed for the FVU.
        activations: Shape ``(n_tokens, d_model)`` or ``(..., d_model)`` (flattened to tokens).
        batch_size: Tokens encoded at once (bounds memory).

    Raises:
        InputError: if there are no tokens, the width is not ``d_model``, or the activations
            have zero variance (FVU undefined).
        ConfigError: if ``sae`` is narrowed.
    """
    x = torch.as_tensor(activations)
    if x.ndim == 0 or x.shape[-1] != sae.d_model:
        msg = f"activations must have shape (..., {sae.d_model}), got {tuple(x.shape)}"
        raise InputError(msg)
    x = x.reshape(-1, sae.d_model)
    n_tokens = int(x.shape[0])
    if n_tokens == 0:
        msg = "sae_stats needs at least one token"
        raise InputError(msg)
    if not bool(torch.isfinite(x).all()):
        msg = "activations hold NaN or infinite values: FVU and L0 would be meaningless"
        raise InputError(msg)
    if batch_size <= 0:
        msg = f"batch_size must be positive, got {batch_size}"
        raise InputError(msg)
    # The sums live on the CPU: the SAE returns its results on its own device, which need not
    # be the activations' (a CUDA reading with a CPU SAE, or the reverse).
    x64 = x.to(device="cpu", dtype=torch.float64)
    total_var = float(((x64 - x64.mean(dim=0)) ** 2).sum())
    if total_var == 0.0:
        msg = "the activations have zero variance over tokens: the FVU is undefined"
        raise InputError(msg)
    sq_error = 0.0
    active_total = 0
    ever_active = torch.zeros(sae.n_latents, dtype=torch.bool, device=sae.device)
    for start in range(0, n_tokens, batch_size):
        chunk = x[start : start + batch_size]
        codes, recon = sae(chunk)
        active = codes != 0
        active_total += int(active.sum())
        ever_active |= active.any(dim=0)
        sq_error += float(
            ((x64[start : start + batch_size] - recon.to("cpu", torch.float64)) ** 2).sum()
        )
    stats = SAEStats(
        fvu=sq_error / total_var,
        mean_l0=active_total / n_tokens,
        dead_fraction=float((~ever_active).sum()) / sae.n_latents,
        n_tokens=n_tokens,
    )
    logger.debug("sae_stats on %d tokens: %s", n_tokens, stats)
    return stats
