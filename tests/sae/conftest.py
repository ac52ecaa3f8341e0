"""Fixtures for the SAE tests (builders live in ``sae_builders``)."""

from __future__ import annotations

import pytest
import torch
from sae_builders import random_inputs, random_sae

from scope_guard.sae import JumpReLUSAE


@pytest.fixture
def sae() -> JumpReLUSAE:
    return random_sae()


@pytest.fixture
def inputs() -> torch.Tensor:
    return random_inputs()
