"""The registry of pretrained Gemma Scope SAEs: ids -> Hugging Face repo and files.

The facts live in data files (read once, cached); the code only interprets them:

- Gemma Scope 1 (Gemma 2), ``data/gemma_scope.yaml``:
  ``{release}/layer_{L}/width_{W}/average_l0_{N}`` or ``.../canonical`` (the average L0 closest
  to 100, unless the data records SAELens's canonical as an exception), e.g.
  ``gemma-scope-2b-pt-res/layer_20/width_16k/canonical``. The SAELens release
  ``{release}-canonical`` is accepted too.
- Gemma Scope 2 (Gemma 3), ``data/gemma_scope_2.yaml`` (see
  :mod:`scope_guard.sae.registry_gemma_scope_2`):
  ``gemma-scope-2-{size}-{pt|it}-{site}/layer_{L}/width_{W}/l0_{small|medium|big}`` with
  ``site`` in ``res, res-all, mlp, mlp-all, att, att-all``, e.g.
  ``gemma-scope-2-270m-pt-res/layer_12/width_16k/l0_medium``. The SAELens spelling
  ``.../layer_12_width_16k_l0_medium`` is accepted too.

**Verified and unverified.** Each fact in the data names its source. A fact is *verified* when it
comes from Google's own publication (a model card, the files the hub lists) or from the real
weights this project loads; it is *unverified* when it comes from a secondary source (SAELens's
registry, third-party code or notes). :attr:`SAERegistryEntry.unverified` lists the unverified
facts an entry rests on (``verified`` is True when there are none). An unverified id may name a
folder the hub does not have, or the wrong width; ``load_sae`` still checks the downloaded
tensors against the entry's ``d_model`` and ``d_sae``, so a wrong fact fails loudly, never
silently.
"""

from __future__ import annotations

import functools
import logging
import re
from importlib import resources
from typing import Any, NoReturn

import yaml

from scope_guard.errors import ConfigError
from scope_guard.sae.registry_entry import NEURONPEDIA_BASE, SAERegistryEntry
from scope_guard.sae.registry_gemma_scope_2 import (
    did_you_mean,
    format_layers,
    gs2_releases,
    gs2_sae_ids,
    is_gs2_release,
    resolve_gs2,
)
from scope_guard.sites import Site, SiteKind

__all__ = [
    "NEURONPEDIA_BASE",
    "SAERegistryEntry",
    "known_releases",
    "neuronpedia_url",
    "release_sae_ids",
    "resolve_sae_id",
]

logger = logging.getLogger(__name__)

# Bounded digits: no SAE has a 7-digit layer or L0, and int() refuses > 4300 digits.
_GS1_TAIL = re.compile(
    r"^layer_(?P<layer>[0-9]{1,6})/width_(?P<width>\w+)/(?P<l0>average_l0_[0-9]{1,6}|canonical)$"
)


@functools.cache
def _data() -> dict[str, Any]:
    text = resources.files("scope_guard.sae").joinpath("data/gemma_scope.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def known_releases() -> tuple[str, ...]:
    """Every release name the registry resolves: Gemma Scope 1, then Gemma Scope 2."""
    return (*_data()["gemma_scope_1"], *gs2_releases())


def normalize_sae_id(sae_id: str) -> str:
    """An id as the registry spells it: outer and per-part whitespace and slashes removed."""
    return "/".join(part.strip() for part in str(sae_id).strip().strip("/").split("/"))


def is_registry_id(text: str) -> bool:
    """Whether ``text`` names a registry release (Gemma Scope 1, its ``-canonical`` twin, or
    Gemma Scope 2), whatever follows."""
    release = normalize_sae_id(text).split("/", 1)[0]
    return release.removesuffix("-canonical") in _data()["gemma_scope_1"] or is_gs2_release(release)


def release_sae_ids(release: str) -> tuple[str, ...]:
    """Every SAE id of a release, as :func:`resolve_sae_id` spells it.

    Gemma Scope 1 releases list their explicit ``average_l0_N`` ids (``canonical`` is an alias
    of one of them); Gemma Scope 2 releases list every layer, width and L0 bucket.

    Raises:
        ConfigError: if the release is unknown.
    """
    base = normalize_sae_id(release).removesuffix("-canonical")
    if base in _data()["gemma_scope_1"]:
        rel = _data()["gemma_scope_1"][base]
        return tuple(
            f"{base}/layer_{layer}/width_{width}/average_l0_{l0}"
            for layer, widths in sorted(rel["l0"].items())
            for width, l0s in widths.items()
            for l0 in l0s
        )
    if is_gs2_release(base):
        return gs2_sae_ids(base)
    return _unknown_release(base, release)


def resolve_sae_id(sae_id: str) -> SAERegistryEntry:
    """Resolve a registry id to its repo, file, site and metadata.

    Raises:
        ConfigError: on an unknown release, layer, width or L0, listing the valid options.
    """
    text = normalize_sae_id(sae_id)
    release, _, tail = text.partition("/")
    if release.removesuffix("-canonical") in _data()["gemma_scope_1"]:
        return _resolve_gs1(release, tail)
    if is_gs2_release(release):
        return resolve_gs2(release, tail)
    return _unknown_release(release, sae_id)


def _unknown_release(release: str, sae_id: str) -> NoReturn:
    valid = ", ".join(_data()["gemma_scope_1"])
    msg = (
        f"unknown SAE release {release!r} in {sae_id!r}; valid Gemma Scope releases: {valid}; "
        "Gemma Scope 2: gemma-scope-2-{270m|1b|4b|12b|27b}-{pt|it}-"
        "{res|res-all|mlp|mlp-all|att|att-all}"
        f"{did_you_mean(release, known_releases())}"
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
        msg = f"{base} has no layer {layer}; valid layers: {format_layers(layers)}"
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
        unverified=() if options else ("l0",),
    )


def _gs1_layers(rel: dict[str, Any]) -> list[int]:
    if "layers" in rel:
        return [int(v) for v in rel["layers"]]
    return list(range(int(rel["n_layers"])))


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
