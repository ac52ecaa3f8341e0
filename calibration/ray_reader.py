"""A reader whose forward passes run on a pool of Ray actors, for ``scope-guard score --ray``.

The guard asks its reader for one batch of exchanges at a time; :class:`RayReader` is that
reader. It groups the exchanges exactly as :meth:`Reader.read_batch` does (longest first,
``batch_size`` per forward pass), sends each group to a free actor, which reads it with its own
``read_batch`` as one forward pass, and returns the readings in input order: the same batches
as a local read, so the same activations. Everything else of the guard (grounding, SAEs,
probes, policy, risk log) stays in the driver, unchanged.

Actors are long-lived (``ray.remote``, dispatched round robin), not a Ray Data pool: a Ray Data
actor pool lives for one dataset execution, and the guard's batches arrive one call at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch

from calibration.extract import ReaderJob
from calibration.ray_extract import ReaderSpec, load_job, use_threads
from calibration.ray_options import RayOptions, ray_error_cause, require_ray
from scope_guard.errors import ArtifactError, InputError
from scope_guard.features import Pooling
from scope_guard.reader import Reader
from scope_guard.reader.reading import Reading
from scope_guard.reader.surprisal import TokenSurprisal

__all__ = ["RayReader", "ReadingActor"]


class ReadingActor:
    """One reader per actor (loaded from a :class:`ReaderSpec`, checked against the driver's)."""

    def __init__(self, spec: ReaderSpec, threads: int) -> None:
        use_threads(threads)
        self.reader = load_job(spec).reader

    def read(self, pairs: list[tuple[str, str]], batch_size: int) -> list[Reading]:
        """``read_batch`` of one group; tensors come back on the CPU (the driver may have no
        GPU)."""
        readings = self.reader.read_batch(pairs, batch_size=batch_size)
        return [_to_cpu(r) for r in readings]


def _to_cpu(reading: Reading) -> Reading:
    acts = {site: t.cpu() for site, t in reading.activations.items()}
    lookback = getattr(reading, "lookback", None)
    if isinstance(lookback, torch.Tensor):
        lookback = lookback.cpu()
    surprisal = reading.surprisal  # on the CPU already (then .cpu() is a no-op)
    if surprisal is not None:
        surprisal = TokenSurprisal(surprisal.surprisal.cpu(), surprisal.entropy.cpu())
    return dataclasses.replace(reading, activations=acts, lookback=lookback, surprisal=surprisal)


class RayReader(Reader):
    """A :class:`Reader` (same identity, tokenizer and template) reading on Ray actors.

    Args:
        reader: The driver's reader: its identity is what bundles and caches check, and each
            actor must load the same weights.
        options: Pool width and resources (the Ray runtime must be up).

    Raises:
        ConfigError: Ray is not installed, or the reader does not record its source.
        ArtifactError: an actor could not load the reader, or loaded other weights.
    """

    def __init__(self, reader: Reader, options: RayOptions | None = None) -> None:
        # No Reader.__init__: this is the driver's loaded reader, whose passes run elsewhere.
        self.__dict__.update(reader.__dict__)
        self.options = options or RayOptions()
        ray = require_ray()
        default = "cuda" if self.options.gpus_per_actor else str(reader.device)
        device = self.options.device or default
        job = ReaderJob(reader, {}, [], Pooling.MEAN, reader.batch_size)
        spec = ReaderSpec.of(job, device=device)
        remote = ray.remote(
            num_cpus=self.options.cpus_per_actor, num_gpus=self.options.gpus_per_actor
        )(ReadingActor)
        threads = int(self.options.cpus_per_actor)
        self._actors = [remote.remote(spec, threads) for _ in range(self.options.actors)]
        try:  # load errors surface here, not in the first scored batch
            ray.get([a.__ray_ready__.remote() for a in self._actors])
        except ray.exceptions.RayError as exc:
            self.close()
            msg = f"a Ray reader actor failed to start: {ray_error_cause(exc)}"
            raise ArtifactError(msg) from exc

    def read_batch(
        self, exchanges: Iterable[tuple[str, str]], *, batch_size: int | None = None
    ) -> list[Reading]:
        """:meth:`Reader.read_batch`, each forward pass on a free actor."""
        ray = require_ray()
        size = batch_size if batch_size is not None else self.batch_size
        if not isinstance(exchanges, Iterable):
            msg = f"exchanges must be an iterable of (prompt, response) pairs, got {exchanges!r}"
            raise InputError(msg)
        items = list(exchanges)
        for i, item in enumerate(items):
            if not isinstance(item, tuple | list) or len(item) != 2:
                msg = f"exchange {i} must be a (prompt, response) pair, got {type(item).__name__}"
                raise InputError(msg)
        encoded = [self.encoder.encode(p, r) for p, r in items]
        # The local grouping: longest first, stable, `size` per pass; empty responses need none.
        todo = sorted(
            (i for i, e in enumerate(encoded) if e.n_response_tokens > 0),
            key=lambda i: -len(encoded[i].input_ids),
        )
        groups = [todo[s : s + size] for s in range(0, len(todo), size)]
        out: dict[int, Reading] = {}
        empty = [i for i, e in enumerate(encoded) if e.n_response_tokens == 0]
        if empty:  # no forward pass: read here
            out.update(zip(empty, Reader.read_batch(self, [items[i] for i in empty]), strict=True))
        # Round robin over the longest-first groups keeps the actors' loads close.
        futures = [
            self._actors[k % len(self._actors)].read.remote([tuple(items[i]) for i in group], size)
            for k, group in enumerate(groups)
        ]
        try:
            for group, readings in zip(groups, ray.get(futures), strict=True):
                out.update(zip(group, readings, strict=True))
        except ray.exceptions.RayError as exc:
            msg = f"a Ray reader actor failed: {ray_error_cause(exc)}"
            raise ArtifactError(msg) from exc
        return [out[i] for i in range(len(items))]

    def close(self) -> None:
        """End the actors (they hold a model each)."""
        ray = require_ray()
        for actor in getattr(self, "_actors", []):
            ray.kill(actor)
        self._actors = []
