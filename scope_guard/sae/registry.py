"""The registry of pretrained Gemma Scope SAEs: ids -> Hugging Face repo and file.

The facts live in ``data/gemma_scope.yaml`` (read once, cached); this module only interprets
them. Two id forms:

- Gemma Scope 1: ``{release}/layer_{L}/width_{W}/average_l0_{N}`` or ``.../canonical`` (the
  average L0 closest to 100, unless the data records SAELens's canonical as an exception), e.g.
  ``gemma-scope-2b-pt-res/layer_20/width_16k/canonical``. The SAELens release
  ``{release}-canonical`` is accepted too.
- Gemma Scope 2: ``gemma-scope-2-{size}-{pt|it}-{site}/layer_{L}/width_{W}/l0_{small|medium|big}``
  with ``site`` in ``res, res-all, mlp, mlp-all, att, att-all``, e.g.
  ``gemma-scope-2-1b-pt-res/layer_22/width_16k/l0_medium``. The SAELens spelling
  ``.../layer_22_width_16k_l0_medium`` is accepted too.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import yaml

from scope_guard.errors import ConfigError
from scope_guard.sites import Site, SiteKind

__all__ = ["SAERegistryEntry", "known_releases", "neuronpedia_url", "resolve_sae_id"]

logger = logging.getLogger(__name__)

NEURONPEDIA_BASE = "https://www.neuronpedia.org"

_GS1_TAIL = re.compile(
    r"^layer_(?P<layer>\d+)/width_(?P<width>\w+)/(?P<l0>average_l0_\d+|canonical)$"
)
_GS2_RELEASE = re.compile(r"^gemma-scope-2-(?P<size>\w+?)-(?P<variant>pt|it)-(?P<site>[a-z-]+)$")
_GS2_TAIL = re.compile(r"^layer_(?P<layer>\d+)[/_]width_(?P<width>\w+?)[/_]l0_(?P<l0>[a-z]+)$")


@dataclass(frozen=True)
class SAERegistryEntry:
    """A resolved registry id: where the SAE's files are and what it reads.

    Attributes:
        sae_id: The normalised id (canonical resolved to its L0).
        release: Release name (``"gemma-scope-2b-pt-res"``).
        family: ``"gemma-scope"`` (Gemma 2) or ``"gemma-scope-2"`` (Gemma 3).
        repo_id: Hugging Face repo (``"google/gemma-scope-2b-pt-res"``).
        path_in_repo: The weights file inside the repo.
        config_path_in_repo: Gemma Scope 2's ``config.json`` beside the weights, else None.
        model: The model the SAE reads (``"gemma-2-2b"``).
        site: Hook site.
        d_model: Width of the activations the SAE reads.
        width: Width label (``"16k"``); ``d_sae`` is its number of latents.
        d_sae: Number of latents.
        l0: Average L0 (Gemma Scope 1), or None where not recorded.
        l0_label: ``"average_l0_71"`` or ``"l0_medium"``.
        canonical: Whether this is the release's canonical SAE for the layer and width.
        verified: Whether the L0 was checked against the registry's transcribed lists.
        neuronpedia_id: Neuronpedia's id (``"gemma-2-2b/20-gemmascope-res-16k"``, or
            ``"gemma-2-9b/9-gemmascope-res-16k__l0-51"`` for a non-canonical SAE), or None.
    """

    sae_id: str
    release: str
    family: Literal["gemma-scope", "gemma-scope-2"]
    repo_id: str
    path_in_repo: str
    config_path_in_repo: str | None
    model: str
    site: Site
    d_model: int
    width: str
    d_sae: int
    l0: int | None
    l0_label: str
    canonical: bool
    verified: bool
    neuronpedia_id: str | None

    @property
    def neuronpedia_sae_url(self) -> str | None:
        """Neuronpedia page of the whole SAE, when it has one."""
        if self.neuronpedia_id is None:
            return None
        return f"{NEURONPEDIA_BASE}/{self.neuronpedia_id}"


@functools.cache
def _data() -> dict[str, Any]:
    text = resources.files("scope_guard.sae").joinpath("data/gemma_scope.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def known_releases() -> tuple[str, ...]:
    """Every release name the registry resolves (Gemma Scope 2 ones expanded)."""
    data = _data()
    gs2 = data["gemma_scope_2"]
    names = list(data["gemma_scope_1"])
    names += [
        f"gemma-scope-2-{size}-{variant}-{site}"
        for size in gs2["models"]
        for variant in gs2["variants"]
        for site in gs2["sites"]
    ]
    return tuple(names)


def normalize_sae_id(sae_id: str) -> str:
    """An id as the registry spells it: outer and per-part whitespace and slashes removed."""
    return "/".join(part.strip() for part in str(sae_id).strip().strip("/").split("/"))


def is_registry_id(text: str) -> bool:
    """Whether ``text`` names a registry release (Gemma Scope 1, its ``-canonical`` twin, or
    Gemma Scope 2), whatever follows."""
    release = normalize_sae_id(text).split("/", 1)[0]
    return (
        release.removesuffix("-canonical") in _data()["gemma_scope_1"]
        or _GS2_RELEASE.match(release) is not None
    )


def resolve_sae_id(sae_id: str) -> SAERegistryEntry:
    """Resolve a registry id to its repo, file, site and metadata.

    Raises:
        ConfigError: on an unknown release, layer, width or L0, listing the valid options.
    """
    text = normalize_sae_id(sae_id)
    release, _, tail = text.partition("/")
    if (
        release in _data()["gemma_scope_1"]
        or release.removesuffix("-canonical") in _data()["gemma_scope_1"]
    ):
        return _resolve_gs1(release, tail)
    if _GS2_RELEASE.match(release):
        return _resolve_gs2(release, tail)
    valid = ", ".join(_data()["gemma_scope_1"])
    msg = (
        f"unknown SAE release {release!r} in {sae_id!r}; valid Gemma Scope releases: {valid}; "
        "Gemma Scope 2: gemma-scope-2-{270m|1b|4b|12b|27b}-{pt|it}-"
        "{res|res-all|mlp|mlp-all|att|att-all}"
    )
    raise ConfigError(msg)


def _closest_to_100(l0s: list[int]) -> int:
    return min(l0s, key=lambda v: (abs(v - 100), v))


def _canonical_l0(rel: dict[str, Any], layer: int, width: str, options: list[int]) -> int | None:
    """SAELens's canonical L0: the closest to 100 unless the data records an exception."""
    override: dict[str, int | None] = rel.get("canonical_override", {}).get(layer, {})
    if width in override:
        return override[width]
    return _closest_to_100(options) if options else None


