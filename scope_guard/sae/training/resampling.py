"""Dead-latent resampling: point latents that stopped firing at inputs the SAE reconstructs badly.

The method is Bricken et al. (2023)'s, adapted to JumpReLU and to residual streams whose mean is
far larger than their spread.
"""

from __future__ import annotations

import torch

from scope_guard.sae.training.model import TrainableJumpReLU

__all__ = ["resample_latents"]


@torch.no_grad()
def resample_latents(
    model: TrainableJumpReLU,
    optimizer: torch.optim.Adam,
    dead: torch.Tensor,
    x: torch.Tensor,
    recon: torch.Tensor,
    init_threshold: float,
    generator: torch.Generator,
) -> bool:
    """Re-initialise the latents ``dead`` from the residuals of the batch ``x``.

    Each dead latent gets the direction of one badly reconstructed input's residual (picked
    with probability proportional to its squared error) as decoder row and, scaled down, as
    encoder column. Three choices keep a resampling from wrecking the SAE it repairs: the encoder
    bias centres the input as at initialisation (without it, the residual stream's large mean
    would switch the new latents on for every token); the threshold starts at half the latent's
    pre-activation on its own source input, so it fires on inputs like that one only; and Adam's
    second moments of the new entries start at those of the live latents (at zero, the first
    steps would be many times the learning rate).

    Args:
        model: The SAE being trained (changed in place).
        optimizer: Its Adam optimizer (the new entries' moments are reset).
        dead: Indices of the latents to re-initialise, shape ``(n_dead,)``.
        x: The scaled batch, shape ``(batch, d_model)``.
        recon: The SAE's reconstruction of ``x``.
        init_threshold: The smallest threshold a new latent may get.
        generator: Seeded generator for picking the inputs.

    Returns:
        False (nothing changed) when the batch is reconstructed perfectly.
    """
    residual = x - recon
    weight = residual.pow(2).sum(dim=1).double()
    if not float(weight.sum()) > 0:
        return False
    width = model.d_sae
    replace = dead.numel() > x.shape[0]
    picks = torch.multinomial(weight, dead.numel(), replacement=replace, generator=generator)
    directions = residual[picks]
    directions /= directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
    alive = torch.ones(width, dtype=torch.bool)
    alive[dead] = False
    enc_norm = float(model.W_enc[:, alive].norm(dim=0).mean()) if alive.any() else 1.0
    W_new = directions.T * (0.2 * enc_norm)  # (d_model, n_dead)
    b_new = -(model.b_dec @ W_new)
    pre_on_source = ((x[picks] - model.b_dec) * directions).sum(dim=1) * (0.2 * enc_norm)
    model.W_dec[dead] = directions
    model.W_enc[:, dead] = W_new
    model.b_enc[dead] = b_new
    model.threshold[dead] = (0.5 * pre_on_source).clamp_min(init_threshold)
    live = torch.nonzero(alive).flatten()
    for param, dim in ((model.W_dec, 0), (model.W_enc, 1), (model.b_enc, 0), (model.threshold, 0)):
        state = optimizer.state.get(param, {})
        if "exp_avg" in state:
            state["exp_avg"].index_fill_(dim, dead, 0.0)
        if "exp_avg_sq" in state and live.numel():
            sq = state["exp_avg_sq"]
            typical = sq.index_select(dim, live).mean(dim=dim, keepdim=True)
            sq.index_copy_(dim, dead, typical.expand_as(sq.index_select(dim, dead)).contiguous())
    return True
