"""One reader pass per example, cached: pooled activations per site in three poolings.

``calibrate`` pools a response's activations as mean and max (``mean_max``); this benchmark also
wants the response's last token, and per-token activations at the SAE's site, so that an SAE
trained later can be scored without reading again. One pass writes all of them to the project's
:class:`~calibration.feature_cache.FeatureCache`:

- ``mean_max`` per site, in the very namespace :func:`calibration.extract.extract_features`
  uses, so a later ``calibrate`` call finds it cached (if that namespace ever changes,
  ``calibrate`` just reads again: slower, never wrong);
- ``last`` per site (the activation of the response's last token), in a namespace of its own;
- the response's per-token activations at ``token_site`` (float32: Gemma 3's residual stream
  has components beyond float16's range, 65,504, which float16 would store as inf), in a
  namespace of its own.

Examples are keyed like ``extract_features`` keys them (the prompt and the response), so the
same text in two sets is read once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from calibration.data import LabeledDataset, prompt_of
from calibration.extract import _raw_namespace
from calibration.feature_cache import FeatureCache, text_key
from scope_guard.features import Pooling, pool_codes
from scope_guard.sites import Site

if TYPE_CHECKING:
    from scope_guard.reader import Reader

__all__ = ["POOLINGS", "cached_features", "example_keys", "extract", "token_activations"]

POOLINGS = ("mean", "max", "mean_max", "last")
"""Poolings the benchmark compares; mean and max are the two halves of ``mean_max``."""


def example_keys(dataset: LabeledDataset) -> list[str]:
    """The cache key of each example (as :func:`calibration.extract.extract_features` has it)."""
    return [text_key(prompt_of(ex), ex.response) for ex in dataset]


def _caches(reader: Reader, sites: Sequence[Site], token_site: Site | None, root: Any) -> dict:
    caches: dict[tuple[str, Site], FeatureCache] = {}
    for site in sites:
        caches[("mean_max", site)] = FeatureCache(
            root, _raw_namespace(reader, site, Pooling.MEAN_MAX)
        )
        caches[("last", site)] = FeatureCache(
            root, {**_raw_namespace(reader, site, Pooling.MEAN), "pooling": "last"}
        )
    if token_site is not None:
        namespace = {**_raw_namespace(reader, token_site, Pooling.MEAN), "pooling": "tokens-f32"}
        caches[("tokens", token_site)] = FeatureCache(root, namespace)
    return caches


def extract(
    reader: Reader,
    datasets: Iterable[LabeledDataset],
    *,
    cache_dir: str | os.PathLike[str],
    token_site: Site | None = None,
    batch_size: int = 8,
    chunk_size: int = 64,
    progress: bool = True,
    part: tuple[int, int] = (0, 1),
) -> int:
    """Read every example not yet cached, at every site of ``reader``; returns how many.

    Examples are read shortest first, so that a batch holds exchanges of similar length.
    ``part=(i, k)`` reads only the i-th of k disjoint shares of the keys, so that k processes
    (one thread each) can share the work: the cache takes concurrent writers.
    """
    sites = list(reader.sites)
    caches = _caches(reader, sites, token_site, cache_dir)
    todo: dict[str, tuple[str, str]] = {}
    for dataset in datasets:
        for key, ex in zip(example_keys(dataset), dataset, strict=True):
            mine = int(key, 16) % part[1] == part[0]
            if mine and key not in todo and any(key not in c for c in caches.values()):
                todo[key] = (prompt_of(ex), ex.response)
    order = sorted(todo, key=lambda k: len(todo[k][0]) + len(todo[k][1]))
    bar = tqdm(total=len(order), desc="reader", unit="ex", disable=not progress)
    for start in range(0, len(order), chunk_size):
        chunk = order[start : start + chunk_size]
        readings = reader.read_batch([todo[k] for k in chunk], batch_size=batch_size)
        rows: dict[tuple[str, Site], dict[str, dict[str, np.ndarray]]] = {c: {} for c in caches}
        for key, reading in zip(chunk, readings, strict=True):
            for site in sites:
                acts = reading.activation(site)
                pooled = pool_codes(acts, Pooling.MEAN_MAX).cpu().numpy().astype(np.float32)
                rows[("mean_max", site)][key] = {"raw": pooled}
                last = acts[-1] if acts.shape[0] else acts.new_zeros(acts.shape[1])
                rows[("last", site)][key] = {"raw": last.float().cpu().numpy()}
            if token_site is not None:
                tokens = reading.activation(token_site).float().cpu().numpy()
                rows[("tokens", token_site)][key] = {"acts": tokens}
        for name, cache in caches.items():
            cache.put(rows[name])
        bar.update(len(chunk))
    bar.close()
    return len(order)


def cached_features(
    reader: Reader,
    dataset: LabeledDataset,
    site: Site,
    pooling: str,
    cache_dir: str | os.PathLike[str],
) -> np.ndarray:
    """The ``(n, d)`` (``mean_max``: ``(n, 2d)``) pooled activations of ``dataset`` at ``site``.

    Raises:
        ArtifactError: an example is not cached (run :func:`extract` first).
    """
    keys = example_keys(dataset)
    kind = "last" if pooling == "last" else "mean_max"
    cache = _caches(reader, [site], None, cache_dir)[(kind, site)]
    data = cache.get(keys)
    X = np.stack([data[k]["raw"] for k in keys]).astype(np.float64)
    d = reader.site_dim(site)
    if pooling == "mean":
        return X[:, :d]
    if pooling == "max":
        return X[:, d:]
    return X


def token_activations(
    reader: Reader, dataset: LabeledDataset, site: Site, cache_dir: str | os.PathLike[str]
) -> list[np.ndarray]:
    """Each example's per-token response activations at ``site``, ``(n_tokens, d)`` float32."""
    keys = example_keys(dataset)
    cache = _caches(reader, [], site, cache_dir)[("tokens", site)]
    data = cache.get(keys)
    return [data[k]["acts"].astype(np.float32) for k in keys]
