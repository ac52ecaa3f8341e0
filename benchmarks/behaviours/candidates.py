"""The sweep's candidate feature sets, and the families the nested selection chooses within.

A candidate is a ``(n, d)`` feature matrix a probe is fitted on: raw activations of one site in
one pooling (:data:`~benchmarks.behaviours.features.POOLINGS`), the sites side by side in one
pooling (the ridge penalty, chosen inside each training side, then weighs the layers), or the
SAE's codes in one pooling. Every candidate goes through the same nested grouped CV; a *family*
is a subset the per-fold selection may choose from (:func:`benchmarks.behaviours.probes.select`),
so that "the best raw probe", "the best SAE probe" and "the best of both" are each an honest
held-out figure, chosen on training groups only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from benchmarks.behaviours.features import POOLINGS, SetFeatures, pool, pool_tokens, sae_read
from scope_guard.sites import Site

if TYPE_CHECKING:
    from scope_guard.sae import JumpReLUSAE

__all__ = [
    "FAMILIES",
    "MULTI_SITE_POOLINGS",
    "SAE_PART_POOLINGS",
    "Sweep",
    "build_sweep",
    "joined_name",
    "sae_name",
    "sites_of",
]

MULTI_SITE_POOLINGS = ("mean", "last", "mean+last")
"""Poolings of the all-sites candidates (``mean_max`` of three sites would be 3,840 columns
for no pooling that the single sites lack)."""

SAE_PART_POOLINGS = ("mean", "mean_max")
"""Poolings of the SAE's reconstruction and error (diagnostics, never selected)."""

FAMILIES = ("all", "raw", "raw_at_sae_site", "sae")
"""``all``: every raw and SAE candidate (the headline); ``raw``: raw activations only;
``raw_at_sae_site`` and ``sae``: the like-for-like pair behind the SAE-vs-raw gap (the same
site, the same poolings)."""


class Sweep(NamedTuple):
    """Candidates of one set.

    Attributes:
        features: Name -> ``(n, d)`` features, rows aligned with the set.
        sites: Name -> the raw sites it reads (empty for SAE candidates).
        families: Family (:data:`FAMILIES`) -> candidate names, in sweep order; and
            ``sae_parts``: probes on the SAE's reconstruction and on its error at the SAE's
            site, which locate an SAE-vs-raw gap (no family selects them).
    """

    features: dict[str, np.ndarray]
    sites: dict[str, tuple[Site, ...]]
    families: dict[str, list[str]]


def joined_name(sites: Sequence[Site]) -> str:
    """``resid_post@6+9+12`` for sites of one kind, else the sites joined by ``+``."""
    kinds = {s.kind for s in sites}
    if len(kinds) == 1:
        return f"{sites[0].kind}@" + "+".join(str(s.layer) for s in sites)
    return "+".join(str(s) for s in sites)


def sites_of(name: str) -> list[Site]:
    """The raw sites a raw candidate's name reads (the inverse of the names given here)."""
    sites, kind = [], ""
    for part in name.split("/", 1)[0].split("+"):
        kind, layer = part.split("@") if "@" in part else (kind, part)
        sites.append(Site.parse(f"{kind}@{layer}"))
    return sites


def sae_name(site: Site, pooling: str, part: str = "codes") -> str:
    """The name of the SAE candidate at ``site`` in ``pooling``: its codes, or (``part``) its
    ``reconstruction`` or ``error``."""
    prefix = "sae" if part == "codes" else f"sae-{part}"
    return f"{prefix}:{site}/{pooling}"


def build_sweep(
    features: SetFeatures,
    sites: Sequence[Site],
    sae: JumpReLUSAE | None = None,
    sae_site: Site | None = None,
) -> Sweep:
    """Every candidate of one set, and the families over them.

    Without an SAE the ``sae`` family is empty and ``all`` equals ``raw``.
    """
    feats: dict[str, np.ndarray] = {}
    reads: dict[str, tuple[Site, ...]] = {}
    for site in sites:
        for pooling in POOLINGS:
            name = f"{site}/{pooling}"
            feats[name], reads[name] = pool(features, site, pooling), (site,)
    if len(sites) > 1:
        for pooling in MULTI_SITE_POOLINGS:
            name = f"{joined_name(sites)}/{pooling}"
            feats[name] = np.hstack([feats[f"{s}/{pooling}"] for s in sites])
            reads[name] = tuple(sites)
    raw = list(feats)
    at_site = [n for n in raw if sae_site is not None and reads[n] == (sae_site,)]
    sae_names: list[str] = []
    parts: list[str] = []
    if sae is not None and sae_site is not None:
        reading = sae_read(sae, features.tokens[sae_site])
        for pooling in POOLINGS:
            name = sae_name(sae_site, pooling)
            feats[name], reads[name] = pool_tokens(reading.codes, pooling), ()
            sae_names.append(name)
        for part in ("reconstruction", "error"):
            for pooling in SAE_PART_POOLINGS:
                name = sae_name(sae_site, pooling, part)
                feats[name], reads[name] = pool_tokens(getattr(reading, part), pooling), ()
                parts.append(name)
    families = {
        "all": raw + sae_names,
        "raw": raw,
        "raw_at_sae_site": at_site if sae_names else [],
        "sae": sae_names,
        "sae_parts": parts,
    }
    return Sweep(feats, reads, families)
