"""Known answer: a planted dictionary is recovered, at the planted sparsity."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from training_builders import planted_activations, small_config

from scope_guard.sae.training import TensorActivations, Trainer


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Tiny matrices: thread hand-offs cost more than they save on a shared 2-core machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_planted_atoms_recovered_at_planted_l0() -> None:
    planted = planted_activations()
    result = Trainer(small_config(), TensorActivations(planted.x)).run()
    sae = result.sae
    decoder = sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True)
    best_cosine = (planted.atoms @ decoder.T).max(dim=1).values
    recovered = float((best_cosine >= 0.9).float().mean())
    assert recovered >= 0.9, f"only {recovered:.0%} of the atoms recovered"
    codes = sae.encode(planted.x[:10_000])
    mean_l0 = float((codes > 0).float().sum(dim=1).mean())
    assert abs(mean_l0 - planted.mean_l0) <= 0.5 * planted.mean_l0, (mean_l0, planted.mean_l0)
    assert result.stopped_by == "tokens"
    assert result.tokens >= 120_000


def test_random_directions_are_not_recovered() -> None:
    # The recovery measure itself must be able to fail: an untrained dictionary scores low.
    planted = planted_activations(n=1000)
    gen = torch.Generator().manual_seed(5)
    random_rows = torch.randn(96, 24, generator=gen)
    random_rows /= random_rows.norm(dim=1, keepdim=True)
    best = (planted.atoms @ random_rows.T).max(dim=1).values
    assert float((best >= 0.9).float().mean()) < 0.2


def test_target_l0_controller_steers_lambda() -> None:
    planted = planted_activations(n=30_000)
    config = small_config(
        token_budget=60_000,
        l0_coefficient=0.01,
        target_l0=6.0,
        target_l0_gain=0.02,
        target_l0_band=1000.0,
    )
    result = Trainer(config, TensorActivations(planted.x)).run()
    codes = result.sae.encode(planted.x[:5000])
    mean_l0 = float((codes > 0).float().sum(dim=1).mean())
    assert 3.0 <= mean_l0 <= 12.0
    assert result.curve[-1].l0_coefficient > 0.01  # lambda was raised from its start


def test_target_l0_controller_keeps_lambda_within_its_band() -> None:
    # An unreachable target: unbounded, lambda would collapse toward 1e-8 (as it did on Gemma
    # 3 270M, L0 then overshooting far past the target once the thresholds answered).
    planted = planted_activations(n=8000)
    config = small_config(
        token_budget=12_000, l0_coefficient=0.5, target_l0=90.0, target_l0_gain=0.2
    )
    result = Trainer(config, TensorActivations(planted.x)).run()
    lambdas = [p.l0_coefficient for p in result.curve]
    assert min(lambdas[len(lambdas) // 2 :]) == pytest.approx(0.05)
    assert max(lambdas) <= 0.5 * 10 + 1e-9


def test_resampling_revives_dead_latents_without_wrecking_the_sae() -> None:
    planted = planted_activations(n=20_000)
    config = small_config(token_budget=40_000, resample_dead=False)
    trainer = Trainer(config, TensorActivations(planted.x))
    trainer.run()
    model = trainer.model
    assert model is not None
    assert trainer.transform is not None
    x = trainer.transform.apply(planted.x[:2048])
    # Kill half the latents: thresholds far above any pre-activation.
    dead = torch.arange(0, 96, 2)
    with torch.no_grad():
        model.threshold[dead] = 1e6
    trainer.tokens_since_fired[dead] = config.dead_after_tokens
    out = model.losses(x, 0.0, config.bandwidth)
    before = float(out.mse.detach())
    trainer._resample(x, out.reconstruction)
    assert trainer.n_resampled == 48
    codes = model.encode_scaled(x)
    firing = (codes[:, dead] > 0).float().mean(dim=0)
    assert float(firing.max()) < 0.5  # each new latent fires on inputs like its source only
    assert float((firing > 0).float().mean()) > 0.5  # and most do fire on something
    after = float((codes @ model.W_dec + model.b_dec - x).pow(2).sum(dim=1).mean())
    assert after < 1.5 * before, (before, after)
    assert trainer.optimizer is not None
    sq = trainer.optimizer.state[model.W_enc]["exp_avg_sq"]
    assert float(sq[:, dead].min()) > 0  # no zero second moments: no giant first steps


@pytest.mark.parametrize("aux", [0.0, 0.1])
def test_the_pre_activation_loss_revives_dead_latents(aux: float) -> None:
    planted = planted_activations(n=20_000)
    config = small_config(
        token_budget=200_000, resample_dead=False, dead_aux_coefficient=aux, lr=5e-3
    )
    trainer = Trainer(config, TensorActivations(planted.x))
    trainer.run(max_steps=40)
    model = trainer.model
    assert model is not None
    assert trainer.transform is not None
    dead = torch.arange(0, 96, 2)
    x = trainer.transform.apply(planted.x)
    with torch.no_grad():  # half the latents 0.1 below their thresholds on every input
        top = model.pre_activations(x).max(dim=0).values
        model.b_enc[dead] += model.threshold[dead] - top[dead] - 0.1
    trainer.tokens_since_fired[dead] = config.dead_after_tokens
    assert not bool((model.encode_scaled(x)[:, dead] > 0).any())
    trainer.run(max_steps=60)
    revived = (model.encode_scaled(x)[:, dead] > 0).any(dim=0).float().mean()
    if aux:
        assert float(revived) > 0.8
    else:
        assert float(revived) < 0.2  # without it nothing reaches a dead latent
