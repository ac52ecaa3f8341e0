from __future__ import annotations

import pytest

from scope_guard.errors import ConfigError
from scope_guard.sae import SAERegistryEntry, known_releases, neuronpedia_url, resolve_sae_id
from scope_guard.sae.registry import _data
from scope_guard.sites import Site, SiteKind


def test_canonical_gemma_scope_id() -> None:
    entry = resolve_sae_id("gemma-scope-2b-pt-res/layer_20/width_16k/canonical")
    assert entry.repo_id == "google/gemma-scope-2b-pt-res"
    assert entry.path_in_repo == "layer_20/width_16k/average_l0_71/params.npz"
    assert entry.sae_id == "gemma-scope-2b-pt-res/layer_20/width_16k/average_l0_71"
    assert (entry.l0, entry.canonical, entry.verified) == (71, True, True)
    assert entry.site == Site(layer=20, kind=SiteKind.RESID_POST)
    assert (entry.model, entry.d_model, entry.d_sae) == ("gemma-2-2b", 2304, 16384)
    assert entry.neuronpedia_id == "gemma-2-2b/20-gemmascope-res-16k"
    assert (
        entry.neuronpedia_sae_url == "https://www.neuronpedia.org/gemma-2-2b/20-gemmascope-res-16k"
    )
    assert resolve_sae_id("gemma-scope-2b-pt-res/layer_20/width_16k/average_l0_71") == entry
    assert resolve_sae_id("gemma-scope-2b-pt-res-canonical/layer_20/width_16k/canonical") == entry


def test_explicit_non_canonical_l0() -> None:
    entry = resolve_sae_id("gemma-scope-2b-pt-res/layer_20/width_16k/average_l0_22")
    assert entry.path_in_repo == "layer_20/width_16k/average_l0_22/params.npz"
    assert (entry.canonical, entry.neuronpedia_id) == (False, None)


# Canonical L0s as SAELens's *-canonical releases list them.
@pytest.mark.parametrize(
    ("release", "layer", "width", "l0"),
    [
        ("gemma-scope-2b-pt-res", 12, "16k", 82),
        ("gemma-scope-2b-pt-res", 13, "16k", 84),
        ("gemma-scope-2b-pt-res", 25, "16k", 116),
        ("gemma-scope-2b-pt-res", 18, "65k", 116),
        ("gemma-scope-2b-pt-res", 19, "1m", 88),
        ("gemma-scope-2b-pt-res", 12, "262k", 121),
        ("gemma-scope-2b-pt-mlp", 0, "16k", 119),
        ("gemma-scope-2b-pt-mlp", 7, "16k", 60),
        ("gemma-scope-2b-pt-mlp", 17, "65k", 136),
        ("gemma-scope-2b-pt-att", 20, "16k", 62),
        ("gemma-scope-2b-pt-att", 23, "65k", 140),
    ],
)
def test_canonical_matches_saelens(release: str, layer: int, width: str, l0: int) -> None:
    entry = resolve_sae_id(f"{release}/layer_{layer}/width_{width}/canonical")
    assert entry.l0 == l0
    kind = release.rsplit("-", 1)[1]
    assert entry.neuronpedia_id == f"gemma-2-2b/{layer}-gemmascope-{kind}-{width}"


