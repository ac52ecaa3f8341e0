"""One reader pass per example through ``calibrate``'s own extraction, and the poolings built on it.

The pass is :func:`calibration.extract.extract_features` with raw ``mean_max`` pooling and
per-token activations at every site of the reader, so:

- a later ``calibrate`` call finds the pooled ``mean_max`` activations in the same cache
  namespace (and its token-probe blocks find the per-token ones): nothing is read twice;
- every other pooling this benchmark compares (the last response token, mean and last side by
  side, the SAE codes in any pooling) is computed from the cached per-token activations, so an
  SAE trained later is scored without reading again.

Per-token activations are float32 (Gemma 3's residual stream has components beyond float16's
range), about 2.5 KB per response token and site at ``d_model`` 640.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from calibration.data import LabeledDataset, prompt_of
from calibration.extract import extract_features
from calibration.feature_cache import text_key
from scope_guard.features import Pooling
from scope_guard.sites import Site

if TYPE_CHECKING:
    from scope_guard.reader import Reader
    from scope_guard.sae import JumpReLUSAE

__all__ = [
    "POOLINGS",
    "SAEReading",
    "SetFeatures",
    "example_keys",
    "extract",
    "load_features",
    "pool",
    "pool_tokens",
    "sae_read",
]

POOLINGS = ("mean", "last", "mean_max", "mean+last")
"""Poolings compared, of raw activations and of SAE codes alike: ``mean_max`` is what
``calibrate`` uses; ``last`` is the response's last token (under causal attention the only one
that has read the whole response); ``mean+last`` puts the two side by side."""


class SetFeatures(NamedTuple):
    """The cached reader features of one dataset, rows aligned with it.

    Attributes:
        mean_max: Per site, ``(n, 2 * d)`` pooled activations (mean block, then max).
        tokens: Per site, each example's ``(n_tokens_i, d)`` response activations (float32).
    """

    mean_max: dict[Site, np.ndarray]
    tokens: dict[Site, list[np.ndarray]]


def example_keys(dataset: LabeledDataset) -> list[str]:
    """The cache key of each example (as :func:`calibration.extract.extract_features` has it)."""
    return [text_key(prompt_of(ex), ex.response) for ex in dataset]


def _extract_one(
    reader: Reader,
    dataset: LabeledDataset,
    cache_dir: str | os.PathLike[str],
    batch_size: int,
    chunk_size: int,
    progress: bool,
) -> tuple[SetFeatures, int]:
    sites = list(reader.sites)
    feats = extract_features(
        dataset,
        reader=reader,
        raw_sites=sites,
        pooling=Pooling.MEAN_MAX,
        token_sites=sites,
        cache_dir=cache_dir,
        batch_size=batch_size,
        chunk_size=chunk_size,
        progress=progress,
    )
    return SetFeatures(feats.raw, feats.tokens), feats.n_computed


def extract(
    reader: Reader,
    datasets: Iterable[LabeledDataset],
    *,
    cache_dir: str | os.PathLike[str],
    batch_size: int = 8,
    chunk_size: int = 64,
    progress: bool = True,
    part: tuple[int, int] = (0, 1),
) -> int:
    """Read every example not yet cached, at every site of ``reader``; returns how many.

    ``part=(i, k)`` reads only the i-th of k disjoint shares of the keys, so that k processes
    (one thread each) can share the work: the cache takes concurrent writers. An example in
    several datasets is read once.
    """
    seen: set[str] = set()
    n_read = 0
    for dataset in datasets:
        keys = example_keys(dataset)
        rows = [i for i, k in enumerate(keys) if int(k, 16) % part[1] == part[0] and k not in seen]
        seen.update(keys[i] for i in rows)
        if rows:
            share = dataset.subset(rows)
            n_read += _extract_one(reader, share, cache_dir, batch_size, chunk_size, progress)[1]
    return n_read


def load_features(
    reader: Reader, dataset: LabeledDataset, cache_dir: str | os.PathLike[str]
) -> SetFeatures:
    """The reader features of ``dataset`` from the cache (an example not cached is read)."""
    return _extract_one(reader, dataset, cache_dir, 8, 64, progress=False)[0]


def pool_tokens(tokens: Sequence[np.ndarray], pooling: str) -> np.ndarray:
    """``(n, d * parts)`` pooled rows of per-token ``(n_tokens_i, d)`` arrays.

    Pooling is one of :data:`POOLINGS` (or ``"max"``); an empty response pools to zeros.

    Raises:
        ValueError: An unknown pooling.
    """
    parts = {"mean_max": ("mean", "max"), "mean+last": ("mean", "last")}.get(pooling, (pooling,))
    if any(p not in ("mean", "max", "last") for p in parts):
        msg = f"unknown pooling {pooling!r}; valid: {', '.join((*POOLINGS, 'max'))}"
        raise ValueError(msg)
    return np.stack([np.concatenate([_pool_one(acts, p) for p in parts]) for acts in tokens])


def _pool_one(acts: np.ndarray, part: str) -> np.ndarray:
    a = np.asarray(acts, dtype=np.float64)
    if a.shape[0] == 0:
        return np.zeros(a.shape[1])
    if part == "mean":
        return a.mean(axis=0)
    return a.max(axis=0) if part == "max" else a[-1]


def pool(features: SetFeatures, site: Site, pooling: str) -> np.ndarray:
    """``(n, d * parts)`` pooled raw activations of one site.

    The mean and max come from the pooled cache, which ``calibrate`` reads (so ``mean`` here
    is ``calibrate``'s to the bit); the last token from the per-token activations.
    """
    X = features.mean_max[site].astype(np.float64)
    d = X.shape[1] // 2
    if pooling == "mean":
        return X[:, :d]
    if pooling == "max":
        return X[:, d:]
    if pooling == "mean_max":
        return X
    if pooling == "mean+last":
        return np.hstack([X[:, :d], pool_tokens(features.tokens[site], "last")])
    return pool_tokens(features.tokens[site], pooling)


class SAEReading(NamedTuple):
    """One set's per-token SAE outputs, per example.

    Attributes:
        codes: ``(n_tokens_i, n_latents)`` codes.
        reconstruction: ``(n_tokens_i, d_model)`` reconstructions ``codes @ W_dec + b_dec``.
        error: ``(n_tokens_i, d_model)`` what the SAE leaves out: activation - reconstruction.
    """

    codes: list[np.ndarray]
    reconstruction: list[np.ndarray]
    error: list[np.ndarray]


def sae_read(sae: JumpReLUSAE, tokens: Sequence[np.ndarray]) -> SAEReading:
    """Each example's per-token activations through the SAE (encoded once)."""
    import torch

    codes, recon, error = [], [], []
    with torch.inference_mode():
        for acts in tokens:
            x = torch.from_numpy(np.ascontiguousarray(acts, dtype=np.float32))
            if x.shape[0] == 0:
                f, x_hat = torch.zeros(0, sae.n_latents), torch.zeros_like(x)
            else:
                f = sae.encode(x).float()
                x_hat = sae.decode(f.to(sae.dtype)).float()
            codes.append(f.numpy())
            recon.append(x_hat.numpy())
            error.append((x - x_hat).numpy())
    return SAEReading(codes, recon, error)
