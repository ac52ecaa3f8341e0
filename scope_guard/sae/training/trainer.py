"""The training loop: schedules, the sparsity controller, dead latents, checkpoints and resume.

One step: take a batch from the shuffling buffer, scale it, compute ``mse + lambda * L0`` with
the straight-through estimators, project the decoder gradient, take an Adam step, renormalise the
decoder rows. The learning rate warms up and decays linearly at the end; lambda warms up linearly
and, with ``target_l0`` set, is then steered multiplicatively toward that mean L0. Every state
that decides the next step is checkpointed, so a resumed run computes what an uninterrupted one
would have (same floats on the same machine and thread count).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from scope_guard.errors import ConfigError, InputError
from scope_guard.sae.jumprelu import JumpReLUSAE, SAEInfo
from scope_guard.sae.training.buffer import ShufflingBuffer
from scope_guard.sae.training.checkpoint import CheckpointData, read_checkpoint, write_checkpoint
from scope_guard.sae.training.config import TrainingConfig
from scope_guard.sae.training.model import TrainableJumpReLU
from scope_guard.sae.training.resampling import resample_latents
from scope_guard.sae.training.scaling import InputTransform
from scope_guard.sae.training.stream import ActivationSource

__all__ = ["CurvePoint", "Trainer", "TrainingResult"]

logger = logging.getLogger(__name__)

_LAMBDA_BOUNDS = (1e-8, 1e8)
_L0_EMA = 0.9
_PARAM_NAMES = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")


class CurvePoint(NamedTuple):
    """The training curve at one point, averaged over the steps since the previous point.

    Attributes:
        tokens: Training tokens consumed so far.
        fvu: Fraction of variance unexplained on the training batches.
        l0: Mean active latents per token.
        l0_coefficient: lambda at the last step.
        dead_fraction: Latents silent for ``dead_after_tokens`` or more.
        lr: Learning rate at the last step.
        tokens_per_s: Training throughput since the previous point (reading included).
    """

    tokens: int
    fvu: float
    l0: float
    l0_coefficient: float
    dead_fraction: float
    lr: float
    tokens_per_s: float


class TrainingResult(NamedTuple):
    """The outcome of :meth:`Trainer.run`.

    Attributes:
        sae: The trained SAE for raw activations (scale folded in), float32 on the CPU.
        tokens: Training tokens consumed.
        steps: Optimizer steps taken.
        stopped_by: ``"tokens"`` (budget reached), ``"time"`` or ``"steps"`` (asked to pause).
        curve: The training curve.
        scale: The single factor in the transform training applied to raw activations.
        passes: Passes over the data begun.
        n_resampled: Latents re-initialised as dead, in total.
        wall_s: Wall time spent in :meth:`Trainer.run`, over all resumed segments.
    """

    sae: JumpReLUSAE
    tokens: int
    steps: int
    stopped_by: str
    curve: list[CurvePoint]
    scale: float
    passes: int
    n_resampled: int
    wall_s: float


class Trainer:
    """Trains a JumpReLU SAE on an :class:`ActivationSource`.

    Args:
        config: The hyperparameters.
        source: Where the activations come from.
        info: Metadata for the exported SAE (``d_model`` and ``d_sae`` are filled in).
        checkpoint_dir: Where to write checkpoints (``None``: never).

    Raises:
        ConfigError: if ``config.width`` is below the source's ``d_model``.
    """

    def __init__(
        self,
        config: TrainingConfig,
        source: ActivationSource,
        *,
        info: SAEInfo | None = None,
        checkpoint_dir: str | Path | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.d_model = int(source.d_model)
        if config.width < self.d_model:
            msg = (
                f"width {config.width} is below d_model={self.d_model}: an SAE needs at least "
                "as many latents as the activations have dimensions"
            )
            raise ConfigError(msg)
        base = info or SAEInfo(d_model=self.d_model, d_sae=config.width)
        self.info = SAEInfo(
            d_model=self.d_model,
            d_sae=config.width,
            site=base.site,
            source=base.source,
            neuronpedia_id=None,
            model_name=base.model_name,
        )
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.buffer = ShufflingBuffer(
            config.buffer_tokens, torch.Generator().manual_seed(config.seed + 1)
        )
        self.resample_generator = torch.Generator().manual_seed(config.seed + 2)
        self.model: TrainableJumpReLU | None = None
        self.optimizer: torch.optim.Adam | None = None
        self.transform: InputTransform | None = None
        self.step = 0
        self.tokens = 0
        self.lambda_base = config.l0_coefficient
        self.l0_ema: float | None = None
        self.tokens_since_fired = torch.zeros(config.width, dtype=torch.float64)
        self.n_resampled = 0
        self.curve: list[CurvePoint] = []
        self.wall_s = 0.0
        # The steps over which the learning rate decays to zero: the last ``lr_decay_fraction``
        # of the token budget, moved earlier when the time budget will end the run first.
        decay = round(config.lr_decay_fraction * config.total_steps)
        self.decay_window = (config.total_steps - decay, config.total_steps)
        self._since_log = {"sq_err": 0.0, "sq_dev": 0.0, "l0": 0.0, "steps": 0.0}
        self._since_log_time = 0.0

    # ------------------------------------------------------------------ data
    def _refill(self) -> torch.Tensor:
        chunk = self.source.read_chunk()
        if chunk.ndim != 2 or chunk.shape[1] != self.d_model:
            msg = (
                f"the source gave rows of shape {tuple(chunk.shape)}, expected (n, {self.d_model})"
            )
            raise InputError(msg)
        if not bool(torch.isfinite(chunk).all()):
            bad = int((~torch.isfinite(chunk)).any(dim=1).sum())
            msg = (
                f"{bad} of {chunk.shape[0]} activation rows hold NaN or infinite values "
                f"(after {self.tokens} training tokens): check the reader's dtype (float16 "
                "overflows in Gemma) and the input"
            )
            raise InputError(msg)
        return chunk

    def _initialise(self) -> None:
        """Estimate the input scale from the stream's head, then build the model and optimizer."""
        cfg = self.config
        rows: list[torch.Tensor] = []
        have = 0
        while have < cfg.scale_estimate_tokens:
            chunk = self._refill()
            rows.append(chunk)
            have += int(chunk.shape[0])
        head = torch.cat(rows)
        target = cfg.normalize_to if cfg.normalize_to is not None else float(self.d_model)
        self.transform = InputTransform.estimate(
            head, target=target, center=cfg.center_inputs, outlier_dim_ratio=cfg.outlier_dim_ratio
        )
        b_dec = self.transform.apply(head).mean(dim=0)
        self.buffer.rows = head  # the estimation rows are trained on, not thrown away
        init_gen = torch.Generator().manual_seed(cfg.seed)
        self.model = TrainableJumpReLU(
            self.d_model,
            cfg.width,
            init_threshold=cfg.init_threshold,
            generator=init_gen,
            b_dec_init=b_dec,
        )
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2)
        )

    @property
    def scale(self) -> float:
        """The single factor of the input transform (1 before initialisation)."""
        return 1.0 if self.transform is None else self.transform.norm_factor

    def _transform(self) -> InputTransform:
        if self.transform is None:
            msg = "the trainer is not initialised: call run() first"
            raise ConfigError(msg)
        return self.transform

    def _parts(self) -> tuple[TrainableJumpReLU, torch.optim.Adam]:
        if self.model is None or self.optimizer is None:
            msg = "the trainer is not initialised: call run() first"
            raise ConfigError(msg)
        return self.model, self.optimizer

    # ------------------------------------------------------------------ schedules
    def learning_rate(self, step: int) -> float:
        """The learning rate at ``step``: linear warm-up, constant, linear decay to zero over
        :attr:`decay_window`."""
        cfg = self.config
        warm = max(1, round(cfg.lr_warmup_fraction * cfg.total_steps))
        factor = min(1.0, (step + 1) / warm)
        first, end = self.decay_window
        if end > first and step >= first:
            factor *= max(0.0, (end - step) / (end - first))
        return cfg.lr * factor

    def _fit_decay_to_time(self, seconds_per_step: float) -> None:
        """When the time budget will stop the run before the token budget does, start the
        learning-rate decay at ``1 - lr_decay_fraction`` of the time budget and end it (and the
        run) at the step the budget is expected to allow, so that a run cut by time still ends
        annealed instead of at full learning rate. The window is set once and checkpointed."""
        cfg = self.config
        budget = cfg.time_budget_s
        first, end = self.decay_window
        if budget is None or not cfg.lr_decay_fraction or self.step >= first:
            return
        if end != cfg.total_steps or self.wall_s < (1 - cfg.lr_decay_fraction) * budget:
            return
        left = int((budget - self.wall_s) / max(seconds_per_step, 1e-9))
        if self.step + left < end:
            self.decay_window = (self.step, self.step + max(1, left))
            logger.info(
                "the time budget ends the run first: learning rate decays over steps %d-%d",
                *self.decay_window,
            )

    def l0_coefficient(self, step: int) -> float:
        """lambda at ``step``: the linear warm-up times the (possibly steered) base value."""
        warm = round(self.config.lambda_warmup_fraction * self.config.total_steps)
        factor = 1.0 if warm == 0 else min(1.0, (step + 1) / warm)
        return self.lambda_base * factor

    def _steer_lambda(self, l0: float) -> None:
        cfg = self.config
        self.l0_ema = l0 if self.l0_ema is None else _L0_EMA * self.l0_ema + (1 - _L0_EMA) * l0
        warm = round(cfg.lambda_warmup_fraction * cfg.total_steps)
        if cfg.target_l0 is None or self.step < warm:
            return
        ratio = max(self.l0_ema, 1e-3) / cfg.target_l0
        updated = self.lambda_base * math.exp(cfg.target_l0_gain * math.log(ratio))
        low = max(cfg.l0_coefficient / cfg.target_l0_band, _LAMBDA_BOUNDS[0])
        high = min(cfg.l0_coefficient * cfg.target_l0_band, _LAMBDA_BOUNDS[1])
        self.lambda_base = min(max(updated, low), high)

    # ------------------------------------------------------------------ dead latents
    def dead_fraction(self) -> float:
        """Share of latents silent for at least ``dead_after_tokens`` training tokens."""
        dead = self.tokens_since_fired >= self.config.dead_after_tokens
        return float(dead.double().mean())

    def _resample(self, x: torch.Tensor, recon: torch.Tensor) -> None:
        """Resample the dead latents (see :mod:`.resampling`) when there are enough of them."""
        cfg, (model, optimizer) = self.config, self._parts()
        dead = torch.nonzero(self.tokens_since_fired >= cfg.dead_after_tokens).flatten()
        if dead.numel() == 0 or dead.numel() <= cfg.resample_min_fraction * cfg.width:
            return
        if resample_latents(
            model, optimizer, dead, x, recon, cfg.init_threshold, self.resample_generator
        ):
            self.tokens_since_fired[dead] = 0.0
            self.n_resampled += int(dead.numel())
            logger.info("resampled %d dead latents at %d tokens", dead.numel(), self.tokens)

    # ------------------------------------------------------------------ one step
    def _train_step(self) -> None:
        cfg, (model, opt) = self.config, self._parts()
        x = self._transform().apply(self.buffer.take(cfg.batch_size, self._refill))
        lr, lam = self.learning_rate(self.step), self.l0_coefficient(self.step)
        for group in opt.param_groups:
            group["lr"] = lr
        dead = None
        if cfg.dead_aux_coefficient > 0:
            dead = torch.nonzero(self.tokens_since_fired >= cfg.dead_after_tokens).flatten()
        out = model.losses(
            x, lam, cfg.bandwidth, dead=dead, aux_coefficient=cfg.dead_aux_coefficient
        )
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        model.project_decoder_grad()
        opt.step()
        model.apply_constraints()
        with torch.no_grad():
            fired = (out.codes > 0).any(dim=0)
            self.tokens_since_fired += x.shape[0]
            self.tokens_since_fired[fired] = 0.0
            self._since_log["sq_err"] += float((out.reconstruction - x).pow(2).sum())
            self._since_log["sq_dev"] += float((x - x.mean(dim=0)).pow(2).sum())
            self._since_log["l0"] += float(out.l0)
            self._since_log["steps"] += 1
        before = self.tokens
        self.step += 1
        self.tokens += int(x.shape[0])
        self._steer_lambda(float(out.l0.detach()))
        every = cfg.resample_every_tokens
        if (
            cfg.resample_dead
            and self.tokens // every > before // every
            and self.tokens <= cfg.resample_until_fraction * cfg.token_budget
        ):
            self._resample(x, out.reconstruction)

    def _log_point(self, elapsed: float) -> CurvePoint:
        acc = self._since_log
        steps = max(acc["steps"], 1.0)
        point = CurvePoint(
            tokens=self.tokens,
            fvu=acc["sq_err"] / acc["sq_dev"] if acc["sq_dev"] > 0 else float("nan"),
            l0=acc["l0"] / steps,
            l0_coefficient=self.l0_coefficient(self.step - 1),
            dead_fraction=self.dead_fraction(),
            lr=self.learning_rate(self.step - 1),
            tokens_per_s=(acc["steps"] * self.config.batch_size) / max(elapsed, 1e-9),
        )
        self._since_log = dict.fromkeys(acc, 0.0)
        self.curve.append(point)
        return point

    # ------------------------------------------------------------------ the loop
    def run(
        self,
        *,
        on_progress: Callable[[CurvePoint], None] | None = None,
        max_steps: int | None = None,
    ) -> TrainingResult:
        """Train until the token budget, the time budget, or ``max_steps`` more steps.

        On ``KeyboardInterrupt`` a checkpoint is written (when a folder is set) before the
        interrupt propagates, so ``--resume`` continues from the last finished step.

        Args:
            on_progress: Called with every new curve point.
            max_steps: Stop after this many steps of this call (for pausing; checkpointed).
        """
        cfg = self.config
        start = time.monotonic()
        wall_before = self.wall_s
        if self.model is None:
            self._initialise()
        last_log = time.monotonic()
        steps_here = 0
        stopped_by = "tokens"
        every_ckpt = cfg.checkpoint_every_tokens
        try:
            while self.tokens < cfg.token_budget:
                if max_steps is not None and steps_here >= max_steps:
                    stopped_by = "steps"
                    break
                if cfg.time_budget_s is not None and (
                    self.wall_s >= cfg.time_budget_s or self.step >= self.decay_window[1]
                ):
                    stopped_by = "time"
                    break
                before = self.tokens
                self._train_step()
                steps_here += 1
                self.wall_s = wall_before + time.monotonic() - start
                self._fit_decay_to_time((self.wall_s - wall_before) / steps_here)
                if self.step % cfg.log_every_steps == 0:
                    now = time.monotonic()
                    point = self._log_point(now - last_log)
                    last_log = now
                    if on_progress is not None:
                        on_progress(point)
                if every_ckpt and self.tokens // every_ckpt > before // every_ckpt:
                    self.save_checkpoint()
        except KeyboardInterrupt:
            self.wall_s = wall_before + time.monotonic() - start
            if self.checkpoint_dir is not None:
                self.save_checkpoint()
                logger.warning("interrupted: checkpoint written to %s", self.checkpoint_dir)
            raise
        self.wall_s = wall_before + time.monotonic() - start
        if self._since_log["steps"] and stopped_by != "steps":  # a pause continues the interval
            point = self._log_point(time.monotonic() - last_log)
            if on_progress is not None:
                on_progress(point)
        if self.checkpoint_dir is not None:
            self.save_checkpoint()
        return TrainingResult(
            sae=self.export(),
            tokens=self.tokens,
            steps=self.step,
            stopped_by=stopped_by,
            curve=list(self.curve),
            scale=self.scale,
            passes=self.source.passes,
            n_resampled=self.n_resampled,
            wall_s=self.wall_s,
        )

    def export(self) -> JumpReLUSAE:
        """The SAE as trained so far, for raw activations."""
        if self.model is None:
            msg = "nothing trained yet: call run() first"
            raise ConfigError(msg)
        return self.model.export(self._transform(), self.info)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_data(self) -> CheckpointData:
        """Everything needed to continue this run exactly."""
        if self.model is None or self.optimizer is None:
            msg = "nothing to checkpoint before the first step"
            raise ConfigError(msg)
        tensors: dict[str, torch.Tensor] = {
            f"model.{name}": getattr(self.model, name).detach() for name in _PARAM_NAMES
        }
        opt_state = self.optimizer.state_dict()
        for index, state in opt_state["state"].items():
            for key, value in state.items():
                tensors[f"adam.{index}.{key}"] = torch.as_tensor(value)
        tensors.update(self.buffer.state_tensors())
        tensors["resample.generator"] = self.resample_generator.get_state()
        tensors["tokens_since_fired"] = self.tokens_since_fired
        tensors["transform.center"] = self._transform().center
        tensors["transform.scale"] = self._transform().scale
        groups = [{k: v for k, v in g.items() if k != "params"} for g in opt_state["param_groups"]]
        meta = {
            "config": self.config.to_dict(),
            "source": self.source.describe(),
            "source_state": self.source.state(),
            "step": self.step,
            "tokens": self.tokens,
            "lambda_base": self.lambda_base,
            "l0_ema": self.l0_ema,
            "scale": self.scale,
            "n_resampled": self.n_resampled,
            "wall_s": self.wall_s,
            "decay_window": list(self.decay_window),
            "curve": [p._asdict() for p in self.curve],
            "since_log": self._since_log,
            "adam_param_groups": groups,
        }
        return CheckpointData(tensors=tensors, meta=meta)

    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint to :attr:`checkpoint_dir` (no-op without one)."""
        if self.checkpoint_dir is None or self.model is None:
            return None
        path = write_checkpoint(self.checkpoint_dir, self.checkpoint_data())
        logger.info("checkpoint at %d tokens written to %s", self.tokens, path)
        return path

    @classmethod
    def resume(
        cls,
        checkpoint_dir: str | Path,
        config: TrainingConfig,
        source: ActivationSource,
        *,
        info: SAEInfo | None = None,
    ) -> Trainer:
        """A trainer that continues the run checkpointed in ``checkpoint_dir``.

        Raises:
            ArtifactError: the checkpoint is missing or unreadable.
            ConfigError: ``config`` or the source differs from the checkpointed run in anything
                that changes the result.
        """
        data = read_checkpoint(checkpoint_dir)
        meta, tensors = data.meta, data.tensors
        saved = TrainingConfig.from_dict(meta["config"])
        changed = config.differences(saved)
        if changed:
            msg = f"cannot resume with a different config: {', '.join(changed)} changed"
            raise ConfigError(msg)
        if meta["source"] != source.describe():
            msg = (
                "cannot resume on different data: the checkpoint was trained on "
                f"{meta['source']}, this run reads {source.describe()}"
            )
            raise ConfigError(msg)
        trainer = cls(config, source, info=info, checkpoint_dir=checkpoint_dir)
        model = TrainableJumpReLU(
            trainer.d_model,
            config.width,
            init_threshold=config.init_threshold,
            generator=torch.Generator().manual_seed(config.seed),
        )
        with torch.no_grad():
            for name in _PARAM_NAMES:
                getattr(model, name).copy_(tensors[f"model.{name}"])
        optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, betas=(config.adam_beta1, config.adam_beta2)
        )
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("adam."):
                _, index, field = key.split(".", 2)
                state.setdefault(int(index), {})[field] = value
        groups = []
        for i, group in enumerate(meta["adam_param_groups"]):
            restored = dict(group)
            restored["betas"] = tuple(restored["betas"])
            restored["params"] = list(optimizer.state_dict()["param_groups"][i]["params"])
            groups.append(restored)
        optimizer.load_state_dict({"state": state, "param_groups": groups})
        trainer.model, trainer.optimizer = model, optimizer
        trainer.buffer.load_state_tensors(tensors)
        trainer.resample_generator.set_state(tensors["resample.generator"])
        trainer.tokens_since_fired = tensors["tokens_since_fired"].clone()
        trainer.step, trainer.tokens = int(meta["step"]), int(meta["tokens"])
        trainer.lambda_base = float(meta["lambda_base"])
        trainer.l0_ema = None if meta["l0_ema"] is None else float(meta["l0_ema"])
        trainer.transform = InputTransform(
            center=tensors["transform.center"].clone(),
            scale=tensors["transform.scale"].clone(),
            norm_factor=float(meta["scale"]),
        )
        trainer.n_resampled = int(meta["n_resampled"])
        trainer.wall_s = float(meta["wall_s"])
        if "decay_window" in meta:  # checkpoints before it decayed over the token budget
            first, end = (int(v) for v in meta["decay_window"])
            # A window the time budget moved holds only while that decay is under way with a
            # time budget to end it; a run it already finished (or one resumed without a time
            # budget) continues towards its token budget, the decay laid out over it again.
            timed = end != config.total_steps
            if not timed or (config.time_budget_s is not None and trainer.step < end):
                trainer.decay_window = (first, end)
        trainer.curve = [CurvePoint(**p) for p in meta["curve"]]
        trainer._since_log = {k: float(v) for k, v in meta["since_log"].items()}
        source.restore(meta["source_state"])
        logger.info(
            "resumed at %d tokens (step %d) from %s", trainer.tokens, trainer.step, checkpoint_dir
        )
        return trainer