# 9b, 9b-it and 27b: path, Neuronpedia id and d_model as SAELens lists them.
@pytest.mark.parametrize(
    ("sae_id", "path", "neuronpedia_id", "d_model"),
    [
        (
            "gemma-scope-9b-pt-res/layer_20/width_16k/canonical",
            "layer_20/width_16k/average_l0_68",
            "gemma-2-9b/20-gemmascope-res-16k",
            3584,
        ),
        (
            "gemma-scope-9b-pt-res-canonical/layer_9/width_1m/canonical",
            "layer_9/width_1m/average_l0_122",
            "gemma-2-9b/9-gemmascope-res-1m",
            3584,
        ),
        (
            "gemma-scope-9b-pt-mlp/layer_41/width_131k/canonical",
            "layer_41/width_131k/average_l0_99",
            "gemma-2-9b/41-gemmascope-mlp-131k",
            3584,
        ),
        (
            "gemma-scope-9b-pt-att/layer_34/width_131k/canonical",
            "layer_34/width_131k/average_l0_63",
            "gemma-2-9b/34-gemmascope-att-131k",
            4096,
        ),
        (
            "gemma-scope-27b-pt-res/layer_22/width_131k/canonical",
            "layer_22/width_131k/average_l0_82",
            "gemma-2-27b/22-gemmascope-res-131k",
            4608,
        ),
        (
            "gemma-scope-9b-it-res/layer_9/width_131k/canonical",
            "layer_9/width_131k/average_l0_121",
            "gemma-2-9b-it/9-gemmascope-res-131k",
            3584,
        ),
        # Non-canonical SAEs with a Neuronpedia id of their own (SAELens's `__l0-N` ids).
        (
            "gemma-scope-9b-pt-res/layer_9/width_16k/average_l0_51",
            "layer_9/width_16k/average_l0_51",
            "gemma-2-9b/9-gemmascope-res-16k__l0-51",
            3584,
        ),
        (
            "gemma-scope-9b-pt-mlp/layer_12/width_16k/average_l0_42",
            "layer_12/width_16k/average_l0_42",
            "gemma-2-9b/12-gemmascope-mlp-16k__l0-42",
            3584,
        ),
        (
            "gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_22",
            "layer_12/width_16k/average_l0_22",
            "gemma-2-2b/12-gemmascope-res-16k__l0-22",
            2304,
        ),
        # Non-canonical, no Neuronpedia id.
        (
            "gemma-scope-9b-pt-mlp/layer_3/width_131k/average_l0_58",
            "layer_3/width_131k/average_l0_58",
            None,
            3584,
        ),
    ],
)
def test_9b_27b_ids_resolve(
    sae_id: str, path: str, neuronpedia_id: str | None, d_model: int
) -> None:
    entry = resolve_sae_id(sae_id)
    release = sae_id.split("/", 1)[0].removesuffix("-canonical")
    assert entry.repo_id == f"google/{release}"
    assert entry.path_in_repo == f"{path}/params.npz"
    assert entry.sae_id == f"{release}/{path}"
    assert entry.verified
    assert entry.canonical == sae_id.endswith("/canonical")
    assert (entry.neuronpedia_id, entry.d_model) == (neuronpedia_id, d_model)
    if neuronpedia_id is not None:
        expected = f"https://www.neuronpedia.org/{neuronpedia_id}/7"
        assert neuronpedia_url(entry, 7) == expected


# Canonical L0s as SAELens's 9b/27b *-canonical releases list them.
@pytest.mark.parametrize(
    ("release", "layer", "width", "l0"),
    [
        ("gemma-scope-9b-pt-res", 0, "16k", 129),
        ("gemma-scope-9b-pt-res", 31, "131k", 92),
        ("gemma-scope-9b-pt-res", 20, "524k", 48),
        ("gemma-scope-9b-pt-res", 41, "16k", 113),
        ("gemma-scope-9b-pt-mlp", 0, "131k", 30),
        ("gemma-scope-9b-pt-mlp", 12, "16k", 96),
        ("gemma-scope-9b-pt-att", 1, "131k", 116),
        # 64 and 136 are equally close to 100: SAELens's choice is recorded, not the rule's.
        ("gemma-scope-9b-pt-att", 27, "16k", 136),
        ("gemma-scope-27b-pt-res", 10, "131k", 106),
        ("gemma-scope-27b-pt-res", 34, "131k", 72),
        ("gemma-scope-9b-it-res", 31, "16k", 76),
    ],
)
def test_canonical_matches_saelens_9b_27b(release: str, layer: int, width: str, l0: int) -> None:
    entry = resolve_sae_id(f"{release}/layer_{layer}/width_{width}/canonical")
    assert (entry.l0, entry.canonical) == (l0, True)
    explicit = resolve_sae_id(f"{release}/layer_{layer}/width_{width}/average_l0_{l0}")
    assert explicit == entry


def test_tied_l0_is_not_canonical() -> None:
    entry = resolve_sae_id("gemma-scope-9b-pt-att/layer_27/width_16k/average_l0_64")
    assert (entry.canonical, entry.neuronpedia_id) == (False, None)


def test_attention_sae_reads_concatenated_heads() -> None:
    entry = resolve_sae_id("gemma-scope-2b-pt-att/layer_6/width_16k/canonical")
    assert entry.site == Site(layer=6, kind=SiteKind.ATTN_OUT)
    assert entry.d_model == 2048


def test_gemma_scope_2_ids() -> None:
    entry = resolve_sae_id("gemma-scope-2-1b-pt-res/layer_22/width_16k/l0_medium")
    assert entry.repo_id == "google/gemma-scope-2-1b-pt"
    assert entry.path_in_repo == "resid_post/layer_22_width_16k_l0_medium/params.safetensors"
    assert entry.config_path_in_repo == "resid_post/layer_22_width_16k_l0_medium/config.json"
    assert (entry.d_model, entry.d_sae, entry.model) == (1152, 16384, "gemma-3-1b-pt")
    assert entry.family == "gemma-scope-2"
    assert resolve_sae_id("gemma-scope-2-1b-pt-res/layer_22_width_16k_l0_medium") == entry
    every = resolve_sae_id("gemma-scope-2-4b-it-res-all/layer_3/width_262k/l0_small")
    assert every.path_in_repo == "resid_post_all/layer_3_width_262k_l0_small/params.safetensors"
    assert every.repo_id == "google/gemma-scope-2-4b-it"
    att = resolve_sae_id("gemma-scope-2-27b-pt-att-all/layer_60/width_16k/l0_big")
    assert (att.site, att.d_model) == (Site(layer=60, kind=SiteKind.ATTN_OUT), 4096)


@pytest.mark.parametrize(
    ("sae_id", "match"),
    [
        (
            "gemma-scope-7b-pt-res/layer_1/width_16k/canonical",
            "valid Gemma Scope releases: gemma-scope-2b-pt-res",
        ),
        ("gemma-scope-2b-pt-res/layer_26/width_16k/canonical", "valid layers: 0-25"),
        ("gemma-scope-2b-pt-res/layer_20/width_131k/canonical", "valid widths: 16k, 65k"),
        (
            "gemma-scope-2b-pt-res/layer_20/width_16k/average_l0_72",
            "valid: average_l0_22, average_l0_38, average_l0_71, average_l0_139, "
            "average_l0_294, canonical",
        ),
        ("gemma-scope-2b-pt-res/layer_20/16k", "cannot parse"),
        ("gemma-scope-27b-pt-res/layer_11/width_131k/canonical", "valid layers: 10, 22, 34"),
        (
            "gemma-scope-9b-pt-res/layer_20/width_16k/average_l0_57",
            "valid: average_l0_11, average_l0_20, average_l0_36, average_l0_58, average_l0_68, "
            "average_l0_138, average_l0_310, average_l0_408, canonical",
        ),
        (
            "gemma-scope-27b-pt-res/layer_10/width_131k/average_l0_100",
            "valid: average_l0_15, average_l0_24, average_l0_37, average_l0_64, "
            "average_l0_106, average_l0_200, canonical",
        ),
        ("gemma-scope-9b-pt-res/layer_42/width_16k/canonical", "valid layers: 0-41"),
        ("gemma-scope-9b-it-res/layer_10/width_16k/canonical", "valid layers: 9, 20, 31"),
        ("gemma-scope-9b-pt-mlp/layer_3/width_1m/canonical", "valid widths: 16k, 131k"),
        ("gemma-scope-27b-pt-res/layer_10/width_16k/canonical", "valid widths: 131k"),
        # SAELens has no canonical SAE for these (layer, width): no rule-made canonical either.
        (
            "gemma-scope-9b-pt-res/layer_20/width_262k/canonical",
            "lists no canonical SAE .* average_l0_11, average_l0_50, average_l0_259$",
        ),
        ("gemma-scope-2b-pt-res/layer_12/width_131k/canonical", "lists no canonical SAE"),
        (
            "gemma-scope-2b-pt-res/layer_12/width_131k/average_l0_100",
            "average_l0_129, average_l0_264$",
        ),
        ("gemma-scope-2-1b-pt-res/layer_8/width_16k/l0_small", "valid layers: 7, 13, 17, 22"),
        ("gemma-scope-2-1b-pt-res/layer_7/width_32k/l0_small", "valid widths: 16k, 65k, 262k, 1m"),
        ("gemma-scope-2-1b-pt-res-all/layer_7/width_16k/l0_medium", "valid: l0_small, l0_big"),
        ("gemma-scope-2-1b-pt-res/layer_7/width_16k/canonical", "cannot parse"),
        ("gemma-scope-2-3b-pt-res/layer_7/width_16k/l0_small", "sizes: 270m, 1b, 4b, 12b, 27b"),
    ],
)
def test_invalid_ids_list_valid_options(sae_id: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        resolve_sae_id(sae_id)


def test_unverified_l0_is_accepted_but_marked(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every release is transcribed in full today; an incomplete one (widths but no L0 lists)
    # accepts an explicit L0 unchecked and refuses 'canonical'.
    data = _data()
    rel = dict(data["gemma_scope_1"]["gemma-scope-9b-pt-mlp"], complete=False, l0={})
    rel["widths"] = ["16k", "131k"]
    fake = {**data, "gemma_scope_1": {**data["gemma_scope_1"], "gemma-scope-9b-pt-mlp": rel}}
    monkeypatch.setattr("scope_guard.sae.registry._data", lambda: fake)
    entry = resolve_sae_id("gemma-scope-9b-pt-mlp/layer_3/width_131k/average_l0_50")
    assert entry.path_in_repo == "layer_3/width_131k/average_l0_50/params.npz"
    assert (entry.verified, entry.canonical, entry.d_model) == (False, False, 3584)
    assert "unchecked" in caplog.text
    with pytest.raises(ConfigError, match="not in the registry"):
        resolve_sae_id("gemma-scope-9b-pt-mlp/layer_3/width_16k/canonical")


def test_neuronpedia_url() -> None:
    entry = resolve_sae_id("gemma-scope-2b-pt-res/layer_20/width_16k/canonical")
    expected = "https://www.neuronpedia.org/gemma-2-2b/20-gemmascope-res-16k/123"
    assert neuronpedia_url(entry, 123) == expected
    assert neuronpedia_url("gemma-scope-2b-pt-res/layer_20/width_16k/canonical", 123) == expected
    assert neuronpedia_url("gemma-2-2b/20-gemmascope-res-16k", 123) == expected
    with pytest.raises(ConfigError, match=r"valid: 0\.\.16383"):
        neuronpedia_url(entry, 16384)
    with pytest.raises(ConfigError, match="no Neuronpedia id"):
        neuronpedia_url(resolve_sae_id("gemma-scope-2b-pt-res/layer_20/width_16k/average_l0_22"), 1)


def test_registry_data_is_consistent() -> None:
    data = _data()
    assert _data() is data  # read once
    for name, rel in data["gemma_scope_1"].items():
        assert rel["repo_id"] == f"google/{name}"
        for layer, widths in rel["l0"].items():
            assert 0 <= layer < rel["n_layers"]
            for width, l0s in widths.items():
                assert width in data["widths"]
                assert l0s == sorted(set(l0s)), (name, layer, width)
                assert all(v > 0 for v in l0s), (name, layer, width)
    for name in ("gemma-scope-2b-pt-res", "gemma-scope-2b-pt-mlp", "gemma-scope-2b-pt-att"):
        assert sorted(data["gemma_scope_1"][name]["l0"]) == list(range(26))
    for name, rel in data["gemma_scope_1"].items():
        assert rel["complete"] is True, name
        # A complete release lists every layer it has.
        layers = rel.get("layers", list(range(rel["n_layers"])))
        assert sorted(rel["l0"]) == sorted(layers), name
        for layer, overrides in rel.get("canonical_override", {}).items():
            for width, l0 in overrides.items():
                assert l0 is None or l0 in rel["l0"][layer][width], (name, layer, width)
        for layer, widths in rel.get("neuronpedia_l0", {}).items():
            for width, l0s in widths.items():
                assert set(l0s) <= set(rel["l0"][layer][width]), (name, layer, width)
    assert sum(len(w) for w in data["gemma_scope_1"]["gemma-scope-9b-pt-res"]["l0"].values()) == 91
    releases = known_releases()
    assert {
        "gemma-scope-9b-it-res",
        "gemma-scope-27b-pt-res",
        "gemma-scope-2-270m-it-mlp-all",
    } <= set(releases)
    assert all(
        isinstance(resolve_sae_id(f"{r}/layer_20/width_16k/average_l0_71"), SAERegistryEntry)
        for r in ("gemma-scope-2b-pt-res",)
    )
