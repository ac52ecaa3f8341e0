"""Reader features on a Ray cluster: a Ray Data pipeline over an actor pool of readers.

Each actor loads the reader and SAEs once, from what :class:`ReaderSpec` names (the source,
sites, dtype, SAE sources), never from a pickled model, and checks that what it loaded is the
driver's reader (weights, tokenizer, template and SAE fingerprints): the cache namespaces are
the driver's, so a node holding other weights must not fill them. Work items are the chunks of
:func:`calibration.extract.extract_features` (sorted by length, the resume unit); each actor
computes a chunk with :func:`calibration.extract.reader_chunk_rows`, the function the local
loop calls, so the features equal a local run's. The driver writes each chunk to the feature
cache as it arrives; rows already cached are never sent.

``ray`` is imported only here, and only when used: the core package works without the extra.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from calibration.extract import ChunkItem, ChunkRows, ReaderJob, reader_chunk_rows
from calibration.feature_cache import text_key
from calibration.ray_options import RayOptions, ray_error_cause, require_ray
from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.features import Pooling
from scope_guard.sites import Site

if TYPE_CHECKING:
    from scope_guard.reader import Reader

__all__ = ["RayRunner", "ReaderSpec", "identity", "load_job", "use_threads"]

logger = logging.getLogger(__name__)

_JOB_BASICS = {"reader", "saes", "raws", "pooling", "batch_size"}


@dataclass(frozen=True)
class ReaderSpec:
    """What an actor loads and computes with: names and fingerprints, no weights.

    Attributes:
        source: The reader's source (a folder, hub id, GGUF, ``gemma-3-270m``, ``miniature``).
        sites: Sites the reader captures.
        dtype: The reader's dtype (``float32``, ``bfloat16``).
        device: The actor's reader device.
        max_tokens: The reader's ``max_tokens``.
        saes: Per SAE site, its source and the latent ids it computes.
        raws: Sites whose pooled raw activations are kept.
        pooling: The pooling's spelling.
        batch_size: Reader batch size.
        lookback: The reader captures lookback ratios.
        surprisal: The reader computes surprisal (every layer, the final norm, the LM head).
        job_options: The job's other fields (token sites, flags: plain data), as they are.
        identity: Fingerprints the actor's reader and SAEs must have (the driver's).
    """

    source: str
    sites: tuple[str, ...]
    dtype: str
    device: str
    max_tokens: int
    saes: tuple[tuple[str, str, tuple[int, ...]], ...]
    raws: tuple[str, ...]
    pooling: str
    batch_size: int
    lookback: bool
    surprisal: bool
    job_options: dict[str, Any]
    identity: dict[str, str]

    @classmethod
    def of(cls, job: ReaderJob, *, device: str) -> ReaderSpec:
        """The spec of a job's reader and SAEs, for actors on ``device``.

        Raises:
            ConfigError: the reader or an SAE does not record where it was loaded from.
        """
        reader = job.reader
        if reader.source is None:
            msg = "the reader was not loaded by Reader.from_pretrained: Ray actors cannot load it"
            raise ConfigError(msg)
        saes = []
        for site, sae in job.saes.items():
            if sae.info.source is None:
                msg = f"the SAE at {site} does not record its source: Ray actors cannot load it"
                raise ConfigError(msg)
            ids = tuple(int(i) for i in sae.latent_ids.tolist())
            saes.append((str(site), str(sae.info.source), ids))
        return cls(
            source=reader.source,
            sites=tuple(str(s) for s in reader.sites),
            dtype=reader.info.dtype,
            device=device,
            max_tokens=reader.max_tokens,
            saes=tuple(saes),
            raws=tuple(str(s) for s in job.raws),
            pooling=str(job.pooling),
            batch_size=job.batch_size,
            lookback=bool(getattr(reader, "lookback", False)),
            surprisal=bool(getattr(reader, "surprisal", False)),
            job_options={
                f.name: getattr(job, f.name) for f in fields(job) if f.name not in _JOB_BASICS
            },
            identity=identity(reader, job.saes),
        )


def identity(reader: Reader, saes: Any) -> dict[str, str]:
    """The fingerprints that decide the cache namespaces of a reader and its SAEs."""
    from detectors.bundle_manifest import sae_fingerprint

    template = reader.encoder.rendering
    found = {
        "reader": reader.fingerprint,
        "tokenizer": reader.tokenizer_fingerprint,
        "dtype": reader.info.dtype,
        "max_tokens": str(reader.max_tokens),
        "chat_template": text_key(template) if template else "",
        "lookback": str(bool(getattr(reader, "lookback", False))),
        "surprisal": str(bool(getattr(reader, "surprisal", False))),
    }
    found.update({f"sae {site}": sae_fingerprint(sae) for site, sae in saes.items()})
    return found


def load_job(spec: ReaderSpec) -> ReaderJob:
    """Load the reader and SAEs a spec names and check they are the driver's.

    Raises:
        ArtifactError: what loaded here differs from the driver's reader or SAEs.
    """
    from scope_guard.reader import Reader
    from scope_guard.reader.reader import MINIATURE_SOURCE
    from scope_guard.sae import load_sae

    options: dict[str, Any] = {
        "dtype": spec.dtype,
        "device": spec.device,
        "max_tokens": spec.max_tokens,
        "batch_size": spec.batch_size,
        "lookback": spec.lookback,
        "surprisal": spec.surprisal,
    }
    reader = (
        Reader.miniature(spec.sites, **options)
        if spec.source == MINIATURE_SOURCE
        else Reader.from_pretrained(spec.source, spec.sites, **options)
    )
    saes = {}
    for site, source, ids in spec.saes:
        sae = load_sae(source, device=spec.device)
        if tuple(int(i) for i in sae.latent_ids.tolist()) != ids:
            sae = sae.narrow(list(ids))
        saes[Site.parse(site)] = sae
    found = identity(reader, saes)
    differ = sorted(k for k in spec.identity if found.get(k) != spec.identity[k])
    if differ:
        msg = (
            f"the Ray actor loaded another {', '.join(differ)} from {spec.source!r} than the "
            "driver's: every node must hold the same reader and SAE files"
        )
        raise ArtifactError(msg)
    raws = [Site.parse(s) for s in spec.raws]
    pooling = Pooling.parse(spec.pooling)
    return ReaderJob(reader, saes, raws, pooling, spec.batch_size, **spec.job_options)


def use_threads(threads: int) -> None:
    """Give torch the actor's CPUs: a reused Ray worker keeps the one thread it started with."""
    import torch

    torch.set_num_threads(max(1, threads))


