"""Feature extraction over a labeled dataset: batched, cached on disk, resumable.

Reader features (pooled SAE codes per site, pooled raw activations per site) and grounding
features are cached in separate namespaces (:mod:`calibration.feature_cache`), so changing the
SAE does not recompute the grounding features and vice versa. Only missing examples are computed,
in batches; each finished chunk is written before the next starts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from calibration.data import LabeledDataset, prompt_of
from calibration.feature_cache import FeatureCache, text_key
from detectors.bundle_manifest import sae_fingerprint
from detectors.feature_blocks import BlockKind, FeatureBlock, surprisal_block_rows
from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.features import Pooling, encode_reading, pool_codes
from scope_guard.sites import Site, SiteKind

if TYPE_CHECKING:
    from detectors.grounding import GroundingDetector
    from scope_guard.reader import Reader
    from scope_guard.sae import JumpReLUSAE

__all__ = [
    "ChunkItem",
    "ChunkRows",
    "ChunkRunner",
    "ExtractedFeatures",
    "ReaderJob",
    "extract_features",
    "reader_chunk_rows",
]

logger = logging.getLogger(__name__)


@dataclass
class ExtractedFeatures:
    """Features of every example of a dataset, row-aligned with it.

    Attributes:
        n: Number of rows.
        pooling: Pooling used for SAE and raw features.
        sae: Per site, pooled codes ``(n, n_latents * parts)`` (CSR); mean block, then max.
        sae_latents: Per site, the SAE latent id of each code column of one block.
        raw: Per site, pooled raw activations ``(n, d * parts)``.
        grounding: Grounding features ``(n, n_grounding)`` or ``None``.
        grounding_names: Their names, in order.
        grounding_version: The grounding feature-set version.
        lookback: Mean lookback ratio over the response, ``(n, layers * heads)`` (layer-major),
            when the reader captured them; ``None`` otherwise.
        lookback_shape: ``(layers, heads)`` of :attr:`lookback`.
        token_lookback: Each example's per-token lookback ratios ``(n_tokens_i, layers * heads)``.
        tokens: Per site, each example's per-token raw activations ``(n_tokens_i, d)``
            (float32), for token-level probes.
        token_offsets: Each example's ``(n_tokens_i, 2)`` character offsets of its response
            tokens (with :attr:`tokens`), to map labeled spans to tokens.
        token_aggregates: Per site, ``(n, len(AGGREGATES))`` cross-fitted aggregates of a
            token probe, set by calibration (a ``tokens`` block's columns).
        token_surprisal: Each example's ``(n_tokens_i, 2)`` float32 per-token surprisal and
            entropy (nats), when the reader computed them; a ``surprisal`` block pools them.
        n_computed: Examples computed in this call (the rest came from the cache).
    """

    n: int
    pooling: Pooling
    sae: dict[Site, sp.csr_matrix] = field(default_factory=dict)
    sae_latents: dict[Site, np.ndarray] = field(default_factory=dict)
    raw: dict[Site, np.ndarray] = field(default_factory=dict)
    grounding: np.ndarray | None = None
    grounding_names: tuple[str, ...] = ()
    grounding_version: int | None = None
    lookback: np.ndarray | None = None
    lookback_shape: tuple[int, int] | None = None
    token_lookback: list[np.ndarray] | None = None
    tokens: dict[Site, list[np.ndarray]] = field(default_factory=dict)
    token_offsets: list[np.ndarray] | None = None
    token_aggregates: dict[Site, np.ndarray] = field(default_factory=dict)
    token_surprisal: list[np.ndarray] | None = None
    n_computed: int = 0

    def matrix(self, blocks: Sequence[FeatureBlock]) -> Any:
        """The design matrix for a feature layout (CSR when it has SAE blocks, else dense)."""
        parts: list[Any] = []
        for block in blocks:
            if block.kind is BlockKind.GROUNDING:
                if self.grounding is None or list(self.grounding_names) != block.names:
                    msg = "the extracted grounding features do not match the layout"
                    raise ConfigError(msg)
                parts.append(self.grounding)
                continue
            if block.kind is BlockKind.SURPRISAL:
                parts.append(self.surprisal_matrix(block))
                continue
            site = block.parsed_site
            if block.kind is BlockKind.LOOKBACK:
                if self.lookback is None or self.lookback_shape is None:
                    msg = "no lookback ratios extracted (extract with lookback=True)"
                    raise ConfigError(msg)
                if self.lookback_shape[1] != block.heads or self.lookback_shape[0] <= site.layer:
                    msg = f"the extracted lookback ratios {self.lookback_shape} do not fit {site}"
                    raise ConfigError(msg)
                parts.append(self.lookback[:, : block.width])  # layer-major: layers 0..L first
                continue
            if block.kind is BlockKind.TOKENS:
                if site not in self.token_aggregates:
                    msg = f"no token-probe aggregates at {site} (calibrate fits them)"
                    raise ConfigError(msg)
                parts.append(self.token_aggregates[site])
                continue
            if block.kind is BlockKind.RAW:
                if site not in self.raw:
                    msg = f"no raw activations extracted at {site}"
                    raise ConfigError(msg)
                parts.append(self.raw[site])
                continue
            if site not in self.sae:
                msg = f"no SAE features extracted at {site}"
                raise ConfigError(msg)
            position = {int(v): i for i, v in enumerate(self.sae_latents[site])}
            try:
                cols = np.array([position[i] for i in block.latent_ids], dtype=np.int64)
            except KeyError as exc:
                msg = f"latent {exc.args[0]} at {site} was not extracted"
                raise ConfigError(msg) from None
            width = len(position)
            all_cols = np.concatenate([cols + k * width for k in range(len(block.pooling.parts))])
            parts.append(self.sae[site][:, all_cols])
        if any(sp.issparse(p) for p in parts):
            return sp.hstack([sp.csr_matrix(p) for p in parts], format="csr")
        return np.hstack(parts) if parts else np.zeros((self.n, 0))

    def surprisal_matrix(self, block: FeatureBlock) -> np.ndarray:
        """A ``surprisal`` block's ``(n, width)`` columns, pooled from the per-token values."""
        if self.token_surprisal is None:
            msg = "no surprisal extracted (extract with surprisal=True)"
            raise ConfigError(msg)
        rows = [
            surprisal_block_rows(block, t[:, 0], t[:, 1], per_token_rows=False)
            for t in self.token_surprisal
        ]
        return np.vstack(rows) if rows else np.zeros((0, block.width))


def _reader_namespace(reader: Reader, site: Site) -> dict[str, Any]:
    """Everything about the reader that changes a site's activations."""
    template = reader.encoder.rendering
    return {
        "reader": reader.fingerprint_upto(site.layer),
        "tokenizer": reader.tokenizer_fingerprint,
        "dtype": reader.info.dtype,
        "max_tokens": reader.max_tokens,
        "chat_template": text_key(template) if template else None,
        "site": str(site),
    }


def _sae_namespace(
    reader: Reader, site: Site, sae: JumpReLUSAE, pooling: Pooling
) -> dict[str, Any]:
    return {
        "kind": "sae",
        **_reader_namespace(reader, site),
        "sae": sae_fingerprint(sae),
        "pooling": str(pooling),
    }


def _raw_namespace(reader: Reader, site: Site, pooling: Pooling) -> dict[str, Any]:
    return {"kind": "raw", **_reader_namespace(reader, site), "pooling": str(pooling)}


def _stream_namespace(reader: Reader, kind: str, site: Site) -> dict[str, Any]:
    # "lookback" streams use the deepest site's layer: ratios of layers 0..L depend on those.
    namespace = {"kind": kind, **_reader_namespace(reader, site)}
    if kind == "surprisal":  # every layer, the final norm, the LM head and its soft-cap
        namespace["reader"] = reader.surprisal_fingerprint
    return namespace


class _MemoryCache(dict[str, dict[str, np.ndarray]]):
    """Stand-in for :class:`FeatureCache` when no cache folder is given."""

    def missing(self, keys: Sequence[str]) -> list[str]:
        return [k for k in dict.fromkeys(keys) if k not in self]

    def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
        return {k: self[k] for k in keys}

    def put(self, rows: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        self.update({k: dict(v) for k, v in rows.items()})


class ChunkItem(NamedTuple):
    """One example to read: its cache key and the ``(prompt, response)`` the reader reads."""

    key: str
    prompt: str
    response: str


ChunkRows = dict[tuple[str, Site], dict[str, dict[str, np.ndarray]]]
"""Per cache stream ``(kind, site)``, per example key, the arrays that stream stores for it.
Kinds: ``"sae"`` and ``"raw"`` (pooled, per site), ``"tokens"`` (per-token activations and
offsets, per site), ``"lookback"`` (one stream; its site names the deepest layer read) and
``"surprisal"`` (one stream of per-token surprisal and entropy; its site names the last layer)."""


@dataclass(frozen=True)
class ReaderJob:
    """What the reader features of a chunk are computed with (see :func:`reader_chunk_rows`).

    Attributes:
        reader: The reader.
        saes: Per site, the SAE to encode with.
        raws: Sites whose pooled raw activations are kept.
        pooling: Pooling of codes and activations.
        batch_size: Reader batch size.
        token_sites: Sites whose per-token activations are kept (float32).
        lookback: Keep the lookback ratios (the reader must capture them).
        surprisal: Keep each token's surprisal and entropy (the reader must compute them).
    """

    reader: Reader
    saes: Mapping[Site, JumpReLUSAE]
    raws: Sequence[Site]
    pooling: Pooling
    batch_size: int
    token_sites: Sequence[Site] = ()
    lookback: bool = False
    surprisal: bool = False

    @property
    def lookback_site(self) -> Site:
        """The stream key of the lookback ratios: the reader's deepest site."""
        return max(self.reader.sites, key=lambda s: s.layer)

    @property
    def surprisal_site(self) -> Site:
        """The stream key of the surprisal: the model's last layer (all of them are read)."""
        return Site(self.reader.n_layers - 1, SiteKind.RESID_POST)


class ChunkRunner(Protocol):
    """Computes the reader features of chunks somewhere else (e.g. a Ray actor pool).

    It must call :func:`reader_chunk_rows` on each chunk as given (same examples, same
    order), so its features equal the local loop's; it yields ``(chunk index, rows)`` as each
    chunk finishes, in any order, and every chunk exactly once.
    """

    def __call__(
        self, job: ReaderJob, chunks: Sequence[Sequence[ChunkItem]]
    ) -> Iterator[tuple[int, ChunkRows]]: ...


def reader_chunk_rows(job: ReaderJob, chunk: Sequence[ChunkItem]) -> ChunkRows:
    """The reader features of one chunk of examples: one ``read_batch`` call, then per example
    the pooled SAE codes and pooled raw activations of every site, as the cache stores them."""
    readings = job.reader.read_batch(
        [(item.prompt, item.response) for item in chunk], batch_size=job.batch_size
    )
    rows: ChunkRows = {("sae", s): {} for s in job.saes}
    rows.update({("raw", s): {} for s in job.raws})
    rows.update({("tokens", s): {} for s in job.token_sites})
    if job.lookback:
        rows[("lookback", job.lookback_site)] = {}
    if job.surprisal:
        rows[("surprisal", job.surprisal_site)] = {}
    for item, reading in zip(chunk, readings, strict=True):
        offsets = np.asarray(reading.offsets, dtype=np.int32).reshape(-1, 2)
        for site in job.token_sites:
            # float32: Gemma's residual stream has outlier dimensions past float16's range.
            acts = reading.activation(site).float().cpu().numpy()
            rows[("tokens", site)][item.key] = {"acts": acts, "offsets": offsets}
        if job.lookback:
            ratios = reading.lookback_ratios()
            flat = ratios.reshape(ratios.shape[0], -1).numpy().astype(np.float32)
            mean = flat.mean(axis=0) if flat.shape[0] else np.zeros(flat.shape[1], np.float32)
            rows[("lookback", job.lookback_site)][item.key] = {"mean": mean, "tok": flat}
        if job.surprisal:
            values = reading.token_surprisal()
            pairs = np.stack([values.surprisal.numpy(), values.entropy.numpy()], axis=1)
            rows[("surprisal", job.surprisal_site)][item.key] = {"tok": pairs.astype(np.float32)}
        feats = encode_reading(reading, job.saes, job.pooling) if job.saes else None
        for site in job.saes:
            pooled = feats[site].pooled if feats is not None else None
            if pooled is not None:
                rows[("sae", site)][item.key] = {"idx": pooled.indices, "val": pooled.values}
        for site in job.raws:
            vec = pool_codes(reading.activation(site), job.pooling).cpu().numpy()
            rows[("raw", site)][item.key] = {"raw": vec.astype(np.float32)}
    return rows


def _open(cache_dir: str | os.PathLike[str] | None, namespace: dict[str, Any]) -> Any:
    return FeatureCache(cache_dir, namespace) if cache_dir is not None else _MemoryCache()


def _get(cache: Any, keys: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    return cache.get_many(keys) if isinstance(cache, _MemoryCache) else cache.get(keys)


def extract_features(
    dataset: LabeledDataset,
    *,
    reader: Reader | None = None,
    saes: Mapping[Site, JumpReLUSAE] | Mapping[str, JumpReLUSAE] | None = None,
    raw_sites: Sequence[Site | str] | None = None,
    pooling: Pooling | str = Pooling.MEAN_MAX,
    grounding: GroundingDetector | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 8,
    chunk_size: int = 64,
    progress: bool = True,
    runner: ChunkRunner | None = None,
    token_sites: Sequence[Site | str] = (),
    lookback: bool = False,
    surprisal: bool = False,
) -> ExtractedFeatures:
    """Extract features for every example of ``dataset``.

    Args:
        dataset: Examples; the reader reads ``(prompt_of(example), example.response)``.
        reader: Needed for SAE and raw features.
        saes: Per site, the SAE to encode with (full or narrowed).
        raw_sites: Sites whose pooled raw activations to keep (default: the SAE sites).
        pooling: Pooling of codes and activations.
        grounding: A grounding detector, for grounding features.
        cache_dir: Feature cache folder; ``None`` computes everything in memory.
        batch_size: Reader batch size.
        chunk_size: Examples computed between two cache writes (the resume granularity).
        progress: Show a progress bar on stderr.
        runner: Computes the reader features of the missing chunks elsewhere (e.g.
            :class:`calibration.ray_extract.RayRunner`); ``None`` reads them in this process.
        token_sites: Sites whose per-token activations to keep, for token-level probes
            (``(n_tokens, d)`` float32 per example: 2.5 KB per token at d = 640).
        lookback: Keep the lookback ratios (needs a reader made with ``lookback=True``).
        surprisal: Keep each response token's surprisal and entropy (needs a reader made with
            ``surprisal=True``; 8 bytes per token), for ``surprisal`` blocks.
    """
    mode = Pooling.parse(pooling)
    sae_map = {Site.parse(k): v for k, v in (saes or {}).items()}
    raws = [Site.parse(s) for s in (raw_sites if raw_sites is not None else list(sae_map))]
    tokens = sorted({Site.parse(s) for s in token_sites})
    needs_reader = bool(sae_map or raws or tokens or lookback or surprisal)
    if needs_reader and reader is None:
        msg = "SAE, raw, per-token, lookback or surprisal features need a reader"
        raise ConfigError(msg)
    if lookback and reader is not None and not reader.lookback:
        msg = "lookback features need a reader made with lookback=True"
        raise ConfigError(msg)
    if surprisal and reader is not None and not reader.surprisal:
        msg = "surprisal features need a reader made with surprisal=True"
        raise ConfigError(msg)
    out = ExtractedFeatures(n=len(dataset), pooling=mode)
    if reader is not None and needs_reader:
        job = ReaderJob(reader, sae_map, raws, mode, batch_size, tokens, lookback, surprisal)
        out.n_computed = _extract_reader(dataset, job, cache_dir, chunk_size, progress, runner, out)
    if grounding is not None:
        out.n_computed += _extract_grounding(
            dataset, grounding, cache_dir, chunk_size, progress, out
        )
    return out


def _extract_reader(
    dataset: LabeledDataset,
    job: ReaderJob,
    cache_dir: str | os.PathLike[str] | None,
    chunk_size: int,
    progress: bool,
    runner: ChunkRunner | None,
    out: ExtractedFeatures,
) -> int:
    reader, saes, raws, pooling = job.reader, job.saes, job.raws, job.pooling
    missing_sites = (set(saes) | set(raws) | set(job.token_sites)) - set(reader.sites)
    if missing_sites:
        msg = f"the reader does not capture {sorted(map(str, missing_sites))}"
        raise ConfigError(msg)
    caches = {
        ("sae", s): _open(cache_dir, _sae_namespace(reader, s, sae, pooling))
        for s, sae in saes.items()
    }
    caches.update({("raw", s): _open(cache_dir, _raw_namespace(reader, s, pooling)) for s in raws})
    for s in job.token_sites:
        caches[("tokens", s)] = _open(cache_dir, _stream_namespace(reader, "tokens", s))
    if job.lookback:
        site = job.lookback_site
        caches[("lookback", site)] = _open(cache_dir, _stream_namespace(reader, "lookback", site))
    if job.surprisal:
        site = job.surprisal_site
        caches[("surprisal", site)] = _open(cache_dir, _stream_namespace(reader, "surprisal", site))
    keys = [text_key(prompt_of(ex), ex.response) for ex in dataset]
    lacking = {name: set(c.missing(keys)) for name, c in caches.items()}
    missing = set().union(*lacking.values())
    items = {
        k: ChunkItem(k, prompt_of(ex), ex.response)
        for k, ex in zip(keys, dataset, strict=True)
        if k in missing
    }
    # Chunks of similar lengths pad little; the order depends on the texts only, so a local
    # run and a runner read the same chunks.
    todo = sorted(items, key=lambda k: (len(items[k].prompt) + len(items[k].response), k))
    chunks = [[items[k] for k in todo[i : i + chunk_size]] for i in range(0, len(todo), chunk_size)]
    results = (
        runner(job, chunks)
        if runner is not None
        else ((i, reader_chunk_rows(job, chunk)) for i, chunk in enumerate(chunks))
    )
    bar = tqdm(total=len(todo), desc="reader features", unit="ex", disable=not progress)
    for index, rows in results:  # each finished chunk is written before the next is awaited
        for name, cache in caches.items():  # a stream adds only what it lacks (no rewrites
            # when a new stream, e.g. surprisal, joins a filled cache)
            cache.put({k: v for k, v in rows[name].items() if k in lacking[name]})
        bar.update(len(chunks[index]))
    bar.close()
    for (kind, site), cache in caches.items():
        data = _get(cache, keys)
        if kind == "raw":
            out.raw[site] = np.stack([data[k]["raw"] for k in keys]).astype(np.float64)
            continue
        if kind == "tokens":
            out.tokens[site] = [data[k]["acts"] for k in keys]
            out.token_offsets = [data[k]["offsets"] for k in keys]
            continue
        if kind == "lookback":
            shape = reader.lookback_shape
            out.lookback = np.stack([data[k]["mean"] for k in keys]).astype(np.float64)
            if out.lookback.shape[1:] != (shape[0] * shape[1],):
                msg = f"cached lookback ratios do not fit the reader's {shape} layers x heads"
                raise ArtifactError(msg)
            out.lookback_shape = shape
            out.token_lookback = [data[k]["tok"] for k in keys]
            continue
        if kind == "surprisal":
            pairs = [data[k]["tok"] for k in keys]
            if any(v.ndim != 2 or v.shape[1] != 2 for v in pairs):
                msg = "cached surprisal is not (n_tokens, 2) per example: a damaged cache"
                raise ArtifactError(msg)
            out.token_surprisal = pairs
            continue
        sae = saes[site]
        width = sae.n_latents * len(pooling.parts)
        indptr = np.cumsum([0, *(len(data[k]["idx"]) for k in keys)])
        indices = np.concatenate([data[k]["idx"] for k in keys]) if keys else np.zeros(0, int)
        values = np.concatenate([data[k]["val"] for k in keys]) if keys else np.zeros(0)
        if indices.size and int(indices.max()) >= width:
            msg = f"cached SAE features at {site} do not fit the SAE's width {width}"
            raise ArtifactError(msg)
        out.sae[site] = sp.csr_matrix(
            (values.astype(np.float64), indices, indptr), (len(keys), width)
        )
        out.sae_latents[site] = sae.latent_ids.cpu().numpy()
    return len(todo)


def _extract_grounding(
    dataset: LabeledDataset,
    detector: GroundingDetector,
    cache_dir: str | os.PathLike[str] | None,
    chunk_size: int,
    progress: bool,
    out: ExtractedFeatures,
) -> int:
    from detectors.grounding import FEATURE_NAMES, FEATURES_VERSION

    embedder = getattr(detector, "embedder", None)
    namespace = {
        "kind": "grounding",
        "version": FEATURES_VERSION,
        "names": text_key(list(FEATURE_NAMES)),
        "detector": repr(getattr(detector, "config", "default")),
        # The embedder changes support scores: a different one must not reuse these features.
        "embedder": f"{type(embedder).__module__}.{type(embedder).__qualname__}",
        "embedder_config": repr(getattr(embedder, "__dict__", {}))[:2000],
    }
    cache = _open(cache_dir, namespace)
    keys = [text_key(ex.response, ex.contexts, ex.question) for ex in dataset]
    todo = cache.missing(keys)
    todo_set = set(todo)
    examples = {k: ex for k, ex in zip(keys, dataset, strict=True) if k in todo_set}
    bar = tqdm(total=len(todo), desc="grounding features", unit="ex", disable=not progress)
    for start in range(0, len(todo), chunk_size):
        rows = {}
        for key in todo[start : start + chunk_size]:
            ex = examples[key]
            result = detector.check(ex.response, ex.contexts, question=ex.question or None)
            rows[key] = {"g": result.feature_array()}
            bar.update(1)
        cache.put(rows)
    bar.close()
    data = _get(cache, keys)
    out.grounding = (
        np.stack([data[k]["g"] for k in keys]) if keys else np.zeros((0, len(FEATURE_NAMES)))
    )
    out.grounding_names = tuple(FEATURE_NAMES)
    out.grounding_version = FEATURES_VERSION
    return len(todo)
