"""The stand-in pair: the miniature reader and a miniature SAE fitted to it.

With no weights on the machine, ``scope-guard features --miniature`` (and the demo) still run the
real code end to end: the reader loads a saved tiny Gemma 2, the SAE loads from a real Gemma Scope
``params.npz``. The SAE is not trained, only shaped: decoder directions are random unit vectors,
the encoder is their transpose, and each latent's threshold is set so that it fires on a few
percent of the miniature reader's tokens. Its latents are labeled as stand-ins and mean nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from scope_guard.reader import Reader
from scope_guard.reader.miniature import _corpus, default_cache_root
from scope_guard.sae.jumprelu import JumpReLUSAE, SAEInfo
from scope_guard.sae.writers import save_saelens
from scope_guard.sites import Site, SiteKind

__all__ = ["MINIATURE_SAE_SITE", "MINIATURE_SAE_WIDTH", "build_miniature_sae", "miniature_sae_path"]

logger = logging.getLogger(__name__)

MINIATURE_SAE_SITE = Site(3, SiteKind.RESID_POST)
MINIATURE_SAE_WIDTH = 512
_FIRING_RATE = 0.03


def build_miniature_sae(
    reader: Reader, site: Site = MINIATURE_SAE_SITE, *, seed: int = 0
) -> JumpReLUSAE:
    """Shape a JumpReLU SAE to ``reader``'s activations at ``site`` (deterministic)."""
    generator = torch.Generator().manual_seed(seed)
    sample = [
        (s, t) for s, t in zip(_corpus(48, seed + 7)[::2], _corpus(48, seed + 7)[1::2], strict=True)
    ]
    acts = torch.cat([r.activation(site).float() for r in reader.read_batch(sample)])
    d_model = acts.shape[1]
    W_dec = torch.randn(MINIATURE_SAE_WIDTH, d_model, generator=generator)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    b_dec = acts.mean(dim=0)
    W_enc = W_dec.T.contiguous()
    b_enc = torch.zeros(MINIATURE_SAE_WIDTH)
    pre = acts @ W_enc
    threshold = torch.quantile(pre, 1.0 - _FIRING_RATE, dim=0).clamp_min(1e-3)
    info = SAEInfo(
        d_model=d_model,
        d_sae=MINIATURE_SAE_WIDTH,
        site=site,
        source="miniature (stand-in)",
        model_name="miniature-gemma2",
    )
    return JumpReLUSAE(W_enc, W_dec, b_enc, b_dec, threshold, info=info)


def miniature_sae_path(cache_root: str | os.PathLike[str] | None = None) -> Path:
    """The miniature SAE's folder (SAELens layout, so it records its site), built once."""
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    site = MINIATURE_SAE_SITE
    target = root / "miniature" / "sae"
    folder = target / f"{site.hook_name}-width_{MINIATURE_SAE_WIDTH}"
    if (folder / "cfg.json").is_file():
        return folder
    logger.info("building the miniature stand-in SAE at %s", folder)
    reader = Reader.miniature([site], cache_root=cache_root)
    sae = build_miniature_sae(reader, site)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target))
    try:
        save_saelens(sae, staging)
        try:
            staging.rename(folder)
        except OSError:  # built concurrently by another process; identical content
            if not (folder / "cfg.json").is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder
