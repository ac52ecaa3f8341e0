"""Extract every feature block of RAGTruth dev with the real Gemma 3 270M, cached and resumable.

One early-stopped pass per batch (bf16, batches by length, nothing past the deepest site) gives
pooled raw activations and per-token activations at each site and the lookback ratios of
layers 0 .. deepest; the grounding features come from the weight-free detector. Everything goes
to the project's feature cache, so an interrupted run resumes where it stopped.

``--surprisal`` adds each response token's surprisal and entropy under the reader (the pass
then runs all 18 layers, the final norm and the LM head at the response positions). It is
additive: the other streams' cache entries are the same bits either way, so on a filled cache
only the surprisal stream is written. ``--groups N --seed S`` reads a fixed seeded sample of N
source groups (every response of each drawn source), for a measurement that must stay short.

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

import numpy as np
import torch

DEFAULT_SITES = ("resid_post@6", "resid_post@9")
DEFAULT_CACHE = Path.home() / ".cache" / "scope_guard" / "features"


def sample_groups(dataset, n_groups: int | None, seed: int):
    """Every response of ``n_groups`` source groups drawn with ``seed`` (all when ``None``),
    in the dataset's order."""
    if n_groups is None:
        return dataset
    groups = dataset.groups()
    names = sorted(set(groups.tolist()))
    if not 0 < n_groups <= len(names):
        raise SystemExit(f"--groups must be 1..{len(names)}, got {n_groups}")
    drawn = set(np.random.default_rng(seed).choice(names, size=n_groups, replace=False).tolist())
    return dataset.subset([i for i, g in enumerate(groups) if g in drawn])


def load_inputs(
    data: Path,
    sites: tuple[str, ...],
    max_tokens: int,
    batch_size: int,
    *,
    surprisal: bool = False,
    groups: int | None = None,
    seed: int = 0,
):
    from calibration import load_dataset
    from scope_guard.reader import Reader

    dataset = sample_groups(load_dataset(data, "ragtruth"), groups, seed)
    reader = Reader.from_pretrained(
        "gemma-3-270m",
        list(sites),
        dtype="bfloat16",
        max_tokens=max_tokens,
        lookback=True,
        batch_size=batch_size,
        surprisal=surprisal,
    )
    return dataset, reader


def extract_all(
    dataset,
    reader,
    sites,
    cache: Path,
    batch_size: int,
    progress: bool = True,
    grounding=True,
    surprisal: bool = False,
):
    from calibration.extract import extract_features
    from detectors.grounding import GroundingDetector

    return extract_features(
        dataset,
        reader=reader,
        raw_sites=list(sites),
        token_sites=list(sites),
        lookback=True,
        surprisal=surprisal,
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
    parser.add_argument(
        "--surprisal",
        action="store_true",
        help="also each response token's surprisal and entropy (runs every layer and the LM head)",
    )
    parser.add_argument(
        "--groups", type=int, default=None, help="only N source groups, drawn with --seed"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_at_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    dataset, reader = load_inputs(
        args.data,
        tuple(args.sites),
        args.max_tokens,
        args.batch_size,
        surprisal=args.surprisal,
        groups=args.groups,
        seed=args.seed,
    )
    t_load = time.perf_counter() - t0
    t1 = time.perf_counter()
    feats = extract_all(
        dataset,
        reader,
        tuple(args.sites),
        args.cache,
        args.batch_size,
        grounding=not args.no_grounding,
        surprisal=args.surprisal,
    )
    t_extract = time.perf_counter() - t1
    n_response = sum(len(o) for o in feats.token_offsets or [])
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "rows": len(dataset),
        "computed": feats.n_computed,
        "groups": args.groups,
        "seed": args.seed if args.groups is not None else None,
        "response_tokens": n_response,
        "surprisal": args.surprisal,
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
