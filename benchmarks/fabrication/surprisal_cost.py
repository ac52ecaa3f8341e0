"""What surprisal costs the RAGTruth read: the same batches read with and without it, alternately.

Two readers of the real Gemma 3 270M (bf16, eager attention for the lookback ratios, sites
``resid_post@6`` and ``@9``, as ``extract_ragtruth`` reads them) in one process, one thread:
the plain one stops after layer 9; the surprisal one runs all 18 layers, the final norm and the
LM head at the response positions. Each batch is read by both, in ABBA order, and both the wall
time and the process CPU time are kept: on a shared machine the wall clock swings with the
other jobs, the CPU time much less, so the CPU-time ratio is the figure to trust.

    .venv/bin/python -m benchmarks.fabrication.surprisal_cost --groups 3 \\
        --out benchmarks/results/fabrication_ragtruth_surprisal_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from benchmarks.fabrication.extract_ragtruth import DEFAULT_SITES, sample_groups


def _timed(reader, pairs) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    reader.read_batch(pairs, batch_size=4)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data/ragtruth/ragtruth_dev.jsonl")
    )
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from calibration import load_dataset
    from calibration.data import prompt_of
    from scope_guard.reader import Reader

    dataset = sample_groups(load_dataset(args.data, "ragtruth"), args.groups, args.seed)
    pairs = sorted(
        ((prompt_of(ex), ex.response) for ex in dataset), key=lambda p: len(p[0]) + len(p[1])
    )
    readers = {
        with_surprisal: Reader.from_pretrained(
            "gemma-3-270m",
            list(DEFAULT_SITES),
            dtype="bfloat16",
            max_tokens=args.max_tokens,
            lookback=True,
            surprisal=with_surprisal,
        )
        for with_surprisal in (False, True)
    }
    _timed(readers[False], pairs[:1])  # first-call warm-up of each
    _timed(readers[True], pairs[:1])
    totals = {False: [0.0, 0.0], True: [0.0, 0.0]}
    load_at_start = os.getloadavg()[0]
    for i, start in enumerate(range(0, len(pairs), 4)):
        batch = pairs[start : start + 4]
        order = (False, True) if i % 2 == 0 else (True, False)  # ABBA
        for key in order:
            wall, cpu = _timed(readers[key], batch)
            totals[key][0] += wall
            totals[key][1] += cpu
    n_tokens = sum(len(readers[False].encoder.encode(p, r).input_ids) for p, r in pairs)
    n_response = sum(readers[False].encoder.encode(p, r).n_response_tokens for p, r in pairs)
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "rows": len(pairs),
        "groups": args.groups,
        "seed": args.seed,
        "tokens_read": n_tokens,
        "response_tokens": n_response,
        "plain_wall_s": round(totals[False][0], 2),
        "plain_cpu_s": round(totals[False][1], 2),
        "surprisal_wall_s": round(totals[True][0], 2),
        "surprisal_cpu_s": round(totals[True][1], 2),
        "cpu_ratio": round(totals[True][1] / totals[False][1], 3),
        "wall_ratio": round(totals[True][0] / totals[False][0], 3),
        "threads": 1,
        "load_average_1m_at_start": load_at_start,
        "load_average_1m_at_end": os.getloadavg()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "reader": readers[True].info.name,
    }
    print(json.dumps(record, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
