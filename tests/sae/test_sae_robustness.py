"""Registry ids with odd spelling, bad SAE configs, non-finite activations."""

from __future__ import annotations

import json

import pytest
import torch

from scope_guard.errors import ArtifactError, InputError
from scope_guard.sae import sae_stats, save_saelens
from scope_guard.sae.formats import read_sae
from scope_guard.sae.jumprelu import JumpReLUSAE, SAEInfo
from scope_guard.sae.registry import is_registry_id, neuronpedia_url, resolve_sae_id

CANONICAL = "gemma-scope-2b-pt-res/layer_20/width_16k/canonical"


@pytest.mark.parametrize(
    "spelling",
    [
        CANONICAL,
        f" {CANONICAL} ",
        "gemma-scope-2b-pt-res / layer_20 /width_16k/canonical",
        "gemma-scope-2b-pt-res-canonical/layer_20/width_16k/canonical",
        f"/{CANONICAL}/",
    ],
)
def test_registry_spellings_agree(spelling):
    assert is_registry_id(spelling)
    assert resolve_sae_id(spelling).path_in_repo == "layer_20/width_16k/average_l0_71/params.npz"
    assert neuronpedia_url(spelling, 5) == (
        "https://www.neuronpedia.org/gemma-2-2b/20-gemmascope-res-16k/5"
    )


def _sae() -> JumpReLUSAE:
    g = torch.Generator().manual_seed(0)
    return JumpReLUSAE(
        torch.randn(8, 16, generator=g),
        torch.randn(16, 8, generator=g),
        torch.zeros(16),
        torch.zeros(8),
        torch.full((16,), 0.5),
        info=SAEInfo(d_model=8, d_sae=16),
    )


@pytest.mark.parametrize("value", ["abc", 8.7, True])
def test_non_integer_config_sizes_are_artifact_errors(tmp_path, value):
    folder = save_saelens(_sae(), tmp_path / "sae")
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["d_in"] = value
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ArtifactError, match="must be an integer"):
        read_sae(folder)


def test_sae_stats_refuses_non_finite_activations():
    x = torch.randn(4, 8)
    x[1, 2] = float("nan")
    with pytest.raises(InputError, match="NaN or infinite"):
        sae_stats(_sae(), x)
