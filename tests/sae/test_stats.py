from __future__ import annotations

import pytest
import torch
from sae_builders import random_inputs, random_sae

from scope_guard.errors import ConfigError, InputError
from scope_guard.sae import JumpReLUSAE, SAEInfo, SAEStats, sae_stats


def identity_sae() -> JumpReLUSAE:
    """W_enc = W_dec = I (2 x 2), thresholds 0.5, no biases: codes keep entries above 0.5."""
    eye = torch.eye(2, dtype=torch.float64)
    zeros = torch.zeros(2, dtype=torch.float64)
    return JumpReLUSAE(
        eye,
        eye.clone(),
        zeros,
        zeros.clone(),
        torch.full((2,), 0.5, dtype=torch.float64),
        info=SAEInfo(d_model=2, d_sae=2),
    )


X = torch.tensor([[1.0, 0.0], [0.0, 0.2], [2.0, 0.4]], dtype=torch.float64)


def test_stats_by_hand() -> None:
    # codes: [1, 0], [0, 0], [2, 0] -> reconstruction errors 0, 0.2^2, 0.4^2 = 0.2 in total.
    # mean x = [1, 0.2]; squared deviations 0.04 + 1.0 + 1.04 = 2.08. L0 per token: 1, 0, 1.
    stats = sae_stats(identity_sae(), X)
    assert isinstance(stats, SAEStats)
    assert stats.fvu == pytest.approx(0.2 / 2.08, rel=1e-12)
    assert stats.mean_l0 == pytest.approx(2 / 3)
    assert stats.dead_fraction == 0.5  # latent 1 never fires
    assert stats.n_tokens == 3


def test_batching_and_leading_dims_do_not_change_stats() -> None:
    sae = random_sae()
    x = random_inputs(30)
    whole = sae_stats(sae, x)
    assert sae_stats(sae, x, batch_size=7) == pytest.approx(whole)
    assert sae_stats(sae, x.reshape(5, 6, -1)) == pytest.approx(whole)
    codes, recon = sae(x)
    assert whole.mean_l0 == pytest.approx(float((codes != 0).sum()) / 30)
    fvu = float(((x - recon) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    assert whole.fvu == pytest.approx(fvu, rel=1e-5)


def test_stats_errors() -> None:
    sae = identity_sae()
    with pytest.raises(InputError, match="zero variance"):
        sae_stats(sae, torch.ones(4, 2))
    with pytest.raises(InputError, match="at least one token"):
        sae_stats(sae, torch.zeros(0, 2))
    with pytest.raises(InputError, match=r"\(\.\.\., 2\)"):
        sae_stats(sae, torch.zeros(3, 5))
    with pytest.raises(ConfigError, match="narrowed"):
        sae_stats(sae.narrow([0]), X)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("sae_device", ["cpu", "cuda"])
def test_stats_of_cuda_activations(sae_device: str) -> None:
    """Activations on the GPU (a CUDA reading), the SAE on either device: same statistics."""
    sae = random_sae()
    x = random_inputs(30)
    expected = sae_stats(sae, x)
    got = sae_stats(sae.to(sae_device), x.to("cuda"), batch_size=7)
    assert got == pytest.approx(expected, rel=1e-5)
