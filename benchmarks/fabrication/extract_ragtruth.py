"""Extract every feature block of RAGTruth dev with the real Gemma 3 270M, cached and resumable.

One early-stopped pass per batch (bf16, batches by length, nothing past the deepest site) gives
pooled raw activations and per-token activations at each site and the lookback ratios of
layers 0 .. deepest; the grounding features come from the weight-free detector. Everything goes
to the project's feature cache, so an interrupted run resumes where it stopped.

Run from the project root:

    .venv/bin/python -m benchmarks.fabrication.extract_ragtruth \\
        --data ../shared/data/ragtruth/ragtruth_dev.jsonl --out benchmarks/results/...json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

DEFAULT_SITES = ("resid_post@6", "resid_post@9")
DEFAULT_CACHE = Path.home() / ".cache" / "scope_guard" / "features"


def load_inputs(data: Path, sites: tuple[str, ...], max_tokens: int, batch_size: int):
    from calibration import load_dataset
    from scope_guard.reader import Reader

    dataset = load_dataset(data, "ragtruth")
    reader = Reader.from_pretrained(
        "gemma-3-270m",
        list(sites),
        dtype="bfloat16",
        max_tokens=max_tokens,
        lookback=True,
        batch_size=batch_size,
    )
    return dataset, reader


def extract_all(
    dataset, reader, sites, cache: Path, batch_size: int, progress: bool = True, grounding=True
):
    from calibration.extract import extract_features
    from detectors.grounding import GroundingDetector

    return extract_features(
        dataset,
        reader=reader,
        raw_sites=list(sites),
        token_sites=list(sites),
        lookback=True,
        grounding=GroundingDetector() if grounding else None,
        cache_dir=cache,
        batch_size=batch_size,
        progress=progress,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data/ragtruth/ragtruth_dev.jsonl")
    )
    parser.add_argument("--sites", nargs="+", default=list(DEFAULT_SITES))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None, help="write the timing JSON here")
    parser.add_argument(
        "--no-grounding", action="store_true", help="reader features only (time the reader)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    load_at_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    dataset, reader = load_inputs(args.data, tuple(args.sites), args.max_tokens, args.batch_size)
    t_load = time.perf_counter() - t0
    t1 = time.perf_counter()
    feats = extract_all(
        dataset,
        reader,
        tuple(args.sites),
        args.cache,
        args.batch_size,
        grounding=not args.no_grounding,
    )
    t_extract = time.perf_counter() - t1
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "rows": len(dataset),
        "computed": feats.n_computed,
        "sites": args.sites,
        "lookback_shape": feats.lookback_shape,
        "max_tokens": args.max_tokens,
        "batch_size": args.batch_size,
        "load_s": round(t_load, 1),
        "extract_s": round(t_extract, 1),
        "grounding": not args.no_grounding,
        "load_average_1m_at_start": load_at_start,
        "load_average_1m_at_end": os.getloadavg()[0],
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "reader": reader.info.name,
    }
    print(json.dumps(record, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
