"""``scope-guard train-sae``: train a JumpReLU SAE on a reader's activations over a corpus."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from scope_guard.cli.console import emit_json, note, out
from scope_guard.errors import ConfigError

__all__ = ["add_parser", "parse_duration", "parse_tokens", "run"]

_SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000, "b": 1_000_000_000}
_SECONDS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600}
_TEXT_FORMATS = ("text", "jsonl")


def parse_tokens(text: str) -> int:
    """``2M`` -> 2,000,000; ``500k`` -> 500,000; ``1.5M``; plain integers.

    Raises:
        ConfigError: anything else, or a count below one.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGbB]?)\s*", str(text))
    if not match:
        msg = f"cannot read a token count from {text!r}; write e.g. 2M, 500k or 100000"
        raise ConfigError(msg)
    value = int(float(match.group(1)) * _SUFFIX[match.group(2).lower()])
    if value < 1:
        msg = f"the token count must be at least 1, got {text!r}"
        raise ConfigError(msg)
    return value


def parse_duration(text: str) -> float:
    """``30m`` -> 1800 s; ``90s``; ``1.5h``; plain seconds.

    Raises:
        ConfigError: anything else, or a duration that is not positive.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)?\s*", str(text).lower())
    if not match:
        msg = f"cannot read a duration from {text!r}; write e.g. 30m, 90s or 1.5h"
        raise ConfigError(msg)
    value = float(match.group(1)) * _SECONDS[match.group(2) or ""]
    if value <= 0:
        msg = f"the duration must be positive, got {text!r}"
        raise ConfigError(msg)
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train-sae",
        help="train a JumpReLU SAE (Gemma Scope recipe) on a reader's activations",
        description=(
            "Streams the activations of a reader at one site over a corpus (BOS and padding "
            "masked, shuffled), trains a JumpReLU SAE with straight-through estimators, and "
            "writes it in the Gemma Scope 2 and SAELens formats with a manifest, a report "
            "(held-out FVU, mean L0, dead latents, delta-CE) and each latent's top-activating "
            "contexts. Interrupt it at any time: --resume continues from the last checkpoint."
        ),
    )
    p.add_argument(
        "--model",
        required=True,
        help="reader: gemma-3-270m, a .gguf file, a model folder, a hub id, or 'miniature'",
    )
    p.add_argument("--site", required=True, help="where to read, e.g. resid_post@9")
    p.add_argument("--width", type=int, required=True, help="number of latents (>= d_model)")
    p.add_argument(
        "--data", action="append", required=True, help="a file or folder of text; repeatable"
    )
    p.add_argument(
        "--format",
        default="text",
        help="text (files, one document each), jsonl (a field of each line, see --field), or "
        "a labeled-data format (ragtruth, summedits, begin, ...; labeled-jsonl for ours): "
        "its contexts and responses",
    )
    p.add_argument("--field", action="append", help="jsonl field(s) holding the text")
    p.add_argument("--eval-data", action="append", help="held-out text (default: a split)")
    p.add_argument("--heldout", type=float, default=0.05, help="share of documents held out")
    p.add_argument("--tokens", default="2M", help="training token budget (2M, 500k, ...)")
    p.add_argument("--time-budget", help="stop after this wall time (30m, 1h, 900s)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.add_argument("--batch-size", type=int, default=1024, help="tokens per step")
    p.add_argument("--buffer-tokens", type=int, default=65_536, help="shuffling buffer size")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument(
        "--l0-coefficient", type=float, default=5.0, help="lambda (with --target-l0: its start)"
    )
    p.add_argument("--target-l0", type=float, help="steer lambda toward this mean L0")
    p.add_argument("--bandwidth", type=float, default=0.05, help="STE kernel width")
    p.add_argument(
        "--outlier-dim-ratio",
        type=float,
        default=4.0,
        help="weight down dimensions whose spread exceeds this multiple of the median's (0: off)",
    )
    p.add_argument(
        "--dead-aux",
        type=float,
        default=0.1,
        help="weight of the dead latents' pre-activation loss (0: off)",
    )
    p.add_argument("--no-center", action="store_true", help="train on uncentred inputs")
    p.add_argument("--resample", action="store_true", help="also resample dead latents")
    p.add_argument("--context-size", type=int, default=256, help="tokens per sequence (BOS incl.)")
    p.add_argument("--eval-tokens", default="16k", help="held-out tokens evaluated")
    p.add_argument("--explain-tokens", default="50k", help="tokens scanned for top contexts")
    p.add_argument("--no-delta-ce", action="store_true", help="skip loading the whole model")
    p.add_argument("--dtype", default="bfloat16", help="reader dtype (the SAE trains in float32)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--reader-batch-size", type=int, default=8, help="sequences per forward pass")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(run=run)


def _corpus(paths: list[str], fmt: str, fields: list[str] | None) -> Any:
    from scope_guard.sae.training import TextCorpus

    name = fmt.strip().lower()
    if name == "text":
        return TextCorpus.from_text_files(paths)
    if name == "jsonl":
        parts = [TextCorpus.from_jsonl(p, fields or ["text"]) for p in paths]
    else:
        from calibration import load_dataset

        labeled = "jsonl" if name == "labeled-jsonl" else name
        parts = [
            TextCorpus.from_exchanges(load_dataset(p, labeled), name=f"{labeled}:{p}")
            for p in paths
        ]
    corpus = parts[0]
    for part in parts[1:]:
        corpus = corpus.plus(part)
    return corpus


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from scope_guard.reader import Reader
    from scope_guard.sae.training import TrainingConfig, train_sae
    from scope_guard.sites import Site

    site = Site.parse(args.site)
    budget = parse_tokens(args.tokens)
    # A small budget needs neither a buffer nor a scale estimate bigger than itself.
    buffer = max(2 * args.batch_size, min(args.buffer_tokens, budget))
    config = TrainingConfig(
        width=args.width,
        token_budget=budget,
        scale_estimate_tokens=max(1, min(16_384, budget // 2)),
        batch_size=args.batch_size,
        lr=args.lr,
        l0_coefficient=args.l0_coefficient,
        target_l0=args.target_l0,
        bandwidth=args.bandwidth,
        outlier_dim_ratio=args.outlier_dim_ratio or None,
        dead_aux_coefficient=args.dead_aux,
        center_inputs=not args.no_center,
        resample_dead=args.resample,
        seed=args.seed,
        time_budget_s=parse_duration(args.time_budget) if args.time_budget else None,
        buffer_tokens=buffer,
    )
    corpus = _corpus(args.data, args.format, args.field)
    eval_corpus = _corpus(args.eval_data, args.format, args.field) if args.eval_data else None
    if args.model == "miniature":
        note("using the miniature stand-in reader: random weights, latents mean nothing")
        reader = Reader.miniature([site], dtype=args.dtype, batch_size=args.reader_batch_size)
    else:
        reader = Reader.from_pretrained(
            args.model,
            [site],
            dtype=args.dtype,
            device=args.device,
            batch_size=args.reader_batch_size,
        )
    done_before = 0
    bar = tqdm(total=config.token_budget, unit="tok", unit_scale=True, disable=args.json)

    def progress(point: Any) -> None:
        nonlocal done_before
        bar.update(point.tokens - done_before)
        done_before = point.tokens
        bar.set_postfix(
            L0=f"{point.l0:.1f}",
            FVU=f"{point.fvu:.3f}",
            dead=f"{100 * point.dead_fraction:.1f}%",
            tok_s=f"{point.tokens_per_s:.0f}",
        )

    try:
        result = train_sae(
            reader,
            site,
            corpus,
            config,
            Path(args.out),
            eval_corpus=eval_corpus,
            heldout_fraction=args.heldout,
            eval_tokens=parse_tokens(args.eval_tokens),
            context_size=args.context_size,
            reader_batch_size=args.reader_batch_size,
            resume=args.resume,
            lm=None if args.no_delta_ce else "auto",
            explain_tokens=parse_tokens(args.explain_tokens) if args.explain_tokens != "0" else 0,
            on_progress=progress,
        )
    finally:
        bar.close()
    report = result.report
    if report is None:  # pragma: no cover - the CLI never pauses a run
        msg = "training paused before its budget; run again with --resume"
        raise ConfigError(msg)
    payload = {"out": str(result.folder), **report.model_dump(exclude={"curve"})}
    if args.json:
        emit_json(payload)
        return 0
    out(report.markdown().split("## Training curve")[0].rstrip())
    out(f"\nSAE written to {result.folder} (load it with scope_guard.load_sae)")
    return 0
