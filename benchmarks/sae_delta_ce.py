"""Where a trained SAE's delta-CE comes from: which dimensions, and whether its error is worse
than random error of the same size.

On held-out text (the same split and windows as ``benchmarks/train_sae_gemma3.py``), the next-token
loss of the whole model with, at the site:

- ``sae``: the reconstruction everywhere (the standard delta-CE);
- ``sae_outlier_dims``: the reconstruction in the outlier dimensions only (the rest exact);
- ``sae_other_dims``: the reconstruction in every other dimension (the outlier ones exact);
- ``noise_per_dim``: the exact activation plus Gaussian noise with, per dimension, the SAE error's
  own RMS (the same error budget per dimension, in random directions);
- ``noise_per_token``: the exact activation plus isotropic noise with each token's SAE error norm
  (the same error norm per token, in a random direction).

If ``sae`` costs much more than both noises, the SAE's error is structured in the directions the
model reads (Gurnee 2024 found the same on GPT-2), and a lower delta-CE needs a better dictionary,
not only a smaller FVU. Outlier dimensions: spread above ``--outlier-ratio`` times the median
dimension's, as in training.

Run from the project root after training (about 5 minutes on two cores):

    .venv/bin/python -m benchmarks.sae_delta_ce \\
        --sae ~/.cache/scope_guard/sae/gemma-3-270m-resid_post@9-4096
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from benchmarks.train_sae_gemma3 import build_corpus
from scope_guard.reader import Reader
from scope_guard.sae.loading import load_sae
from scope_guard.sae.training.evaluation import (
    Replacement,
    first_windows,
    load_causal_lm,
    model_folder_of,
    reconstruction_of,
    spliced_losses,
)
from scope_guard.sae.training.stream import read_windows
from scope_guard.sites import Site

logger = logging.getLogger("benchmarks.sae_delta_ce")


def _error_profile(sae: torch.nn.Module, acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per dimension: the spread of the activations and the RMS of the SAE's error."""
    x = acts.float()
    err = sae(x).reconstruction - x
    spread = (x - x.mean(dim=0)).pow(2).mean(dim=0).sqrt()
    return spread, err.pow(2).mean(dim=0).sqrt()


def _replacements(
    sae: torch.nn.Module, outlier: torch.Tensor, err_rms: torch.Tensor, seed: int
) -> dict[str, Replacement]:
    recon = reconstruction_of(sae)  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(seed)

    def outlier_dims(x: torch.Tensor) -> torch.Tensor:
        return torch.where(outlier.to(x.device), recon(x), x)

    def other_dims(x: torch.Tensor) -> torch.Tensor:
        return torch.where(outlier.to(x.device), x, recon(x))

    def noise_per_dim(x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=gen) * err_rms
        return (x.float() + noise.to(x.device)).to(x.dtype)

    def noise_per_token(x: torch.Tensor) -> torch.Tensor:
        norm = (recon(x).float() - x.float()).norm(dim=-1, keepdim=True)
        direction = torch.randn(x.shape, generator=gen).to(x.device)
        direction = direction / direction.norm(dim=-1, keepdim=True)
        return (x.float() + norm * direction).to(x.dtype)

    return {
        "sae": recon,
        "sae_outlier_dims": outlier_dims,
        "sae_other_dims": other_dims,
        "noise_per_dim": noise_per_dim,
        "noise_per_token": noise_per_token,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gemma-3-270m")
    p.add_argument("--site", default="resid_post@9")
    p.add_argument("--sae", type=Path, required=True)
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--ce-tokens", type=int, default=4096)
    p.add_argument("--context-size", type=int, default=256)
    p.add_argument("--outlier-ratio", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--results", type=Path, default=Path("benchmarks/results/sae_delta_ce_diagnosis.json")
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    started = time.monotonic()
    site = Site.parse(args.site)
    reader = Reader.from_pretrained(args.model, [site], dtype="bfloat16", batch_size=8)
    sae = load_sae(args.sae.expanduser(), expected_d_model=reader.site_dim(site))
    _, held = build_corpus(args.data).split_heldout(0.03)
    windows = first_windows(reader.tokenizer, held, args.context_size, args.ce_tokens, seed=0)
    acts = torch.cat(
        [
            a
            for i in range(0, len(windows), 8)
            for a in read_windows(reader, site, windows[i : i + 8])
        ]
    ).float()
    spread, err_rms = _error_profile(sae, acts)
    outlier = spread > args.outlier_ratio * spread.median()
    var = spread.pow(2)
    fvu_outlier = float(err_rms[outlier].pow(2).sum() / var[outlier].sum())
    fvu_other = float(err_rms[~outlier].pow(2).sum() / var[~outlier].sum())
    lm = load_causal_lm(model_folder_of(reader), dtype=reader.dtype, device=reader.device)
    losses, n = spliced_losses(
        lm, reader.tokenizer, site, windows, _replacements(sae, outlier, err_rms, args.seed)
    )
    clean = losses.pop("clean")
    payload = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.sae_delta_ce " + " ".join(sys.argv[1:]),
        "sae": str(args.sae),
        "site": str(site),
        "n_predictions": n,
        "outlier_dims": [int(i) for i in torch.nonzero(outlier).flatten()],
        "outlier_variance_share": float(var[outlier].sum() / var.sum()),
        "fvu": float(err_rms.pow(2).sum() / var.sum()),
        "fvu_outlier_dims": fvu_outlier,
        "fvu_other_dims": fvu_other,
        "ce_clean": clean,
        "delta_ce": {name: loss - clean for name, loss in losses.items()},
        "wall_s": time.monotonic() - started,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    logger.info("%s", json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