def _resolve_gs1(release: str, tail: str) -> SAERegistryEntry:
    base = release.removesuffix("-canonical")
    rel = _data()["gemma_scope_1"][base]
    match = _GS1_TAIL.match(tail)
    if not match:
        msg = (
            f"cannot parse {release}/{tail!r}; write it as "
            f"'{base}/layer_<L>/width_<W>/average_l0_<N>' or '{base}/layer_<L>/width_<W>/canonical'"
        )
        raise ConfigError(msg)
    layer, width, l0_part = int(match["layer"]), match["width"], match["l0"]
    layers = _gs1_layers(rel)
    if layer not in layers:
        msg = f"{base} has no layer {layer}; valid layers: {_ranges(layers)}"
        raise ConfigError(msg)
    listed: dict[str, list[int]] = rel["l0"].get(layer, {})
    widths = list(dict.fromkeys([*rel.get("widths", []), *listed]))
    if width not in widths:
        msg = f"{base} layer {layer} has no width {width!r}; valid widths: {', '.join(widths)}"
        raise ConfigError(msg)
    options = sorted(listed.get(width, []))
    if l0_part == "canonical":
        if not options:
            msg = (
                f"the L0 options of {base}/layer_{layer}/width_{width} are not in the registry, "
                "so 'canonical' cannot be resolved; give an explicit average_l0_<N>"
            )
            raise ConfigError(msg)
        canonical_l0 = _canonical_l0(rel, layer, width, options)
        if canonical_l0 is None:
            msg = (
                f"SAELens lists no canonical SAE for {base}/layer_{layer}/width_{width}; give an "
                f"explicit one of: {', '.join(f'average_l0_{v}' for v in options)}"
            )
            raise ConfigError(msg)
        l0 = canonical_l0
    else:
        l0 = int(l0_part.removeprefix("average_l0_"))
        if options and l0 not in options:
            valid = [f"average_l0_{v}" for v in options]
            if _canonical_l0(rel, layer, width, options) is not None:
                valid.append("canonical")
            msg = (
                f"{base}/layer_{layer}/width_{width} has no average_l0_{l0}; "
                f"valid: {', '.join(valid)}"
            )
            raise ConfigError(msg)
        if not options:
            logger.warning(
                "L0 options of %s/layer_%d/width_%s are not in the registry; "
                "average_l0_%d is used unchecked",
                base,
                layer,
                width,
                l0,
            )
    canonical = bool(options) and l0 == _canonical_l0(rel, layer, width, options)
    folder = f"layer_{layer}/width_{width}/average_l0_{l0}"
    np_set = rel.get("neuronpedia_set")
    neuronpedia_id = None
    if np_set and canonical:
        neuronpedia_id = f"{rel['model']}/{layer}-{np_set}-{width}"
    elif np_set and l0 in rel.get("neuronpedia_l0", {}).get(layer, {}).get(width, []):
        neuronpedia_id = f"{rel['model']}/{layer}-{np_set}-{width}__l0-{l0}"
    return SAERegistryEntry(
        sae_id=f"{base}/{folder}",
        release=base,
        family="gemma-scope",
        repo_id=rel["repo_id"],
        path_in_repo=f"{folder}/params.npz",
        config_path_in_repo=None,
        model=rel["model"],
        site=Site(layer=layer, kind=SiteKind(rel["site"])),
        d_model=int(rel["d_in"]),
        width=width,
        d_sae=int(_data()["widths"][width]),
        l0=l0,
        l0_label=f"average_l0_{l0}",
        canonical=canonical,
        verified=bool(options),
        neuronpedia_id=neuronpedia_id,
    )


