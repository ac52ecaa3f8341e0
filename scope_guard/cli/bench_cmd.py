"""``scope-guard bench``: the reader + SAE against the floor and the naive pipeline."""

from __future__ import annotations

import argparse
from typing import Any

from scope_guard.cli.console import note, out, table

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    from scope_guard.bench.shapes import SHAPES
    from scope_guard.bench.worker import PIPELINES

    p = sub.add_parser(
        "bench",
        help="measure throughput and memory against the floor and the naive pipeline",
        description=(
            "Runs, each in its own process on a random-weight Gemma 2 of the chosen shape: "
            "the floor (a bare forward pass to the hooked layer), scope-guard (read + full "
            "SAE encode + pool, and with the SAE narrowed), and the naive pipeline (full "
            "forward with hidden states and the LM head, full SAE over every token)."
        ),
    )
    p.add_argument("--shape", choices=list(SHAPES), default="tiny")
    p.add_argument(
        "--model",
        help="measure a real reader instead of a random shape (gemma-3-270m, a folder, a GGUF)",
    )
    p.add_argument("--layer", type=int, default=9, help="hooked layer of --model")
    p.add_argument("--d-sae", type=int, default=16384, help="random SAE width with --model")
    p.add_argument("--tokens", type=int, default=1024, help="exchange length in tokens")
    p.add_argument("--dtype", default="bfloat16", help="bfloat16, float32, float16 or auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up")
    p.add_argument("--n-narrow", type=int, default=256, help="latents of the narrowed SAE")
    p.add_argument("--pipelines", nargs="+", choices=PIPELINES, default=list(PIPELINES))
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from scope_guard.bench.runner import BenchConfig, run_benchmark

    config = BenchConfig(
        shape=args.shape,
        model=args.model,
        layer=args.layer,
        d_sae=args.d_sae,
        tokens=args.tokens,
        dtype=args.dtype,
        threads=args.threads,
        repeats=args.repeats,
        n_narrow=args.n_narrow,
        pipelines=tuple(args.pipelines),
    )
    report = run_benchmark(config, progress=lambda p: note(f"running {p} ..."))
    if args.json:
        out(report.to_json())
        return 0
    rows = [
        [
            name,
            r["n_tokens"],
            r["n_latents"] or "-",
            f"{r['median_s'] * 1000:.1f}",
            f"{r['tokens_per_s']:.0f}",
            f"{r['peak_rss_bytes'] / 1024**3:.2f}",
        ]
        for name, r in report.results.items()
    ]
    what = f"model={config.model} layer={config.layer}" if config.model else f"shape={config.shape}"
    out(f"{what} dtype={config.dtype} threads={config.threads}")
    out(table(["pipeline", "tokens", "latents", "median ms", "tokens/s", "peak RSS GiB"], rows))
    for key, value in report.ratios.items():
        out(f"{key}: {value:.2f}x")
    for key, t in report.targets.items():
        out(f"target {key} {t['bound']}: {'met' if t['met'] else 'NOT met'}")
    return 0