def _wire(text: str) -> bytes:
    # Arrow columns are UTF-8; lone surrogates (valid in a Python str) must survive the trip.
    return text.encode("utf-8", "surrogatepass")


def _unwire(data: Any) -> str:
    return bytes(data).decode("utf-8", "surrogatepass")


class ChunkActor:
    """A Ray Data callable class: one reader per actor, one chunk of examples per call."""

    def __init__(self, spec: ReaderSpec, threads: int) -> None:
        use_threads(threads)
        self.job = load_job(spec)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        chunk_ids, results = [], []
        for index, keys, prompts, responses in zip(
            batch["chunk"], batch["keys"], batch["prompts"], batch["responses"], strict=True
        ):
            items = [
                ChunkItem(str(k), _unwire(p), _unwire(r))
                for k, p, r in zip(keys, prompts, responses, strict=True)
            ]
            rows = reader_chunk_rows(self.job, items)
            chunk_ids.append(int(index))
            # Sites travel as their spelling; the arrays as they are (float32, int64).
            results.append({f"{kind}|{site}": value for (kind, site), value in rows.items()})
        packed = np.empty(len(results), dtype=object)
        packed[:] = results
        return {"chunk": np.array(chunk_ids, dtype=np.int64), "rows": packed}


class RayRunner:
    """A :class:`calibration.extract.ChunkRunner` on a Ray Data actor pool of readers.

    Args:
        options: Pool width and resources (the Ray runtime must be up: see
            :func:`ray_session`).
    """

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options or RayOptions()

    def __call__(
        self, job: ReaderJob, chunks: Sequence[Sequence[ChunkItem]]
    ) -> Iterator[tuple[int, ChunkRows]]:
        """Yield each chunk's rows as its actor finishes it (in any order).

        Raises:
            ConfigError: Ray is not installed, or the reader cannot be named to an actor.
            ArtifactError: an actor failed, or a chunk came back missing or twice.
        """
        if not chunks:
            return
        ray = require_ray()
        opts = self.options
        device = opts.device or ("cuda" if opts.gpus_per_actor > 0 else str(job.reader.device))
        spec = ReaderSpec.of(job, device=device)
        items = [
            {
                "chunk": i,
                "keys": [item.key for item in chunk],
                "prompts": [_wire(item.prompt) for item in chunk],
                "responses": [_wire(item.response) for item in chunk],
            }
            for i, chunk in enumerate(chunks)
        ]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ChunkActor,
            fn_constructor_kwargs={"spec": spec, "threads": int(opts.cpus_per_actor)},
            batch_size=1,  # one chunk per call: the chunk is the unit read and cached
            compute=ray.data.ActorPoolStrategy(size=min(opts.actors, len(items))),
            num_cpus=opts.cpus_per_actor,
            num_gpus=opts.gpus_per_actor or None,
        )
        seen: set[int] = set()
        try:
            # Whole blocks, no prefetch: iter_rows holds each chunk back until the next one is
            # done, so a chunk would be written one chunk late (and the last two together).
            for block in dataset.iter_batches(batch_size=None, prefetch_batches=0):
                for index, packed in zip(block["chunk"], block["rows"], strict=True):
                    index = int(index)
                    if index in seen or not 0 <= index < len(chunks):
                        msg = f"the Ray pipeline returned chunk {index} twice or out of range"
                        raise ArtifactError(msg)
                    seen.add(index)
                    yield index, _unpack(packed)
        except ray.exceptions.RayError as exc:
            msg = f"the Ray extraction failed: {ray_error_cause(exc)}"
            raise ArtifactError(msg) from exc
        if len(seen) != len(chunks):
            msg = f"the Ray pipeline returned {len(seen)} of {len(chunks)} chunks"
            raise ArtifactError(msg)


def _unpack(packed: dict[str, Any]) -> ChunkRows:
    rows: ChunkRows = {}
    for name, per_key in packed.items():
        kind, _, site = name.partition("|")
        # Copies: arrays out of the object store are read-only views that pin its memory.
        rows[(kind, Site.parse(site))] = {
            key: {field: np.array(value) for field, value in arrays.items()}
            for key, arrays in per_key.items()
        }
    return rows
