"""Reader features on Ray against the local in-process run: rows/s with one and two actors.

Reads the first ``--rows`` RAGTruth rows (through ``calibration.adapters.ragtruth``) with the
real Gemma 3 270M at one site, pooled raw activations (the features ``calibrate --raw-site``
fits on), four ways, each from an empty in-memory cache:

- ``local``: ``extract_features`` in this process (torch on all of this process's threads);
  ``local_1thread``: the same on one torch thread;
- ``ray_1x1``: one actor with 1 CPU; ``ray_1x2``: one actor with 2 CPUs; ``ray_2x1``: two
  actors with 1 CPU each (Ray sets each actor's thread count to its CPUs).

Each Ray figure is given twice: over the whole call (actor start and model load included: a
Ray Data actor pool lives for one extraction) and after the first chunk arrived (steady
state). The Ray features are compared with the local ones (``np.array_equal``).

Usage::

    python -m benchmarks.ray_extract --data ../shared/data/ragtruth/ragtruth_dev.jsonl \
        --rows 256 --out benchmarks/results/ray_extract_gemma3_270m.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calibration.extract import ChunkItem, ChunkRows, ReaderJob, extract_features
from calibration.ray_extract import RayRunner
from calibration.ray_options import RayOptions


class _Timed:
    """Wraps a runner: records when each chunk arrived and how many rows it held."""

    def __init__(self, inner: RayRunner) -> None:
        self.inner = inner
        self.arrivals: list[tuple[float, int]] = []

    def __call__(
        self, job: ReaderJob, chunks: Sequence[Sequence[ChunkItem]]
    ) -> Iterator[tuple[int, ChunkRows]]:
        for index, rows in self.inner(job, chunks):
            self.arrivals.append((time.perf_counter(), len(chunks[index])))
            yield index, rows


def _run(data: Any, reader: Any, site: Any, chunk: int, runner: Any = None) -> dict[str, Any]:
    start = time.perf_counter()
    got = extract_features(
        data, reader=reader, raw_sites=[site], chunk_size=chunk, progress=False, runner=runner
    )
    wall = time.perf_counter() - start
    out: dict[str, Any] = {
        "rows": got.n,
        "wall_s": round(wall, 2),
        "rows_per_s": round(got.n / wall, 3),
        "features": got.raw[site],
    }
    if isinstance(runner, _Timed) and len(runner.arrivals) > 1:
        first, first_rows = runner.arrivals[0]
        last = runner.arrivals[-1][0]
        out["first_chunk_s"] = round(first - start, 2)
        out["after_first_chunk_rows_per_s"] = round((got.n - first_rows) / (last - first), 3)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a RAGTruth .jsonl")
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--site", default="resid_post@9")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--chunk", type=int, default=16, help="rows per chunk (one actor call)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    import ray
    import torch

    from calibration.adapters.ragtruth import load
    from calibration.data import prompt_of
    from scope_guard.reader import Reader
    from scope_guard.sites import Site

    data = load(Path(args.data)).subset(range(args.rows))
    site = Site.parse(args.site)
    reader = Reader.from_pretrained(
        "gemma-3-270m", [site], dtype="float32", max_tokens=args.max_tokens
    )
    n_tokens = [len(reader.encoder.encode(prompt_of(ex), ex.response).input_ids) for ex in data]
    load_before = os.getloadavg()
    results: dict[str, Any] = {"local": _run(data, reader, site, args.chunk)}
    reference = results["local"].pop("features")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the one-thread process beside the one-CPU actor
    results["local_1thread"] = _run(data, reader, site, args.chunk)
    results["local_1thread"]["equal_to_local"] = bool(
        np.array_equal(results["local_1thread"].pop("features"), reference)
    )
    torch.set_num_threads(threads)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        for name, actors, cpus in (("ray_1x1", 1, 1.0), ("ray_1x2", 1, 2.0), ("ray_2x1", 2, 1.0)):
            runner = _Timed(RayRunner(RayOptions(actors=actors, cpus_per_actor=cpus)))
            results[name] = _run(data, reader, site, args.chunk, runner)
            features = results[name].pop("features")
            results[name]["equal_to_local"] = bool(np.array_equal(features, reference))
            results[name]["actors"] = actors
            results[name]["cpus_per_actor"] = cpus
            results[name]["torch_threads_per_actor"] = int(cpus)  # set by ChunkActor
    finally:
        ray.shutdown()
    record = {
        "benchmark": "ray_extract",
        "reader": reader.name,
        "site": str(site),
        "dtype": "float32",
        "max_tokens": args.max_tokens,
        "rows": len(data),
        "chunk_rows": args.chunk,
        "batch_size": 8,
        "tokens_per_row": {
            "mean": round(float(np.mean(n_tokens)), 1),
            "min": int(min(n_tokens)),
            "max": int(max(n_tokens)),
        },
        "local_torch_threads": threads,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "ray": ray.__version__,
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
