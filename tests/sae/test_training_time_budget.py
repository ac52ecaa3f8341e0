"""A run stopped by its time budget still ends annealed: the learning rate decays over the last
``lr_decay_fraction`` of the time budget instead of being cut off at its full value."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import pytest
import torch
from training_builders import planted_activations, small_config

import scope_guard.sae.training.trainer as trainer_module
from scope_guard.sae.training import TensorActivations, Trainer


class StepClock:
    """A clock that advances a fixed amount at every reading: the run's timing is exact."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def monotonic(self) -> float:
        self.now += self.tick
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> StepClock:
    fake = StepClock(0.001)
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


def _trainer(tmp_path: Path | None = None, **overrides: object) -> Trainer:
    torch.manual_seed(0)
    planted = planted_activations(n=20_000, d_model=16, n_atoms=24)
    config = small_config(width=32, batch_size=128, log_every_steps=1, **overrides)
    return Trainer(config, TensorActivations(planted.x), checkpoint_dir=tmp_path)


def test_time_budget_moves_the_decay_and_ends_the_run_annealed(clock: StepClock) -> None:
    trainer = _trainer(token_budget=2_560_000, time_budget_s=2.0)
    result = trainer.run()
    first, end = trainer.decay_window
    assert result.stopped_by == "time"
    assert result.tokens < trainer.config.token_budget
    assert 0 < first < end == trainer.step
    assert result.curve[-1].lr < 0.05 * trainer.config.lr
    assert max(p.lr for p in result.curve) == pytest.approx(trainer.config.lr)


def test_token_budget_keeps_the_decay_over_the_token_budget(clock: StepClock) -> None:
    trainer = _trainer(token_budget=25_600, time_budget_s=10_000.0)
    result = trainer.run()
    total = trainer.config.total_steps
    assert trainer.decay_window == (total - round(0.2 * total), total)
    assert result.stopped_by == "tokens"
    assert result.steps == total


def test_resume_after_a_time_annealed_run_trains_on(clock: StepClock, tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "ckpt", token_budget=2_560_000, time_budget_s=2.0)
    trainer.run()
    assert trainer.decay_window[1] == trainer.step < trainer.config.total_steps
    more = dataclasses.replace(trainer.config, time_budget_s=4.0)
    for config in (more, dataclasses.replace(trainer.config, time_budget_s=None)):
        resumed = Trainer.resume(
            tmp_path / "ckpt", config, TensorActivations(trainer.source.activations)
        )
        total = config.total_steps
        assert resumed.decay_window == (total - round(0.2 * total), total)
        assert resumed.learning_rate(resumed.step) == pytest.approx(config.lr)
        start = resumed.step  # (the first resume's own checkpoint is where the second starts)
        assert resumed.run(max_steps=20).steps == start + 20  # it trains, at full lr again


def test_an_interrupted_time_decay_resumes_where_it_was(clock: StepClock, tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "ckpt", token_budget=2_560_000, time_budget_s=2.0)
    trainer.run()
    first, end = trainer.decay_window
    paused = _trainer(tmp_path / "ckpt2", token_budget=2_560_000, time_budget_s=2.0)
    paused.run(max_steps=(first + end) // 2)  # stopped mid-decay (as by an interrupt)
    assert paused.decay_window[0] < paused.step < paused.decay_window[1]
    resumed = Trainer.resume(
        tmp_path / "ckpt2", paused.config, TensorActivations(paused.source.activations)
    )
    assert resumed.decay_window == paused.decay_window
