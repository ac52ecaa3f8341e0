"""Hyperparameters of a JumpReLU SAE training run, checked when they are set.

Defaults follow the Gemma Scope recipe (Rajamanoharan et al. 2024; Lieberum et al. 2024) where a
CPU run of a few million tokens allows it: Adam with ``beta1 = 0``, thresholds initialised at
0.001, a rectangle kernel for the straight-through estimators, a linear warm-up of the sparsity
coefficient, inputs scaled to a fixed mean squared norm. Where a short run needs more (a larger
learning rate and bandwidth, a target-L0 controller, a loss that revives dead latents) or real
residual streams do (centred inputs, outlier dimensions weighted down) the field says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from scope_guard.errors import ConfigError

__all__ = ["TrainingConfig"]


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"TrainingConfig.{name} must be an integer >= {minimum}, got {value!r}"
        raise ConfigError(msg)


def _positive_float(name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        msg = f"TrainingConfig.{name} must be a finite number {bound}, got {value!r}"
        raise ConfigError(msg)


def _fraction(name: str, value: Any) -> None:
    _positive_float(name, value, allow_zero=True)
    if value > 1:
        msg = f"TrainingConfig.{name} must lie in [0, 1], got {value!r}"
        raise ConfigError(msg)


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides what a training run computes (budgets included).

    Two runs with equal configs, equal activations and equal seeds produce the same SAE; a run
    resumed from a checkpoint refuses a config that differs in anything but ``time_budget_s``
    and ``checkpoint_every_tokens``.
    """

    width: int
    """Number of latents ``d_sae``; at least the activations' ``d_model``."""

    token_budget: int = 2_000_000
    """Training tokens (activation vectors) to consume; the schedules are laid out over it."""

    batch_size: int = 1024
    """Tokens per optimizer step."""

    lr: float = 2e-3
    """Adam learning rate (Gemma Scope: 7e-5 over billions of tokens; a CPU run of a few million
    tokens needs more: 2e-3 reached a held-out FVU of 0.04 at L0 51 on Gemma 3 270M in 2.8M)."""

    adam_beta1: float = 0.0
    """Adam's first-moment decay; 0 as in the JumpReLU paper."""

    adam_beta2: float = 0.999
    """Adam's second-moment decay."""

    lr_warmup_fraction: float = 0.01
    """Share of the steps over which the learning rate rises linearly from 0."""

    lr_decay_fraction: float = 0.2
    """Share of the steps, at the end, over which the learning rate decays linearly to 0."""

    l0_coefficient: float = 5.0
    """Sparsity coefficient lambda of the L0 term (the starting value when ``target_l0`` is set).
    Centred inputs are scaled to a fixed mean squared norm, so one value means roughly the same
    across models: on Gemma 3 270M at 4096 latents, lambda 5 brought the mean L0 to 80 in 162k
    tokens (uncentred, the scale of the earlier runs, 0.029 gave 50)."""

    lambda_warmup_fraction: float = 0.05
    """Share of the steps over which lambda rises linearly from 0 to its value."""

    target_l0: float | None = None
    """When set, lambda is steered after its warm-up so that the mean L0 approaches this value."""

    target_l0_gain: float = 0.005
    """Per step, lambda is multiplied by ``exp(-gain * log(L0_ema / target_l0))``. The
    thresholds answer a change of lambda hundreds of steps late, so a large gain overshoots
    (0.02 on Gemma 3 270M: L0 fell to 14 for a target of 50, then lambda collapsed to 1e-8)."""

    target_l0_band: float = 10.0
    """The controller keeps lambda within this factor of ``l0_coefficient``, either way."""

    bandwidth: float = 0.05
    """Width epsilon of the rectangle kernel of the straight-through estimators, in scaled units
    (each input dimension of order one). The paper's 0.001 lets a threshold learn only from the
    rare pre-activations within 0.0005 of it, which over a short run is too rare a signal."""

    init_threshold: float = 0.001
    """Initial JumpReLU threshold of every latent (scaled units)."""

    normalize_to: float | None = None
    """Mean squared norm the (centred, weighted) inputs are scaled to (``None``: ``d_model``)."""

    center_inputs: bool = True
    """Subtract the inputs' mean (estimated with the scale, then fixed) before the SAE during
    training; export folds it into the biases. Residual streams carry a mean far larger than
    their spread; uncentred, it dominates every encoder gradient."""

    outlier_dim_ratio: float | None = 4.0
    """Weight down, in the training loss, every dimension whose spread exceeds this multiple of
    the median dimension's, to that spread (``None``: plain MSE). Gemma 3 270M's layer-9 stream
    has one dimension with ~80% of the variance, which the next layer's RMSNorm reads with a
    gain ~15 times below the median: plain MSE spends the SAE on it."""

    dead_aux_coefficient: float = 0.1
    """Weight of the dead latents' pre-activation loss (``ReLU(threshold - pre)`` summed over
    the dead latents), the only gradient that reaches them; 0 turns it off. Adam's second
    moments still remember the latent's live gradients, so too small a value does nothing for
    a thousand steps: 0.1 revived 90% of a planted test's killed latents in 50 steps, 0.01 half
    in 100."""

    scale_estimate_tokens: int = 16_384
    """Tokens used to estimate the input scale (from the head of the stream)."""

    buffer_tokens: int = 65_536
    """Capacity of the shuffling buffer, in tokens."""

    dead_after_tokens: int = 250_000
    """A latent that has not fired for this many training tokens counts as dead."""

    resample_dead: bool = False
    """Also re-initialise dead latents from badly reconstructed inputs when too many are dead
    (off by default: on Gemma 3 270M many resampled latents died again, 37,752 resamplings in
    2.8M tokens; the pre-activation loss revives them without a jump)."""

    resample_every_tokens: int = 250_000
    """How often the dead latents are checked for resampling."""

    resample_min_fraction: float = 0.01
    """Resample only when more than this share of the latents is dead."""

    resample_until_fraction: float = 0.7
    """No resampling after this share of the budget, so resampled latents have time to train."""

    seed: int = 0
    """Seed of the initialisation, the data order, the shuffling buffer and the resampling."""

    time_budget_s: float | None = None
    """Stop (and save) after this many seconds of wall time, even before ``token_budget``. When
    it will stop the run first, the learning-rate decay moves to its last ``lr_decay_fraction``
    (at the speed measured so far), so that a run cut by time still ends annealed."""

    checkpoint_every_tokens: int | None = 500_000
    """Write a resumable checkpoint this often (``None``: only at the end or on interruption)."""

    log_every_steps: int = 20
    """Steps between two points of the training curve (FVU, L0, lambda, dead share)."""

    def __post_init__(self) -> None:
        for name in ("width", "token_budget", "batch_size", "scale_estimate_tokens"):
            _positive_int(name, getattr(self, name))
        for name in ("buffer_tokens", "dead_after_tokens", "resample_every_tokens"):
            _positive_int(name, getattr(self, name))
        _positive_int("log_every_steps", self.log_every_steps)
        _positive_int("seed", self.seed, minimum=0)
        for name in ("lr", "bandwidth", "init_threshold", "target_l0_gain", "target_l0_band"):
            _positive_float(name, getattr(self, name))
        _positive_float("l0_coefficient", self.l0_coefficient, allow_zero=True)
        for name in ("lr_warmup_fraction", "lr_decay_fraction", "lambda_warmup_fraction"):
            _fraction(name, getattr(self, name))
        for name in ("adam_beta1", "adam_beta2", "resample_min_fraction"):
            _fraction(name, getattr(self, name))
        _fraction("resample_until_fraction", self.resample_until_fraction)
        if self.adam_beta2 >= 1:
            msg = f"TrainingConfig.adam_beta2 must be < 1, got {self.adam_beta2!r}"
            raise ConfigError(msg)
        if self.lr_warmup_fraction + self.lr_decay_fraction > 1:
            msg = "TrainingConfig.lr_warmup_fraction + lr_decay_fraction must not exceed 1"
            raise ConfigError(msg)
        if self.target_l0 is not None:
            _positive_float("target_l0", self.target_l0)
        if self.target_l0_band < 1:
            msg = f"TrainingConfig.target_l0_band must be >= 1, got {self.target_l0_band!r}"
            raise ConfigError(msg)
        if self.outlier_dim_ratio is not None:
            _positive_float("outlier_dim_ratio", self.outlier_dim_ratio)
        _positive_float("dead_aux_coefficient", self.dead_aux_coefficient, allow_zero=True)
        if not isinstance(self.center_inputs, bool):
            msg = f"TrainingConfig.center_inputs must be a bool, got {self.center_inputs!r}"
            raise ConfigError(msg)
        if self.normalize_to is not None:
            _positive_float("normalize_to", self.normalize_to)
        if self.time_budget_s is not None:
            _positive_float("time_budget_s", self.time_budget_s)
        if self.checkpoint_every_tokens is not None:
            _positive_int("checkpoint_every_tokens", self.checkpoint_every_tokens)
        if self.buffer_tokens < 2 * self.batch_size:
            msg = (
                f"TrainingConfig.buffer_tokens={self.buffer_tokens} must hold at least two "
                f"batches (2 * batch_size = {2 * self.batch_size})"
            )
            raise ConfigError(msg)

    @property
    def total_steps(self) -> int:
        """Optimizer steps the token budget allows (at least one)."""
        return max(1, self.token_budget // self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """The inverse of :meth:`to_dict`; unknown keys are refused with a :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            msg = f"unknown TrainingConfig fields {unknown}; valid: {sorted(known)}"
            raise ConfigError(msg)
        return cls(**data)

    # Fields that may differ between a checkpoint and the run that resumes it: they change
    # when the run stops or writes, never what it computes.
    RESUMABLE_CHANGES = ("time_budget_s", "checkpoint_every_tokens")

    def differences(self, other: TrainingConfig) -> list[str]:
        """Names of the fields that differ from ``other`` and would change the result."""
        return [
            f.name
            for f in fields(self)
            if f.name not in self.RESUMABLE_CHANGES
            and getattr(self, f.name) != getattr(other, f.name)
        ]
