"""Loading registry ids through a fake Hugging Face cache, offline. No test touches the network."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from sae_builders import D_MODEL, D_SAE, random_inputs, random_sae

from scope_guard.errors import ArtifactError
from scope_guard.sae import (
    JumpReLUSAE,
    SAERegistryEntry,
    load_sae,
    resolve_sae_id,
    save_gemma_scope_2,
    save_gemma_scope_npz,
)
from scope_guard.sites import Site, SiteKind

COMMIT = "0123456789abcdef0123456789abcdef01234567"
GS1_ID = "gemma-scope-2b-pt-res/layer_20/width_16k/canonical"
GS2_ID = "gemma-scope-2-1b-pt-res/layer_22/width_16k/l0_medium"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def snapshot(cache: Path, repo_id: str) -> Path:
    """Create the hub cache layout: models--{org}--{name}/refs/main + snapshots/<commit>/."""
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    snap = repo_dir / "snapshots" / COMMIT
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def small(entry: SAERegistryEntry) -> SAERegistryEntry:
    """The same repo and file, but with the test SAE's dimensions."""
    return dataclasses.replace(entry, d_model=D_MODEL, d_sae=D_SAE)


def test_gemma_scope_entry_resolves_through_the_cache(tmp_path: Path, sae: JumpReLUSAE) -> None:
    entry = resolve_sae_id(GS1_ID)
    save_gemma_scope_npz(sae, snapshot(tmp_path, entry.repo_id) / entry.path_in_repo)
    loaded = load_sae(small(entry), cache_dir=tmp_path)
    x = random_inputs()
    assert torch.equal(loaded.encode(x), sae.encode(x))
    assert loaded.info.source == "gemma-scope-2b-pt-res/layer_20/width_16k/average_l0_71"
    assert loaded.info.site == Site(layer=20, kind=SiteKind.RESID_POST)
    assert loaded.info.neuronpedia_id == "gemma-2-2b/20-gemmascope-res-16k"


def test_registry_id_string_goes_through_the_cache(tmp_path: Path, sae: JumpReLUSAE) -> None:
    # The file is found from the id alone; the registry then refuses its (test-sized) shape,
    # which proves the resolution reached the cached file.
    entry = resolve_sae_id(GS1_ID)
    save_gemma_scope_npz(sae, snapshot(tmp_path, entry.repo_id) / entry.path_in_repo)
    with pytest.raises(
        ArtifactError, match=r"d_model=8, d_sae=16 but the registry says .*d_model=2304"
    ):
        load_sae(GS1_ID, cache_dir=tmp_path)


def test_gemma_scope_2_entry_fetches_weights_and_config(tmp_path: Path) -> None:
    entry = resolve_sae_id(GS2_ID)
    sae = random_sae(site=Site(layer=22, kind=SiteKind.RESID_POST))
    folder = snapshot(tmp_path, entry.repo_id) / Path(entry.path_in_repo).parent
    save_gemma_scope_2(sae, folder)
    loaded = load_sae(small(entry), cache_dir=tmp_path)
    assert loaded.info.site == Site(layer=22, kind=SiteKind.RESID_POST)
    assert torch.equal(loaded.encode(random_inputs()), sae.encode(random_inputs()))


def test_site_disagreeing_with_registry_is_refused(tmp_path: Path) -> None:
    entry = resolve_sae_id(GS2_ID)
    sae = random_sae(site=Site(layer=21, kind=SiteKind.RESID_POST))
    save_gemma_scope_2(sae, snapshot(tmp_path, entry.repo_id) / Path(entry.path_in_repo).parent)
    with pytest.raises(
        ArtifactError, match="site resid_post@21 but the registry says resid_post@22"
    ):
        load_sae(small(entry), cache_dir=tmp_path)


def test_missing_offline_file_says_how_to_get_it(tmp_path: Path) -> None:
    snapshot(tmp_path, "google/gemma-scope-2b-pt-res")  # the repo is cached, the file is not
    with pytest.raises(ArtifactError) as err:
        load_sae(GS1_ID, cache_dir=tmp_path)
    text = str(err.value)
    assert "google/gemma-scope-2b-pt-res" in text
    assert "layer_20/width_16k/average_l0_71/params.npz" in text
    assert str(tmp_path) in text
    assert (
        "hf download google/gemma-scope-2b-pt-res layer_20/width_16k/average_l0_71/params.npz"
        in text
    )
    assert "HF_TOKEN" in text
    assert "offline" in text


def test_empty_cache_and_explicit_local_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ArtifactError, match="not in the Hugging Face cache"):
        load_sae(GS2_ID, cache_dir=tmp_path / "empty", local_files_only=True)


def test_existing_path_wins_over_registry_lookup(
    tmp_path: Path, sae: JumpReLUSAE, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_gemma_scope_npz(sae, tmp_path / "gemma-scope-2b-pt-res" / "params.npz")
    monkeypatch.chdir(tmp_path)
    loaded = load_sae("gemma-scope-2b-pt-res")
    assert loaded.info.source == "gemma-scope-2b-pt-res"
    assert torch.equal(loaded.W_enc, sae.W_enc)


def test_unknown_string_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        load_sae(str(tmp_path / "no-such-sae"))
