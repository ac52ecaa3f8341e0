"""Gemma Scope 2 registry: ids for gemma-3-270m and gemma-3-1b, their facts and provenance, and
loading through a fake Hugging Face cache, offline. No test touches the network."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import Gemma3TextConfig

from scope_guard.errors import ConfigError
from scope_guard.reader.loading import site_dim
from scope_guard.sae import load_sae, resolve_sae_id
from scope_guard.sae.registry import known_releases, release_sae_ids
from scope_guard.sae.registry_gemma_scope_2 import _data
from scope_guard.sites import Site, SiteKind

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
ID_270M = "gemma-scope-2-270m-pt-res/layer_12/width_16k/l0_medium"
ID_1B = "gemma-scope-2-1b-pt-res/layer_13/width_16k/l0_medium"
FOLDERS = {"res": "resid_post", "mlp": "mlp_out", "att": "attn_out"}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def gemma3_270m_config() -> Gemma3TextConfig:
    """The real gemma-3-270m shape (hidden 640, 18 layers, 4 heads x 256), no weights."""
    return Gemma3TextConfig(
        hidden_size=640,
        num_hidden_layers=18,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=256,
        intermediate_size=2048,
    )


def snapshot(cache: Path, repo_id: str) -> Path:
    """The hub cache layout: models--{org}--{name}/refs/main + snapshots/<commit>/."""
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    snap = repo_dir / "snapshots" / COMMIT
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def write_gemma_scope_2(
    folder: Path, *, d_model: int, d_sae: int, hook: str
) -> dict[str, torch.Tensor]:
    """A folder as Google publishes it: lowercase keys in params.safetensors, config.json with
    hf_hook_point_in, width, model_name, architecture, l0. bfloat16 keeps the 16k file small."""
    gen = torch.Generator().manual_seed(0)
    tensors = {
        "w_enc": torch.randn(d_model, d_sae, generator=gen).to(torch.bfloat16),
        "w_dec": torch.randn(d_sae, d_model, generator=gen).to(torch.bfloat16),
        "b_enc": (0.1 * torch.randn(d_sae, generator=gen)).to(torch.bfloat16),
        "b_dec": (0.1 * torch.randn(d_model, generator=gen)).to(torch.bfloat16),
        "threshold": (1.0 + torch.rand(d_sae, generator=gen)).to(torch.bfloat16),
    }
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "params.safetensors"))
    config = {
        "hf_hook_point_in": hook,
        "hf_hook_point_out": hook,
        "width": d_sae,
        "model_name": "google/gemma-3-270m",
        "architecture": "jump_relu",
        "l0": 60,
        "affine_connection": False,
        "type": "sae",
    }
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return tensors


# ------------------------------------------------------------------------------- the ids
def test_270m_resid_post_id() -> None:
    entry = resolve_sae_id(ID_270M)
    assert entry.repo_id == "google/gemma-scope-2-270m-pt"
    assert entry.folder_in_repo == "resid_post/layer_12_width_16k_l0_medium"
    assert entry.path_in_repo == "resid_post/layer_12_width_16k_l0_medium/params.safetensors"
    assert entry.config_path_in_repo == "resid_post/layer_12_width_16k_l0_medium/config.json"
    assert entry.site == Site(layer=12, kind=SiteKind.RESID_POST)
    assert (entry.d_model, entry.d_sae, entry.l0, entry.model) == (
        640,
        16384,
        60,
        "gemma-3-270m-pt",
    )
    assert entry.neuronpedia_id == "gemma-3-270m/12-gemmascope-2-res-16k"
    assert (
        entry.neuronpedia_sae_url
        == "https://www.neuronpedia.org/gemma-3-270m/12-gemmascope-2-res-16k"
    )
    # d_model comes from the real weights; layers, widths, L0s and the Neuronpedia id from SAELens.
    assert entry.unverified == ("layers", "widths", "l0", "neuronpedia_id")
    assert entry.verified is False
    assert resolve_sae_id("gemma-scope-2-270m-pt-res/layer_12_width_16k_l0_medium") == entry


@pytest.mark.parametrize(
    ("sae_id", "neuronpedia_id"),
    [
        (
            "gemma-scope-2-270m-it-res/layer_12/width_16k/l0_medium",
            "gemma-3-270m-it/12-gemmascope-2-res-16k",
        ),
        (
            "gemma-scope-2-270m-it-res/layer_5/width_262k/l0_medium",
            "gemma-3-270m-it/5-gemmascope-2-res-262k",
        ),
        (
            "gemma-scope-2-270m-pt-res/layer_15/width_1m/l0_medium",
            "gemma-3-270m/15-gemmascope-2-res-1m",
        ),
        (
            "gemma-scope-2-1b-pt-res/layer_22/width_65k/l0_medium",
            "gemma-3-1b/22-gemmascope-2-res-65k",
        ),
        (
            "gemma-scope-2-1b-it-res/layer_7/width_16k/l0_medium",
            "gemma-3-1b-it/7-gemmascope-2-res-16k",
        ),
        # Only res at l0_medium has pages, and not the it 1m SAEs.
        ("gemma-scope-2-270m-it-res/layer_12/width_1m/l0_medium", None),
        ("gemma-scope-2-270m-pt-res/layer_12/width_16k/l0_small", None),
        ("gemma-scope-2-270m-pt-mlp/layer_12/width_16k/l0_medium", None),
        ("gemma-scope-2-270m-pt-res-all/layer_12/width_16k/l0_big", None),
        ("gemma-scope-2-270m-pt-res/layer_12/width_262k/l0_medium_seed_1", None),
    ],
)
def test_neuronpedia_ids(sae_id: str, neuronpedia_id: str | None) -> None:
    entry = resolve_sae_id(sae_id)
    assert entry.neuronpedia_id == neuronpedia_id
    assert ("neuronpedia_id" in entry.unverified) == (neuronpedia_id is not None)


@pytest.mark.parametrize(
    ("sae_id", "folder", "site", "d_model", "l0"),
    [
        (
            "gemma-scope-2-270m-pt-mlp/layer_5/width_65k/l0_small",
            "mlp_out/layer_5_width_65k_l0_small",
            Site(5, SiteKind.MLP_OUT),
            640,
            18,
        ),
        (
            "gemma-scope-2-270m-it-att/layer_9/width_262k/l0_big",
            "attn_out/layer_9_width_262k_l0_big",
            Site(9, SiteKind.ATTN_OUT),
            1024,
            150,
        ),
        (
            "gemma-scope-2-270m-pt-att-all/layer_0/width_16k/l0_small",
            "attn_out_all/layer_0_width_16k_l0_small",
            Site(0, SiteKind.ATTN_OUT),
            1024,
            10,
        ),
        (
            "gemma-scope-2-270m-it-mlp-all/layer_17/width_262k/l0_big",
            "mlp_out_all/layer_17_width_262k_l0_big",
            Site(17, SiteKind.MLP_OUT),
            640,
            120,
        ),
        (
            "gemma-scope-2-270m-pt-res/layer_5/width_16k/l0_big",
            "resid_post/layer_5_width_16k_l0_big",
            Site(5, SiteKind.RESID_POST),
            640,
            135,
        ),
        (
            "gemma-scope-2-1b-pt-res/layer_7/width_16k/l0_medium",
            "resid_post/layer_7_width_16k_l0_medium",
            Site(7, SiteKind.RESID_POST),
            1152,
            54,
        ),
        (
            "gemma-scope-2-1b-it-mlp/layer_22/width_1m/l0_small",
            "mlp_out/layer_22_width_1m_l0_small",
            Site(22, SiteKind.MLP_OUT),
            1152,
            20,
        ),
        (
            "gemma-scope-2-1b-pt-att/layer_17/width_65k/l0_medium",
            "attn_out/layer_17_width_65k_l0_medium",
            Site(17, SiteKind.ATTN_OUT),
            1024,
            60,
        ),
        (
            "gemma-scope-2-1b-it-res-all/layer_25/width_262k/l0_small",
            "resid_post_all/layer_25_width_262k_l0_small",
            Site(25, SiteKind.RESID_POST),
            1152,
            20,
        ),
        (
            "gemma-scope-2-1b-pt-att-all/layer_3/width_16k/l0_big",
            "attn_out_all/layer_3_width_16k_l0_big",
            Site(3, SiteKind.ATTN_OUT),
            1024,
            80,
        ),
    ],
)
def test_sites_widths_and_l0s(sae_id: str, folder: str, site: Site, d_model: int, l0: int) -> None:
    entry = resolve_sae_id(sae_id)
    assert entry.folder_in_repo == folder
    assert (entry.site, entry.d_model, entry.l0) == (site, d_model, l0)


def test_provenance_of_1b_and_all_sets() -> None:
    # The 1b shape is quoted by secondary sources only; 270m's is read from the real weights.
    assert "d_model" in resolve_sae_id(ID_1B).unverified
    assert "d_model" not in resolve_sae_id(ID_270M).unverified
    # *_all sets cover every layer, a fact from Google's card and the real layer count.
    every = resolve_sae_id("gemma-scope-2-270m-pt-res-all/layer_3/width_16k/l0_small")
    assert every.unverified == ("widths", "l0")


@pytest.mark.parametrize(
    ("sae_id", "match"),
    [
        ("gemma-scope-2-270m-pt-res/layer_6/width_16k/l0_medium", "valid layers: 5, 9, 12, 15$"),
        ("gemma-scope-2-270m-it-att/layer_13/width_16k/l0_small", "valid layers: 5, 9, 12, 15$"),
        ("gemma-scope-2-270m-pt-res-all/layer_18/width_16k/l0_small", "valid layers: 0-17$"),
        ("gemma-scope-2-1b-pt-res-all/layer_26/width_16k/l0_small", "valid layers: 0-25$"),
        ("gemma-scope-2-270m-pt-mlp/layer_5/width_1m/l0_small", "valid widths: 16k, 65k, 262k$"),
        ("gemma-scope-2-1b-pt-att/layer_7/width_1m/l0_small", "valid widths: 16k, 65k, 262k$"),
        ("gemma-scope-2-270m-pt-res-all/layer_5/width_65k/l0_small", "valid widths: 16k, 262k$"),
        ("gemma-scope-2-270m-pt-res-all/layer_5/width_16k/l0_medium", "valid: l0_small, l0_big$"),
        (
            "gemma-scope-2-270m-pt-res/layer_5/width_16k/l0_medium_seed_1",
            "valid: l0_small, l0_medium, l0_big$",
        ),
        # Close matches: the nearest valid release or id is named.
        (
            "gemma-scope-2-270m-pt-resid/layer_12/width_16k/l0_medium",
            "did you mean: gemma-scope-2-270m-pt-res",
        ),
        (
            "gemma-scope-2-270m-pt-res/layer_12/16k/l0_medium",
            "cannot parse.*did you mean: gemma-scope-2-270m-pt-res/layer_12/width_16k/l0_medium",
        ),
        (
            "gemma-scope-2b-pt-resid/layer_20/width_16k/canonical",
            "did you mean: gemma-scope-2b-pt-res",
        ),
    ],
)
def test_invalid_ids_list_valid_options(sae_id: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        resolve_sae_id(sae_id)


# Counts as SAELens 6.54.12 lists them (262k medium has a second seed in the res subsets).
EXPECTED_COUNTS = {
    ("270m", "res"): 4 * 4 * 3 + 4,
    ("270m", "mlp"): 4 * 3 * 3,
    ("270m", "att"): 4 * 3 * 3,
    ("1b", "res"): 4 * 4 * 3 + 4,
    ("1b", "mlp"): 4 * 4 * 3,
    ("1b", "att"): 4 * 3 * 3,
    ("270m", "res-all"): 18 * 2 * 2,
    ("270m", "mlp-all"): 18 * 2 * 2,
    ("270m", "att-all"): 18 * 2 * 2,
    ("1b", "res-all"): 26 * 2 * 2,
    ("1b", "mlp-all"): 26 * 2 * 2,
    ("1b", "att-all"): 26 * 2 * 2,
}
_FOLDER = re.compile(
    r"^(?P<folder>resid_post|mlp_out|attn_out)(?P<all>_all)?/"
    r"layer_(?P<layer>\d+)_width_(?P<width>16k|65k|262k|1m)_l0_(?P<bucket>small|medium|big)"
    r"(?P<seed>_seed_1)?$"
)


@pytest.mark.parametrize("variant", ["pt", "it"])
@pytest.mark.parametrize(("size", "site"), sorted(EXPECTED_COUNTS))
def test_every_listed_id_resolves_to_a_well_formed_repo_and_folder(
    size: str, site: str, variant: str
) -> None:
    release = f"gemma-scope-2-{size}-{variant}-{site}"
    assert release in known_releases()
    ids = release_sae_ids(release)
    assert len(ids) == len(set(ids)) == EXPECTED_COUNTS[(size, site)]
    for sae_id in ids:
        entry = resolve_sae_id(sae_id)
        assert entry.sae_id == sae_id
        assert entry.repo_id == f"google/gemma-scope-2-{size}-{variant}"
        match = _FOLDER.match(entry.folder_in_repo)
        assert match is not None, entry.folder_in_repo
        assert match["folder"] == FOLDERS[site.removesuffix("-all")]
        assert bool(match["all"]) == site.endswith("-all")
        assert int(match["layer"]) == entry.site.layer
        assert f"width_{match['width']}" in sae_id
        assert entry.width == match["width"]
        assert entry.d_sae == {"16k": 2**14, "65k": 2**16, "262k": 2**18, "1m": 2**20}[entry.width]
        assert entry.path_in_repo == f"{entry.folder_in_repo}/params.safetensors"
        assert entry.config_path_in_repo == f"{entry.folder_in_repo}/config.json"
        assert entry.l0 is not None
        assert 10 <= entry.l0 <= 150
        # The SAELens spelling of the same SAE resolves to the same entry.
        saelens = f"{release}/{entry.folder_in_repo.split('/', 1)[1]}"
        assert resolve_sae_id(saelens) == entry


def test_data_file_names_a_known_source_for_every_fact() -> None:
    data = _data()
    sources = data["sources"]
    assert {name for name, src in sources.items() if src["verified"]} == {
        "gs2-card",
        "gs2-hub-files",
        "reader",
    }
    assert data["layout_source"] in sources
    assert data["variants"]["source"] in sources
    assert data["seed_variants"]["source"] in sources
    for size, model in data["models"].items():
        for fact in ("shape", "subset_layers", "widths", "l0", "neuronpedia_widths"):
            assert model[fact]["source"] in sources, (size, fact)
        n_layers = model["shape"]["n_layers"]
        subset = model["subset_layers"]["values"]
        assert subset == sorted(set(subset))
        assert all(0 <= v < n_layers for v in subset)
        for bucket in ("small", "medium", "big"):
            assert len(model["l0"]["subset"][bucket]) == len(subset), (size, bucket)
        for bucket in ("small", "big"):
            assert len(model["l0"]["all"][bucket]) == n_layers, (size, bucket)
        assert set(model["widths"]["values"]) == set(data["sites"]), size


def test_data_file_ships_with_the_package() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text("utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["scope_guard"]
    assert any(fnmatch.fnmatch("sae/data/gemma_scope_2.yaml", g) for g in globs)


# ------------------------------------------------------------------------------- loading
def test_270m_id_loads_from_the_cache_offline(tmp_path: Path) -> None:
    entry = resolve_sae_id(ID_270M)
    folder = snapshot(tmp_path, entry.repo_id) / entry.folder_in_repo
    raw = write_gemma_scope_2(folder, d_model=640, d_sae=16384, hook="model.layers.12.output")
    reader_width = site_dim(gemma3_270m_config(), entry.site)
    assert reader_width == 640
    sae = load_sae(ID_270M, expected_d_model=reader_width, cache_dir=tmp_path)
    assert sae.info.source == ID_270M
    assert sae.info.site == Site(layer=12, kind=SiteKind.RESID_POST)
    assert sae.info.neuronpedia_id == "gemma-3-270m/12-gemmascope-2-res-16k"
    assert sae.info.model_name == "google/gemma-3-270m"
    # JumpReLU by hand on the stored weights: pre = x W_enc + b_enc; keep pre > threshold.
    x = torch.randn(3, 640, generator=torch.Generator().manual_seed(2))
    w_enc, b_enc, thr = (raw[k].float() for k in ("w_enc", "b_enc", "threshold"))
    pre = x @ w_enc + b_enc
    expected = torch.where(pre > thr, pre, torch.zeros_like(pre))
    torch.testing.assert_close(sae.encode(x), expected, rtol=1e-5, atol=1e-4)


def test_270m_attention_id_matches_the_reader_heads(tmp_path: Path) -> None:
    sae_id = "gemma-scope-2-270m-it-att-all/layer_1/width_16k/l0_small"
    entry = resolve_sae_id(sae_id)
    width = site_dim(gemma3_270m_config(), entry.site)
    assert width == entry.d_model == 1024
    folder = snapshot(tmp_path, entry.repo_id) / entry.folder_in_repo
    write_gemma_scope_2(
        folder, d_model=1024, d_sae=16384, hook="model.layers.1.self_attn.o_proj.input"
    )
    sae = load_sae(sae_id, expected_d_model=width, cache_dir=tmp_path)
    assert (sae.d_model, sae.info.site) == (1024, Site(layer=1, kind=SiteKind.ATTN_OUT))


def test_1b_sae_for_a_270m_reader_is_refused_naming_both_widths(tmp_path: Path) -> None:
    width = site_dim(gemma3_270m_config(), Site(layer=13, kind=SiteKind.RESID_POST))
    # Refused from the id alone: no file is needed (the cache here is empty).
    with pytest.raises(ConfigError, match=r"gemma-3-1b-pt \(d_model=1152\).*d_model=640"):
        load_sae(ID_1B, expected_d_model=width, cache_dir=tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"d_model=1152.*d_model=640"):
        load_sae(resolve_sae_id(ID_1B), expected_d_model=width, cache_dir=tmp_path / "empty")


@pytest.mark.parametrize(
    "sae_id",
    [
        # Past Python's 4300-digit int limit: was a bare ValueError from int().
        "gemma-scope-2-270m-pt-res/layer_" + "9" * 5000 + "/width_16k/l0_small",
        "gemma-scope-2b-pt-res/layer_" + "9" * 5000 + "/width_16k/canonical",
        "gemma-scope-2b-pt-res/layer_20/width_16k/average_l0_" + "7" * 5000,
        "gemma-scope-2-270m-pt-res/layer_" + "9" * 40 + "/width_16k/l0_small",
    ],
)
def test_huge_layer_numbers_are_a_config_error(sae_id: str) -> None:
    with pytest.raises(ConfigError, match=r"cannot parse|no layer"):
        resolve_sae_id(sae_id)
