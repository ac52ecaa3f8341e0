"""Train a JumpReLU SAE on real Gemma 3 270M activations, on the CPU, and measure it.

Corpus: the contexts and responses of several labeled datasets in ``../shared/data`` (read from
there, never copied), split by document hash into training and held-out text. The reader
(Q4_K_M GGUF, dequantized, bf16) reads training text once, for a fixed share of the time
budget, into memory (bf16); the trainer then makes as many passes over those activations as the
rest of the budget allows (on two shared cores the reader, not the SAE, is the bottleneck).
Held-out figures: FVU, mean L0, dead latents, and delta-CE with the whole model (LM head).

Run from the project root (about 35 minutes by default):

    nice -n 10 .venv/bin/python -m benchmarks.train_sae_gemma3 \\
        --out ~/.cache/scope_guard/sae/gemma-3-270m-resid_post@9-4096
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from scope_guard.reader import Reader
from scope_guard.sae.jumprelu import SAEInfo
from scope_guard.sae.training import TensorActivations, TextCorpus, Trainer, TrainingConfig
from scope_guard.sae.training.checkpoint import read_checkpoint
from scope_guard.sae.training.evaluation import (
    evaluate_sae,
    first_windows,
    load_causal_lm,
    model_folder_of,
)
from scope_guard.sae.training.explain import top_contexts, write_explanations
from scope_guard.sae.training.outputs import build_report, write_sae_folder
from scope_guard.sae.training.pipeline import manifest_fields
from scope_guard.sae.training.stream import ReaderActivations
from scope_guard.sites import Site

logger = logging.getLogger("benchmarks.train_sae_gemma3")

# (calibration format, path under the data root): contexts and responses of each.
DATASETS = (
    ("ragtruth", "ragtruth/ragtruth_dev.jsonl"),
    ("summedits", "summedits"),
    ("begin", "begin"),
    ("wice", "wice"),
    ("halueval-qa", "halueval/qa_one-turn_data.json"),
)


def build_corpus(root: Path) -> TextCorpus:
    """Contexts and responses of every dataset, interleaved in file order."""
    from calibration import load_dataset

    corpus = TextCorpus.from_texts([], name="shared-data")
    for fmt, rel in DATASETS:
        dataset = load_dataset(root / rel, fmt, strict=False)
        part = TextCorpus.from_exchanges(dataset, name=fmt)
        logger.info("%s: %d documents", fmt, len(part))
        corpus = part if not corpus.texts else corpus.plus(part)
    return corpus


def read_activations(
    source: ReaderActivations,
    max_tokens: int,
    budget_s: float,
    cache: Path | None = None,
    shard_tokens: int = 100_000,
) -> tuple[torch.Tensor, float]:
    """Rows from the stream until ``max_tokens`` or ``budget_s`` seconds, and the seconds spent.

    With ``cache`` (a folder), rows already there are reused and new ones are written to it in
    shards as they are read, so that several experiments (and a run that was stopped) read the
    activations once; the cache records what the rows are, and a different source is refused.
    """
    parts: list[torch.Tensor] = []
    have, spent = 0, 0.0
    if cache is not None:
        parts, spent = _load_cache(cache, source)
        have = sum(int(t.shape[0]) for t in parts)
        if parts:
            logger.info("%d cached tokens in %s (read in %.0f s)", have, cache, spent)
            source.restore(json.loads((cache / "meta.json").read_text())["state"])
    start, pending = time.monotonic(), 0
    while have < max_tokens and spent + time.monotonic() - start < budget_s:
        chunk = source.read_chunk()
        parts.append(chunk)
        have += int(chunk.shape[0])
        pending += int(chunk.shape[0])
        if cache is not None and (pending >= shard_tokens or have >= max_tokens):
            _write_shard(cache, source, parts[-_count_tail(parts, pending) :], spent, start)
            pending = 0
        if len(parts) % 10 == 0:
            rate = have / (spent + time.monotonic() - start)
            logger.info("read %d tokens (%.0f tok/s)", have, rate)
    if cache is not None and pending:
        _write_shard(cache, source, parts[-_count_tail(parts, pending) :], spent, start)
    return torch.cat(parts)[:max_tokens], spent + time.monotonic() - start


def _count_tail(parts: list[torch.Tensor], tokens: int) -> int:
    """How many of the last parts hold the last ``tokens`` rows."""
    n, seen = 0, 0
    while seen < tokens:
        n += 1
        seen += int(parts[-n].shape[0])
    return n


def _write_shard(
    cache: Path, source: ReaderActivations, tail: list[torch.Tensor], spent: float, start: float
) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    meta_path = cache / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"shards": []}
    name = f"shard_{len(meta['shards']):04d}.pt"
    torch.save(torch.cat(tail).clone(), cache / name)
    meta.update(
        source=source.describe(),
        state=source.state(),
        read_s=spent + time.monotonic() - start,
        shards=[*meta["shards"], name],
    )
    meta_path.write_text(json.dumps(meta, indent=2))


def _load_cache(cache: Path, source: ReaderActivations) -> tuple[list[torch.Tensor], float]:
    meta_path = cache / "meta.json"
    if not meta_path.exists():
        return [], 0.0
    meta = json.loads(meta_path.read_text())
    if meta["source"] != source.describe():
        msg = f"{cache} holds activations of {meta['source']}, not of {source.describe()}"
        raise SystemExit(msg)
    parts = [torch.load(cache / name, weights_only=True) for name in meta["shards"]]
    return parts, float(meta["read_s"])


def step_seconds(config: TrainingConfig, acts: torch.Tensor, n_steps: int = 4) -> float:
    """Wall time of one training step at this width and batch (measured on a throwaway run)."""
    probe = TrainingConfig(
        **{
            **config.to_dict(),
            "token_budget": config.batch_size * (n_steps + 1),
            "scale_estimate_tokens": config.batch_size,
            "buffer_tokens": 2 * config.batch_size,
            "checkpoint_every_tokens": None,
            "time_budget_s": None,
        }
    )
    trainer = Trainer(probe, TensorActivations(acts[: 4 * config.batch_size]))
    trainer.run(max_steps=1)
    start = time.monotonic()
    trainer.run(max_steps=n_steps)
    return (time.monotonic() - start) / n_steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gemma-3-270m")
    p.add_argument("--site", default="resid_post@9")
    p.add_argument("--width", type=int, default=4096)
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, required=True, help="SAE folder (outside the repo)")
    p.add_argument("--results", type=Path, default=None, help="results JSON")
    p.add_argument("--read-tokens", type=int, default=400_000, help="most tokens read")
    p.add_argument("--read-minutes", type=float, default=12.0)
    p.add_argument("--train-minutes", type=float, default=15.0)
    p.add_argument("--eval-tokens", type=int, default=4096)
    p.add_argument("--ce-tokens", type=int, default=2048)
    p.add_argument("--explain-tokens", type=int, default=4096)
    p.add_argument("--context-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--bandwidth", type=float, default=0.05)
    p.add_argument("--target-l0", type=float, default=50.0)
    p.add_argument("--l0-coefficient", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dead-after", type=int, default=30_000, help="tokens silent = dead")
    p.add_argument("--outlier-dim-ratio", type=float, default=4.0, help="0: plain MSE")
    p.add_argument("--dead-aux", type=float, default=0.1, help="pre-activation loss weight")
    p.add_argument("--no-center", action="store_true")
    p.add_argument("--resample", action="store_true")
    p.add_argument("--target-l0-gain", type=float, default=0.005)
    p.add_argument(
        "--activations-cache",
        type=Path,
        default=None,
        help="folder (outside the repo) to keep the read activations in and reuse them from",
    )
    p.add_argument("--read-only", action="store_true", help="stop once the activations are read")
    p.add_argument("--threads", type=int, default=None, help="torch threads (1 on shared cores)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run checkpointed in OUT/checkpoint (its config; --train-minutes more)",
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    started = time.monotonic()

    site = Site.parse(args.site)
    reader = Reader.from_pretrained(args.model, [site], dtype="bfloat16", batch_size=16)
    train, held = build_corpus(args.data).split_heldout(0.03)
    logger.info("corpus: %d training documents, %d held out", len(train), len(held))
    source = ReaderActivations(
        reader, site, train, context_size=args.context_size, seed=args.seed, batch_size=16
    )
    acts, read_s = read_activations(
        source, args.read_tokens, 60 * args.read_minutes, args.activations_cache
    )
    logger.info(
        "read %d tokens in %.0f s (%.0f tok/s)", acts.shape[0], read_s, acts.shape[0] / read_s
    )
    if args.read_only:
        return 0

    base = TrainingConfig(
        width=args.width,
        batch_size=args.batch_size,
        lr=args.lr,
        bandwidth=args.bandwidth,
        l0_coefficient=args.l0_coefficient,
        target_l0=args.target_l0,
        seed=args.seed,
        dead_after_tokens=args.dead_after,
        resample_every_tokens=args.dead_after,
        resample_dead=args.resample,
        outlier_dim_ratio=args.outlier_dim_ratio or None,
        dead_aux_coefficient=args.dead_aux,
        center_inputs=not args.no_center,
        target_l0_gain=args.target_l0_gain,
        buffer_tokens=65_536,
        log_every_steps=10,
    )
    per_step = step_seconds(base, acts)
    checkpoint = args.out / "checkpoint"
    if args.resume:  # the checkpointed config, with this call's minutes added to its time
        meta = read_checkpoint(checkpoint).meta
        saved, spent = TrainingConfig.from_dict(meta["config"]), float(meta["wall_s"])
        config = TrainingConfig(
            **{**saved.to_dict(), "time_budget_s": spent + 60 * args.train_minutes}
        )
    else:
        steps = max(10, int(0.92 * 60 * args.train_minutes / per_step))
        config = TrainingConfig(
            **{
                **base.to_dict(),
                "token_budget": steps * args.batch_size,
                "time_budget_s": 60 * args.train_minutes,
            }
        )
    logger.info("%.2f s per step: %d tokens in all", per_step, config.token_budget)
    info = SAEInfo(
        d_model=reader.site_dim(site),
        d_sae=args.width,
        site=site,
        source=str(args.out),
        model_name=reader.name,
    )
    activations = TensorActivations(acts, name="gemma3-shared-data")
    if args.resume:
        trainer = Trainer.resume(checkpoint, config, activations, info=info)
    else:
        trainer = Trainer(config, activations, info=info, checkpoint_dir=checkpoint)

    def progress(point: Any) -> None:
        logger.info(
            "tokens %d  FVU %.4f  L0 %.1f  lambda %.4g  dead %.1f%%  %.0f tok/s",
            point.tokens,
            point.fvu,
            point.l0,
            point.l0_coefficient,
            100 * point.dead_fraction,
            point.tokens_per_s,
        )

    result = trainer.run(on_progress=progress)

    windows = first_windows(reader.tokenizer, held, args.context_size, args.eval_tokens, seed=0)
    t0 = time.monotonic()
    lm = load_causal_lm(model_folder_of(reader), dtype=reader.dtype, device=reader.device)
    base_eval = evaluate_sae(result.sae, reader, site, windows, lm=None)
    ce_windows = first_windows(reader.tokenizer, held, args.context_size, args.ce_tokens, seed=0)
    ce_eval = evaluate_sae(result.sae, reader, site, ce_windows, lm=lm)
    evaluation = base_eval._replace(cross_entropy=ce_eval.cross_entropy)
    eval_s = time.monotonic() - t0
    del lm
    report = build_report(result, evaluation, trainer.dead_fraction())
    data = {
        **source.describe(),
        "activations_read": int(acts.shape[0]),
        "read_s": read_s,
        "note": "read once into memory (bf16), trained over in several passes",
    }
    manifest = manifest_fields(
        reader, site, config, result, data=data, heldout=held, evaluation=evaluation
    )
    write_sae_folder(args.out, result.sae, l0=evaluation.mean_l0, manifest=manifest, report=report)
    scan = first_windows(reader.tokenizer, train, args.context_size, args.explain_tokens, seed=1)
    contexts = top_contexts(result.sae, reader, scan, batch_size=16)
    write_explanations(
        args.out,
        contexts,
        {
            "site": str(site),
            "corpus": train.name,
            "n_tokens_scanned": sum(len(w.ids) for w in scan),
        },
    )
    ce = evaluation.cross_entropy
    targets = {
        "fvu<=0.25": evaluation.fvu <= 0.25,
        "mean_l0<=80": evaluation.mean_l0 <= 80,
        "dead<=5%": evaluation.dead_fraction <= 0.05,
        "delta_ce<=0.3": ce is not None and ce.delta <= 0.3,
    }
    payload = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "nice -n 10 .venv/bin/python -m benchmarks.train_sae_gemma3 "
        + " ".join(sys.argv[1:]),
        "reader": manifest["reader"],
        "site": str(site),
        "width": args.width,
        "corpus": {"train_documents": len(train), "heldout_documents": len(held)},
        "tokens_read": int(acts.shape[0]),
        "read_tokens_per_s": acts.shape[0] / read_s,
        "tokens_trained": result.tokens,
        "passes_over_read_tokens": result.tokens / acts.shape[0],
        "train_s": result.wall_s,
        "seconds_per_step": per_step,
        "eval_s": eval_s,
        "total_wall_s": time.monotonic() - started,
        "config": config.to_dict(),
        "heldout": {
            "fvu": evaluation.fvu,
            "mean_l0": evaluation.mean_l0,
            "dead_fraction": evaluation.dead_fraction,
            "n_tokens": evaluation.n_tokens,
            "ce_clean": ce.clean if ce else None,
            "ce_spliced": ce.spliced if ce else None,
            "ce_zero_ablated": ce.zero_ablated if ce else None,
            "delta_ce": ce.delta if ce else None,
            "loss_recovered": ce.loss_recovered if ce else None,
            "ce_tokens": ce.n_tokens if ce else None,
        },
        "dead_fraction_training": trainer.dead_fraction(),
        "n_resampled": result.n_resampled,
        "targets_met": targets,
        "curve": [p._asdict() for p in result.curve],
        "sae_folder": str(args.out),
    }
    results = args.results or Path("benchmarks/results") / (
        f"train_sae_{args.model}_{site.kind}{site.layer}_{args.width}.json"
    )
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    logger.info("held-out: %s; targets %s; results in %s", payload["heldout"], targets, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
