"""Builders for the SAE training tests: planted dictionaries and small configs."""

from __future__ import annotations

from typing import NamedTuple

import torch

from scope_guard.sae.training import TrainingConfig


class Planted(NamedTuple):
    """Activations ``x = coefficients @ atoms + offset + noise`` with a known dictionary."""

    x: torch.Tensor
    atoms: torch.Tensor
    mean_l0: float


def planted_activations(
    n: int = 60_000,
    d_model: int = 24,
    n_atoms: int = 48,
    active_per_token: float = 3.0,
    noise: float = 0.01,
    seed: int = 0,
) -> Planted:
    """Sparse non-negative combinations of unit atoms (coefficients in [0.5, 2]) plus noise."""
    gen = torch.Generator().manual_seed(seed)
    atoms = torch.randn(n_atoms, d_model, generator=gen)
    atoms /= atoms.norm(dim=1, keepdim=True)
    active = torch.rand(n, n_atoms, generator=gen) < active_per_token / n_atoms
    coefficients = (0.5 + 1.5 * torch.rand(n, n_atoms, generator=gen)) * active
    x = coefficients @ atoms + 0.3 + noise * torch.randn(n, d_model, generator=gen)
    return Planted(x=x, atoms=atoms, mean_l0=float(active.float().sum(dim=1).mean()))


def small_config(**overrides: object) -> TrainingConfig:
    """A config sized for tests: small buffer and batches, no periodic checkpoints."""
    values: dict[str, object] = {
        "width": 96,
        "token_budget": 120_000,
        "batch_size": 256,
        "lr": 1e-2,
        "bandwidth": 0.05,
        "l0_coefficient": 1.0,
        "buffer_tokens": 8192,
        "scale_estimate_tokens": 4096,
        "dead_after_tokens": 20_000,
        "resample_every_tokens": 20_000,
        "resample_dead": True,
        "checkpoint_every_tokens": None,
    }
    values.update(overrides)
    return TrainingConfig(**values)  # type: ignore[arg-type]
