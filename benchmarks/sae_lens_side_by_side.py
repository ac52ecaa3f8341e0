"""Our JumpReLU trainer and SAELens' side by side: same activations, token budget, width, batch.

The activations are the cache that ``benchmarks/train_sae_gemma3.py --activations-cache`` writes
(``meta.json`` + ``shard_XXXX.pt``, bf16 rows ``(n, d_model)``). Both trainers train on its first
``--train-tokens`` rows (``--token-budget`` may be a multiple: the same passes for both) and are
measured on its last ``--heldout-tokens`` rows, which neither trains on: FVU as
``scope_guard.sae.stats.sae_stats`` defines it, mean L0, latents never active, wall and CPU time.

The script runs in either virtual environment. ``--impl ours`` (the project's venv) trains with
``scope_guard.sae.training.Trainer``; ``--impl saelens`` (a venv with only torch and sae-lens)
never imports scope_guard: it builds SAELens' ``JumpReLUTrainingSAE`` and trains it with SAELens'
own ``SAETrainer.fit``, fed by SAELens' ``mixing_buffer``. Every run is merged into the results
JSON under its ``--label``, and the comparison (SAELens' FVU interpolated at our L0) is
recomputed at each write. Example (one run each; see benchmarks/README.md for the full set):

    .venv/bin/python benchmarks/sae_lens_side_by_side.py --impl ours --label ours \\
        --train-tokens 500224 --threads 1
    /root/saelens-venv/bin/python benchmarks/sae_lens_side_by_side.py --impl saelens \\
        --label saelens-step-0.05 --l0-coefficient 0.05 --train-tokens 500224 --threads 1
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import torch

RESULTS = Path("benchmarks/results/sae_lens_side_by_side.json")

#: ``forward(x) -> (codes, reconstruction)`` on raw float32 rows ``(batch, d_model)``.
Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class Slices(NamedTuple):
    """The training head and the held-out tail of an activation cache (bf16, CPU)."""

    train: torch.Tensor
    heldout: torch.Tensor
    total_tokens: int
    source: dict[str, Any]


class Trained(NamedTuple):
    """What a trainer hands back: the SAE as a function on raw rows, and what the run cost."""

    forward: Forward
    n_latents: int
    tokens: int
    steps: int
    wall_s: float
    cpu_s: float
    curve: list[dict[str, float]]
    details: dict[str, Any]


# ---------------------------------------------------------------------- data
def load_slices(cache: Path, train_tokens: int, heldout_tokens: int) -> Slices:
    """The first ``train_tokens`` and the last ``heldout_tokens`` rows of the cache, disjoint."""
    meta = json.loads((cache / "meta.json").read_text())
    parts = [torch.load(cache / name, weights_only=True) for name in meta["shards"]]
    rows = torch.cat(parts)
    total = int(rows.shape[0])
    if train_tokens + heldout_tokens > total:
        msg = (
            f"{cache} holds {total} tokens: too few for {train_tokens} training and "
            f"{heldout_tokens} held-out tokens that do not overlap"
        )
        raise SystemExit(msg)
    return Slices(
        rows[:train_tokens].clone(), rows[total - heldout_tokens :].clone(), total, meta["source"]
    )


def sha256_of(x: torch.Tensor) -> str:
    """Hash of a tensor's bytes: proves both runs read the same rows."""
    return hashlib.sha256(x.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def cycled_chunks(rows: torch.Tensor, chunk: int = 4096) -> Iterator[torch.Tensor]:
    """The rows in order, as float32 chunks, pass after pass (what ``TensorActivations`` reads)."""
    while True:
        for start in range(0, rows.shape[0], chunk):
            yield rows[start : start + chunk].float()


# ---------------------------------------------------------------------- measurement
@torch.no_grad()
def heldout_stats(
    forward: Forward, x: torch.Tensor, n_latents: int, *, batch_size: int = 4096
) -> dict[str, float]:
    """FVU, mean L0 and never-active latents, with ``sae_stats``' definitions, on raw rows.

    FVU is ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` over tokens and dimensions in
    float64; ``fvu_without_top_dim`` drops the dimension of largest variance from both sums
    (on Gemma 3 270M's layer 9 it holds ~80% of the variance).
    """
    x64 = x.double()
    dev = (x64 - x64.mean(dim=0)).pow(2)
    top = int(dev.sum(dim=0).argmax())
    keep = torch.ones(x.shape[1], dtype=torch.bool)
    keep[top] = False
    sq_err = torch.zeros(x.shape[1], dtype=torch.float64)
    active, ever = 0, torch.zeros(n_latents, dtype=torch.bool)
    for start in range(0, x.shape[0], batch_size):
        codes, recon = forward(x[start : start + batch_size].float())
        sq_err += (x64[start : start + batch_size] - recon.double()).pow(2).sum(dim=0)
        on = codes != 0
        active += int(on.sum())
        ever |= on.any(dim=0)
    var = dev.sum(dim=0)
    return {
        "fvu": float(sq_err.sum() / var.sum()),
        "fvu_without_top_dim": float(sq_err[keep].sum() / var[keep].sum()),
        "top_dim": top,
        "mean_l0": active / x.shape[0],
        "dead_fraction": float((~ever).double().mean()),
        "n_tokens": int(x.shape[0]),
    }


# ---------------------------------------------------------------------- our trainer
def train_ours(args: argparse.Namespace, train: torch.Tensor) -> Trained:
    """scope_guard's Trainer with the Gemma benchmark's settings (``train_sae_gemma3``)."""
    from scope_guard.sae.training import TensorActivations, Trainer, TrainingConfig

    config = TrainingConfig(
        width=args.width,
        token_budget=args.token_budget,
        batch_size=args.batch_size,
        lr=args.lr,
        bandwidth=args.bandwidth if args.bandwidth is not None else 0.05,
        init_threshold=args.init_threshold if args.init_threshold is not None else 0.001,
        l0_coefficient=args.l0_coefficient,
        target_l0=args.target_l0,
        seed=args.seed,
        dead_after_tokens=args.dead_after,
        resample_every_tokens=args.dead_after,
        outlier_dim_ratio=args.outlier_dim_ratio or None,
        dead_aux_coefficient=args.dead_aux,
        lr_warmup_fraction=args.lr_warmup_fraction,
        lr_decay_fraction=args.lr_decay_fraction,
        lambda_warmup_fraction=args.l0_warmup_fraction,
        scale_estimate_tokens=args.scale_estimate_tokens,
        buffer_tokens=args.buffer_tokens,
        checkpoint_every_tokens=None,
        log_every_steps=args.log_every_steps,
    )
    wall, cpu = time.monotonic(), time.process_time()
    trainer = Trainer(config, TensorActivations(train, name="sae-lens-side-by-side"))
    result = trainer.run()
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    sae = result.sae.eval()

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes, recon = sae(x)
        return codes, recon

    curve = [
        {
            "tokens": p.tokens,
            "l0": p.l0,
            "fvu_train": p.fvu,
            "l0_coefficient": p.l0_coefficient,
            "dead_fraction": p.dead_fraction,
        }
        for p in result.curve
    ]
    details = {
        "config": config.to_dict(),
        "final_l0_coefficient": trainer.l0_coefficient(trainer.step - 1),
        "dead_fraction_training": trainer.dead_fraction(),
        "passes_begun": result.passes,  # counts the buffer's read-ahead
        "sae": sae,  # kept for the sae_stats cross-check in main, dropped from the JSON
    }
    return Trained(forward, args.width, result.tokens, result.steps, wall, cpu, curve, details)


# ---------------------------------------------------------------------- SAELens' trainer
def train_saelens(args: argparse.Namespace, train: torch.Tensor) -> Trained:
    """SAELens' JumpReLUTrainingSAE trained by SAELens' SAETrainer.fit (no scope_guard)."""
    from sae_lens import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.mixing_buffer import mixing_buffer
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(args.seed)  # SAELens draws its init and its shuffles from the global RNG
    steps = args.token_budget // args.batch_size
    sae_kwargs: dict[str, Any] = {
        "d_in": int(train.shape[1]),
        "d_sae": args.width,
        "normalize_activations": args.normalize,
        "l0_coefficient": args.l0_coefficient,
        "l0_warm_up_steps": round(args.l0_warmup_fraction * steps),
        "jumprelu_sparsity_loss_mode": args.sparsity_mode,
        "target_l0": args.target_l0 if args.sparsity_mode == "quadratic" else None,
        "pre_act_loss_coefficient": args.pre_act_loss,
    }
    # Left out, SAELens' own defaults hold (bandwidth 0.05, initial threshold 0.01).
    if args.bandwidth is not None:
        sae_kwargs["jumprelu_bandwidth"] = args.bandwidth
    if args.init_threshold is not None:
        sae_kwargs["jumprelu_init_threshold"] = args.init_threshold
    trainer_kwargs: dict[str, Any] = {
        "total_training_samples": args.token_budget,
        "train_batch_size_samples": args.batch_size,
        "lr": args.lr,
        "lr_end": args.lr,  # "constant": the final decay starts from lr itself
        "lr_scheduler_name": "constant",
        "lr_warm_up_steps": max(1, round(args.lr_warmup_fraction * steps)),
        "lr_decay_steps": round(args.lr_decay_fraction * steps),
        "device": "cpu",
        "dead_feature_window": math.ceil(args.dead_after / args.batch_size),
        # No reset of the firing counts during the run: the curve below reads their increments.
        "feature_sampling_window": steps + 1,
        "n_checkpoints": max(0, steps // args.log_every_steps - 1),
        "logger": LoggingConfig(log_to_wandb=False),
        "n_batches_for_norm_estimate": math.ceil(args.scale_estimate_tokens / args.batch_size),
    }
    if args.adam_beta1 is not None:
        trainer_kwargs["adam_beta1"] = args.adam_beta1
    curve: list[dict[str, float]] = []
    seen = {"active": 0.0, "samples": 0.0}

    def record(checkpoint_path: Path | None) -> None:  # SAELens' checkpoint hook, no files
        del checkpoint_path
        active = float(trainer.act_freq_scores.sum())
        samples = float(trainer.n_frac_active_samples)
        if samples > seen["samples"]:
            curve.append(
                {
                    "tokens": trainer.n_training_samples,
                    "l0": (active - seen["active"]) / (samples - seen["samples"]),
                    "l0_coefficient": trainer.get_coefficients()["l0"],
                    "dead_fraction": float(trainer.dead_neurons.double().mean()),
                    "lr": trainer.optimizer.param_groups[0]["lr"],
                }
            )
        seen.update(active=active, samples=samples)

    wall, cpu = time.monotonic(), time.process_time()
    sae = JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(**sae_kwargs))
    batches = mixing_buffer(args.buffer_tokens, args.batch_size, cycled_chunks(train))
    trainer = SAETrainer(
        SAETrainerConfig(**trainer_kwargs), sae, batches, save_checkpoint_fn=record
    )
    sae = trainer.fit()  # folds the input scale into the weights: the SAE reads raw rows
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    record(None)
    sae.eval()

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = sae.encode(x)
        return codes, sae.decode(codes)

    details = {
        "sae_config": dict(sae_kwargs),
        "trainer_config": {k: v for k, v in trainer_kwargs.items() if k != "logger"},
        "defaults_used": {
            "jumprelu_bandwidth": sae.cfg.jumprelu_bandwidth,
            "jumprelu_init_threshold": sae.cfg.jumprelu_init_threshold,
            "apply_b_dec_to_input": sae.cfg.apply_b_dec_to_input,
            "decoder_init_norm": sae.cfg.decoder_init_norm,
            "adam_betas": list(trainer.optimizer.param_groups[0]["betas"]),
        },
        "dead_fraction_training": float(trainer.dead_neurons.double().mean()),
    }
    return Trained(
        forward, args.width, trainer.n_training_samples, trainer.n_training_steps, wall, cpu,
        curve, details,
    )  # fmt: skip


# ---------------------------------------------------------------------- results
def _same_setting(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("width", "batch_size", "token_budget", "train_tokens", "train_sha256", "heldout_sha256")
    return all(a.get(k) == b.get(k) for k in keys)


def compare(runs: dict[str, dict[str, Any]], reference: str) -> dict[str, Any]:
    """SAELens' step-loss FVU at the reference run's held-out L0, linear in log L0.

    Only runs on the same rows, budget, width and batch as the reference count; without two
    of them on either side of its L0 the value is ``None`` (never extrapolated).
    """
    ref = runs.get(reference)
    if ref is None:
        return {"reference": reference, "note": "no such run yet"}
    points = sorted(
        (
            r["heldout"]["mean_l0"],
            r["heldout"]["fvu"],
            label,
            r["heldout"].get("fvu_without_top_dim"),
        )
        for label, r in runs.items()
        if r["impl"] == "saelens" and r["sparsity_mode"] == "step" and _same_setting(r, ref)
    )
    l0 = ref["heldout"]["mean_l0"]
    out: dict[str, Any] = {
        "reference": reference,
        "reference_l0": l0,
        "reference_fvu": ref["heldout"]["fvu"],
        "reference_fvu_without_top_dim": ref["heldout"].get("fvu_without_top_dim"),
        "saelens_step_points": [{"label": p[2], "l0": p[0], "fvu": p[1]} for p in points],
        "saelens_step_fvu_at_reference_l0": None,
        "saelens_step_fvu_without_top_dim_at_reference_l0": None,
        "bracket": None,
    }
    for (l0_a, fvu_a, a, top_a), (l0_b, fvu_b, b, top_b) in itertools.pairwise(points):
        if l0_a <= l0 <= l0_b and l0_a > 0:
            t = 0.0 if l0_b == l0_a else math.log(l0 / l0_a) / math.log(l0_b / l0_a)
            out["saelens_step_fvu_at_reference_l0"] = fvu_a + t * (fvu_b - fvu_a)
            if top_a is not None and top_b is not None:
                out["saelens_step_fvu_without_top_dim_at_reference_l0"] = top_a + t * (
                    top_b - top_a
                )
            out["bracket"] = [a, b]
            break
    return out


def write_run(path: Path, label: str, record: dict[str, Any], reference: str) -> dict[str, Any]:
    """Merge one run into the results file and recompute the comparison."""
    data = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    data["runs"][label] = record
    data["comparison"] = compare(data["runs"], reference)
    data["table"] = [
        {
            "label": name,
            "impl": r["impl"],
            "fvu": r["heldout"]["fvu"],
            "fvu_without_top_dim": r["heldout"]["fvu_without_top_dim"],
            "mean_l0": r["heldout"]["mean_l0"],
            "dead_fraction": r["heldout"]["dead_fraction"],
            "wall_s": r["wall_s"],
            "tokens_per_s": r["tokens_per_s"],
        }
        for name, r in sorted(data["runs"].items())
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data


def _versions(impl: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("sae-lens",) if impl == "saelens" else ("scope-guard",):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--impl", choices=("ours", "saelens"), required=True)
    p.add_argument("--label", required=True, help="name of the run in the results file")
    p.add_argument("--cache", type=Path, default=Path("/root/.cache/scope_guard/sae_acts"))
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--reference", default="ours", help="the run whose L0 SAELens is matched at")
    p.add_argument("--train-tokens", type=int, default=1_000_000, help="distinct rows trained on")
    p.add_argument("--token-budget", type=int, default=None, help="default: --train-tokens")
    p.add_argument("--heldout-tokens", type=int, default=65_536)
    p.add_argument("--width", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lr-warmup-fraction", type=float, default=0.01)
    p.add_argument("--lr-decay-fraction", type=float, default=0.2)
    p.add_argument("--l0-warmup-fraction", type=float, default=0.05)
    p.add_argument("--l0-coefficient", type=float, default=0.5)
    p.add_argument("--target-l0", type=float, default=65.0, help="ours: the controller's target")
    p.add_argument("--bandwidth", type=float, default=None, help="default: each trainer's own")
    p.add_argument("--init-threshold", type=float, default=None, help="default: each's own")
    p.add_argument("--dead-after", type=int, default=30_000, help="tokens silent = dead")
    p.add_argument("--scale-estimate-tokens", type=int, default=16_384)
    p.add_argument("--buffer-tokens", type=int, default=65_536)
    p.add_argument("--log-every-steps", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    ours = p.add_argument_group("ours only")
    ours.add_argument("--outlier-dim-ratio", type=float, default=4.0, help="0: plain MSE")
    ours.add_argument("--dead-aux", type=float, default=0.1)
    lens = p.add_argument_group("saelens only")
    lens.add_argument("--sparsity-mode", choices=("step", "quadratic", "tanh"), default="step")
    lens.add_argument("--normalize", default="expected_average_only_in")
    lens.add_argument("--pre-act-loss", type=float, default=None)
    lens.add_argument("--adam-beta1", type=float, default=None, help="default: SAELens' 0.9")
    args = p.parse_args(argv)
    if args.token_budget is None:
        args.token_budget = args.train_tokens
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    slices = load_slices(args.cache, args.train_tokens, args.heldout_tokens)
    print(f"{slices.total_tokens} cached tokens; training on {args.train_tokens}", flush=True)
    train = train_ours if args.impl == "ours" else train_saelens
    run = train(args, slices.train)
    stats = heldout_stats(run.forward, slices.heldout, run.n_latents)
    details = dict(run.details)
    sae = details.pop("sae", None)
    if sae is not None:  # our path: the shared definition must agree with the project's
        from scope_guard.sae.stats import sae_stats

        check = sae_stats(sae, slices.heldout)
        if not math.isclose(check.fvu, stats["fvu"], rel_tol=1e-9) or not math.isclose(
            check.mean_l0, stats["mean_l0"], rel_tol=1e-12
        ):
            msg = f"heldout_stats {stats} disagrees with scope_guard's sae_stats {check}"
            raise SystemExit(msg)
        details["sae_stats_agrees"] = True
    record = {
        "impl": args.impl,
        "date": started,
        "command": f"{Path(sys.executable).parent.parent}/bin/python "
        + " ".join(["benchmarks/sae_lens_side_by_side.py", *sys.argv[1:]]),
        "versions": _versions(args.impl),
        "threads": args.threads,
        "load_average_before_after": [load_before[0], os.getloadavg()[0]],
        "cache": str(args.cache),
        "cache_source": slices.source,
        "cache_tokens": slices.total_tokens,
        "train_tokens": args.train_tokens,
        "train_sha256": sha256_of(slices.train),
        "heldout_sha256": sha256_of(slices.heldout),
        "width": args.width,
        "batch_size": args.batch_size,
        "token_budget": args.token_budget,
        "passes_over_train_tokens": args.token_budget / args.train_tokens,
        "lr": args.lr,
        "l0_coefficient": args.l0_coefficient,
        "sparsity_mode": args.sparsity_mode if args.impl == "saelens" else "step+controller",
        "tokens": run.tokens,
        "steps": run.steps,
        "wall_s": run.wall_s,
        "cpu_s": run.cpu_s,
        "seconds_per_step": run.wall_s / max(run.steps, 1),
        "tokens_per_s": run.tokens / run.wall_s,
        "heldout": stats,
        "details": details,
        "curve": run.curve,
    }
    data = write_run(args.results, args.label, record, args.reference)
    print(json.dumps({"label": args.label, **stats, "wall_s": run.wall_s}), flush=True)
    print(json.dumps(data["comparison"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
