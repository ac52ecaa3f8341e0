"""Opening the reader, SAEs and grounding detector that calibrate / evaluate ask for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from scope_guard.cli.console import note
from scope_guard.errors import ConfigError
from scope_guard.sites import Site

if TYPE_CHECKING:
    from scope_guard.reader import Reader
    from scope_guard.sae import JumpReLUSAE

__all__ = ["add_reader_arguments", "open_bundle_reader", "open_reader", "open_saes"]

MINIATURE = "miniature"


def add_reader_arguments(p: Any) -> None:
    p.add_argument(
        "--reader",
        help="reader model: a local folder, a hub id (google/gemma-2-2b), or 'miniature' for "
        "the built-in stand-in (random weights)",
    )
    p.add_argument("--dtype", default="auto", help="reader dtype: auto, bfloat16, float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-tokens", type=int, default=2048, help="longest exchange read")
    p.add_argument("--batch-size", type=int, default=8, help="reader batch size")


def open_saes(specs: Sequence[str], *, reader_source: str | None) -> dict[Site, JumpReLUSAE]:
    """Load ``[SITE=]SOURCE`` SAE specs; the site defaults to what the SAE records."""
    from scope_guard.sae import load_sae

    if not specs and reader_source == MINIATURE:
        from scope_guard.stand_in import miniature_sae_path

        specs = [str(miniature_sae_path())]
    saes: dict[Site, JumpReLUSAE] = {}
    for spec in specs:
        site_text, sep, source = spec.partition("=")
        site: Site | None = None
        if sep:
            try:
                site = Site.parse(site_text)
            except ConfigError:  # an "=" inside the path itself, no site given
                source = spec
        else:
            source = spec
        sae = load_sae(source)
        site = site or sae.info.site
        if site is None:
            msg = f"the SAE {source} does not record its site: write --sae resid_post@20={source}"
            raise ConfigError(msg)
        if site in saes:
            msg = f"two SAEs for site {site}"
            raise ConfigError(msg)
        saes[site] = sae
    return saes


def open_reader(
    source: str,
    sites: Sequence[Site],
    *,
    dtype: str = "auto",
    device: str = "cpu",
    max_tokens: int = 2048,
    batch_size: int = 8,
    lookback: bool = False,
    surprisal: bool = False,
) -> Reader:
    from scope_guard.reader import Reader

    if not sites:
        msg = "the reader needs at least one site: give --sae"
        raise ConfigError(msg)
    if source == MINIATURE:
        note("reader: the miniature stand-in (random weights): SAE/raw probes mean nothing")
        return Reader.miniature(
            sites,
            max_tokens=max_tokens,
            batch_size=batch_size,
            lookback=lookback,
            surprisal=surprisal,
        )
    return Reader.from_pretrained(
        source,
        sites,
        dtype=dtype,
        device=device,
        max_tokens=max_tokens,
        batch_size=batch_size,
        lookback=lookback,
        surprisal=surprisal,
    )


def open_bundle_reader(bundle: Any, args: Any) -> Reader | None:
    """The reader a bundle's detectors read with (``None`` when none reads one): ``--reader``,
    else the bundle's recorded source, loaded with the CLI's dtype, device and batch size."""
    from scope_guard.guard import bundle_reader_sites

    sites = bundle_reader_sites(bundle)
    if not sites:
        return None
    spec = bundle.reader
    source = args.reader or (spec.source if spec else None)
    if not source:
        msg = "the bundle does not say where its reader is: pass --reader"
        raise ConfigError(msg)
    return open_reader(
        source,
        list(sites),
        dtype=args.dtype,
        device=args.device,
        max_tokens=(spec.max_tokens if spec and spec.max_tokens else 2048),
        batch_size=args.batch_size,
        lookback=bundle.needs_lookback,
        surprisal=bundle.needs_surprisal,
    )