def _gs1_layers(rel: dict[str, Any]) -> list[int]:
    if "layers" in rel:
        return [int(v) for v in rel["layers"]]
    return list(range(int(rel["n_layers"])))


def _ranges(values: list[int]) -> str:
    if values and values == list(range(values[0], values[-1] + 1)) and len(values) > 3:
        return f"{values[0]}-{values[-1]}"
    return ", ".join(str(v) for v in values)


def _resolve_gs2(release: str, tail: str) -> SAERegistryEntry:
    gs2 = _data()["gemma_scope_2"]
    rmatch = _GS2_RELEASE.match(release)
    assert rmatch is not None  # checked by the caller
    size, variant, site_name = rmatch["size"], rmatch["variant"], rmatch["site"]
    if size not in gs2["models"] or site_name not in gs2["sites"]:
        msg = (
            f"unknown Gemma Scope 2 release {release!r}; sizes: {', '.join(gs2['models'])}; "
            f"variants: pt, it; sites: {', '.join(gs2['sites'])}"
        )
        raise ConfigError(msg)
    model, site = gs2["models"][size], gs2["sites"][site_name]
    match = _GS2_TAIL.match(tail)
    if not match:
        msg = (
            f"cannot parse {release}/{tail!r}; write it as "
            f"'{release}/layer_<L>/width_<W>/l0_<small|medium|big>'"
        )
        raise ConfigError(msg)
    layer, width, bucket = int(match["layer"]), match["width"], match["l0"]
    n_layers = int(model["n_layers"])
    selected = model.get("selected_layers")
    layers = list(range(n_layers)) if site["all_layers"] or selected is None else list(selected)
    if layer not in layers:
        msg = f"{release} has no layer {layer}; valid layers: {_ranges(layers)}"
        raise ConfigError(msg)
    if not site["all_layers"] and selected is None:
        logger.warning(
            "the layers of %s are not in the registry; layer %d is used unchecked", release, layer
        )
    if width not in site["widths"]:
        msg = f"{release} has no width {width!r}; valid widths: {', '.join(site['widths'])}"
        raise ConfigError(msg)
    if bucket not in site["l0"]:
        msg = f"{release} has no l0_{bucket}; valid: {', '.join('l0_' + b for b in site['l0'])}"
        raise ConfigError(msg)
    folder = f"{site['folder']}/layer_{layer}_width_{width}_l0_{bucket}"
    kind = SiteKind(site["kind"])
    return SAERegistryEntry(
        sae_id=f"{release}/layer_{layer}/width_{width}/l0_{bucket}",
        release=release,
        family="gemma-scope-2",
        repo_id=f"google/gemma-scope-2-{size}-{variant}",
        path_in_repo=f"{folder}/params.safetensors",
        config_path_in_repo=f"{folder}/config.json",
        model=f"{model['model']}-{variant}",
        site=Site(layer=layer, kind=kind),
        d_model=int(model["d_attn"] if kind is SiteKind.ATTN_OUT else model["d_model"]),
        width=width,
        d_sae=int(_data()["widths"][width]),
        l0=None,
        l0_label=f"l0_{bucket}",
        canonical=False,
        verified=site["all_layers"] or selected is not None,
        neuronpedia_id=None,
    )


def neuronpedia_url(entry: SAERegistryEntry | str, latent: int) -> str:
    """The Neuronpedia page of one latent: ``https://www.neuronpedia.org/{model}/{sae}/{latent}``.

    Args:
        entry: A registry entry, a registry id, or a Neuronpedia SAE id
            (``"gemma-2-2b/20-gemmascope-res-16k"``).
        latent: Original latent index, ``0 <= latent < d_sae``.

    Raises:
        ConfigError: if the SAE has no Neuronpedia page or ``latent`` is out of range.
    """
    d_sae = None
    if isinstance(entry, str) and is_registry_id(entry):
        entry = resolve_sae_id(entry)
    if isinstance(entry, SAERegistryEntry):
        if entry.neuronpedia_id is None:
            msg = (
                f"{entry.sae_id} has no Neuronpedia id in the registry "
                "(canonical Gemma Scope SAEs and a few others listed by SAELens have one)"
            )
            raise ConfigError(msg)
        np_id, d_sae = entry.neuronpedia_id, entry.d_sae
    else:
        np_id = normalize_sae_id(entry)
    if (
        isinstance(latent, bool)
        or not isinstance(latent, int)
        or latent < 0
        or (d_sae is not None and latent >= d_sae)
    ):
        valid = f"0..{d_sae - 1}" if d_sae is not None else "a non-negative integer"
        msg = f"latent {latent!r} is out of range; valid: {valid}"
        raise ConfigError(msg)
    return f"{NEURONPEDIA_BASE}/{np_id}/{latent}"
