"""The Gemma Scope 2 half of the registry: ids of SAEs trained on Gemma 3, read from
``data/gemma_scope_2.yaml``.

An id is ``gemma-scope-2-{size}-{pt|it}-{site}/layer_{L}/width_{W}/l0_{bucket}`` with ``site``
in ``res, res-all, mlp, mlp-all, att, att-all`` (the SAELens spelling
``.../layer_{L}_width_{W}_l0_{bucket}`` is accepted too), e.g.
``gemma-scope-2-270m-pt-res/layer_12/width_16k/l0_medium`` ->
``google/gemma-scope-2-270m-pt``, folder ``resid_post/layer_12_width_16k_l0_medium/``.

Every fact in the data file names its source; an entry lists in
:attr:`~scope_guard.sae.registry_entry.SAERegistryEntry.unverified` the facts it rests on that
come from a secondary source (SAELens's registry, third-party notes) rather than from Google's
model card, the hub's file listing or the real weights this project loads.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable
from importlib import resources
from typing import Any

import yaml

from scope_guard.errors import ConfigError
from scope_guard.sae.registry_entry import SAERegistryEntry
from scope_guard.sites import Site, SiteKind

__all__ = [
    "did_you_mean",
    "format_layers",
    "gs2_releases",
    "gs2_sae_ids",
    "is_gs2_release",
    "resolve_gs2",
]

_RELEASE = re.compile(r"^gemma-scope-2-(?P<size>[0-9a-z]+?)-(?P<variant>pt|it)-(?P<site>[a-z-]+)$")
_TAIL = re.compile(
    r"^layer_(?P<layer>[0-9]{1,6})[/_]width_(?P<width>[0-9a-z]+?)[/_]l0_(?P<bucket>[0-9a-z_]+)$"
)
_SEED_SUFFIX = re.compile(r"_seed_[0-9]+$")


@functools.cache
def _data() -> dict[str, Any]:
    path = resources.files("scope_guard.sae").joinpath("data/gemma_scope_2.yaml")
    data: dict[str, Any] = yaml.safe_load(path.read_text("utf-8"))
    return data


def did_you_mean(text: str, options: Iterable[str], n: int = 3) -> str:
    """``"; did you mean: a, b"`` for the options closest to ``text``, or ``""``."""
    close = difflib.get_close_matches(text, list(options), n=n, cutoff=0.6)
    return f"; did you mean: {', '.join(close)}" if close else ""


def is_gs2_release(name: str) -> bool:
    """Whether ``name`` is spelled like a Gemma Scope 2 release (known or not)."""
    return _RELEASE.match(name) is not None


def gs2_releases() -> tuple[str, ...]:
    """Every Gemma Scope 2 release the registry resolves."""
    data = _data()
    return tuple(
        f"gemma-scope-2-{size}-{variant}-{site}"
        for size in data["models"]
        for variant in data["variants"]["values"]
        for site in data["sites"]
    )


def _verified(source: str) -> bool:
    return bool(_data()["sources"][source]["verified"])


def _parse_release(release: str) -> tuple[str, str, str]:
    match = _RELEASE.match(release)
    data = _data()
    if (
        match is None
        or match["size"] not in data["models"]
        or match["site"] not in data["sites"]
        or match["variant"] not in data["variants"]["values"]
    ):
        msg = (
            f"unknown Gemma Scope 2 release {release!r}; sizes: {', '.join(data['models'])}; "
            f"variants: pt, it; sites: {', '.join(data['sites'])}"
            f"{did_you_mean(release, gs2_releases())}"
        )
        raise ConfigError(msg)
    return match["size"], match["variant"], match["site"]


def _layers(model: dict[str, Any], site: dict[str, Any]) -> list[int]:
    if site["all_layers"]:
        return list(range(int(model["shape"]["n_layers"])))
    return [int(v) for v in model["subset_layers"]["values"]]


def _buckets(site_name: str, site: dict[str, Any], width: str) -> list[str]:
    extra = _data()["seed_variants"]["values"].get(site_name, {}).get(width, [])
    return [*site["l0"], *extra]


def gs2_sae_ids(release: str) -> tuple[str, ...]:
    """Every SAE id of a Gemma Scope 2 release, in layer, width, bucket order.

    Raises:
        ConfigError: if the release is unknown.
    """
    size, _, site_name = _parse_release(release)
    model, site = _data()["models"][size], _data()["sites"][site_name]
    return tuple(
        f"{release}/layer_{layer}/width_{width}/l0_{bucket}"
        for layer in _layers(model, site)
        for width in model["widths"]["values"][site_name]
        for bucket in _buckets(site_name, site, width)
    )


def resolve_gs2(release: str, tail: str) -> SAERegistryEntry:
    """Resolve ``{release}/{tail}`` to its repo, folder, site and metadata.

    Raises:
        ConfigError: on an unknown release, layer, width or L0 bucket, listing the valid options
            and the closest valid ids.
    """
    size, variant, site_name = _parse_release(release)
    data = _data()
    model, site = data["models"][size], data["sites"][site_name]
    match = _TAIL.match(tail)
    if not match:
        msg = (
            f"cannot parse {release}/{tail!r}; write it as "
            f"'{release}/layer_<L>/width_<W>/l0_<{'|'.join(site['l0'])}>'"
            f"{did_you_mean(f'{release}/{tail}', gs2_sae_ids(release))}"
        )
        raise ConfigError(msg)
    layer, width, bucket = int(match["layer"]), match["width"], match["bucket"]
    layers = _layers(model, site)
    if layer not in layers:
        msg = f"{release} has no layer {layer}; valid layers: {format_layers(layers)}"
        raise ConfigError(msg)
    widths: list[str] = model["widths"]["values"][site_name]
    if width not in widths:
        msg = f"{release} has no width {width!r}; valid widths: {', '.join(widths)}"
        raise ConfigError(msg)
    buckets = _buckets(site_name, site, width)
    if bucket not in buckets:
        msg = (
            f"{release} width {width} has no l0_{bucket}; "
            f"valid: {', '.join('l0_' + b for b in buckets)}"
        )
        raise ConfigError(msg)
    return _entry(release, size, variant, site_name, layer, width, bucket)


def _entry(
    release: str, size: str, variant: str, site_name: str, layer: int, width: str, bucket: str
) -> SAERegistryEntry:
    data = _data()
    model, site = data["models"][size], data["sites"][site_name]
    kind = SiteKind(site["kind"])
    shape = model["shape"]
    base_bucket = _SEED_SUFFIX.sub("", bucket)
    if site["all_layers"]:
        l0 = int(model["l0"]["all"][base_bucket][layer])
        layers_source = shape["source"]
    else:
        index = [int(v) for v in model["subset_layers"]["values"]].index(layer)
        l0 = int(model["l0"]["subset"][base_bucket][index])
        layers_source = model["subset_layers"]["source"]
    neuronpedia_id = None
    np_widths = model["neuronpedia_widths"]
    if site_name == "res" and bucket == "medium" and width in np_widths["values"][variant]:
        np_model = model["model"] if variant == "pt" else f"{model['model']}-it"
        neuronpedia_id = f"{np_model}/{layer}-gemmascope-2-res-{width}"
    sources = {
        "d_model": shape["source"],
        "layers": layers_source,
        "widths": model["widths"]["source"],
        "l0": data["seed_variants"]["source"] if bucket != base_bucket else model["l0"]["source"],
        "layout": data["layout_source"],
    }
    if neuronpedia_id is not None:
        sources["neuronpedia_id"] = np_widths["source"]
    unverified = tuple(fact for fact, source in sources.items() if not _verified(source))
    folder = f"{site['folder']}/layer_{layer}_width_{width}_l0_{bucket}"
    return SAERegistryEntry(
        sae_id=f"{release}/layer_{layer}/width_{width}/l0_{bucket}",
        release=release,
        family="gemma-scope-2",
        repo_id=f"google/gemma-scope-2-{size}-{variant}",
        path_in_repo=f"{folder}/params.safetensors",
        config_path_in_repo=f"{folder}/config.json",
        model=f"{model['model']}-{variant}",
        site=Site(layer=layer, kind=kind),
        d_model=int(shape["d_attn"] if kind is SiteKind.ATTN_OUT else shape["d_model"]),
        width=width,
        d_sae=int(data["widths"][width]),
        l0=l0,
        l0_label=f"l0_{bucket}",
        canonical=False,
        verified=not unverified,
        neuronpedia_id=neuronpedia_id,
        unverified=unverified,
    )


def format_layers(values: list[int]) -> str:
    """``"0-25"`` for a run of more than three layers, else ``"7, 13, 17, 22"``."""
    if values and values == list(range(values[0], values[-1] + 1)) and len(values) > 3:
        return f"{values[0]}-{values[-1]}"
    return ", ".join(str(v) for v in values)
