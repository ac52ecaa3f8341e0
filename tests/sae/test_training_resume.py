"""Resume after an interruption computes exactly what an uninterrupted run computes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from training_builders import planted_activations, small_config

from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.reader import Reader
from scope_guard.reader.miniature import _corpus
from scope_guard.sae.training import ReaderActivations, TensorActivations, TextCorpus, Trainer

PARAMS = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _assert_same_run(a: Trainer, b: Trainer) -> None:
    assert a.model is not None
    assert b.model is not None
    for name in PARAMS:
        assert torch.equal(getattr(a.model, name), getattr(b.model, name)), name
    assert a.tokens == b.tokens
    assert a.step == b.step
    assert a.lambda_base == b.lambda_base
    assert a.n_resampled == b.n_resampled
    assert torch.equal(a.tokens_since_fired, b.tokens_since_fired)
    assert [(p.tokens, p.fvu, p.l0) for p in a.curve] == [(p.tokens, p.fvu, p.l0) for p in b.curve]


def test_resume_equals_uninterrupted_run_tensor_source(tmp_path: Path) -> None:
    x = planted_activations(n=9000).x
    # Resampling, the target-L0 controller and several buffer refills all happen mid-run.
    config = small_config(
        token_budget=24_000,
        buffer_tokens=2048,
        scale_estimate_tokens=1000,
        dead_after_tokens=2000,
        resample_every_tokens=3000,
        target_l0=4.0,
        log_every_steps=7,
    )
    whole = Trainer(config, TensorActivations(x, chunk_tokens=700))
    whole.run()

    first = Trainer(config, TensorActivations(x, chunk_tokens=700), checkpoint_dir=tmp_path / "ck")
    paused = first.run(max_steps=41)
    assert paused.stopped_by == "steps"
    assert first.tokens < config.token_budget
    resumed = Trainer.resume(tmp_path / "ck", config, TensorActivations(x, chunk_tokens=700))
    resumed.run()
    _assert_same_run(whole, resumed)


def test_interrupted_run_differs_from_a_fresh_restart(tmp_path: Path) -> None:
    # The test above can fail: starting over from step 0 on the resumed data gives other weights.
    x = planted_activations(n=6000).x
    config = small_config(token_budget=8000, buffer_tokens=2048, scale_estimate_tokens=1000)
    whole = Trainer(config, TensorActivations(x, chunk_tokens=700))
    whole.run()
    source = TensorActivations(x, chunk_tokens=700)
    source.restore({"pass": 0, "row": 2100})
    fresh = Trainer(config, source)
    fresh.run()
    assert whole.model is not None
    assert fresh.model is not None
    assert not torch.equal(whole.model.W_dec, fresh.model.W_dec)


def test_resume_equals_uninterrupted_run_reader_source(tmp_path: Path) -> None:
    reader = Reader.miniature(["resid_post@2"])
    corpus = TextCorpus.from_texts([" ".join(_corpus(3, seed)) for seed in range(12)])

    def source() -> ReaderActivations:
        return ReaderActivations(
            reader, "resid_post@2", corpus, context_size=24, windows_per_read=5
        )

    config = small_config(
        width=64, token_budget=2400, batch_size=64, buffer_tokens=256, scale_estimate_tokens=128
    )
    whole = Trainer(config, source())
    whole.run()
    assert whole.source.passes >= 2  # the cursor crosses a pass boundary too
    first = Trainer(config, source(), checkpoint_dir=tmp_path / "ck")
    first.run(max_steps=13)
    resumed = Trainer.resume(tmp_path / "ck", config, source())
    resumed.run()
    _assert_same_run(whole, resumed)


def test_resume_refuses_another_config_or_data(tmp_path: Path) -> None:
    x = planted_activations(n=3000).x
    config = small_config(token_budget=4000, buffer_tokens=1024, scale_estimate_tokens=500)
    Trainer(config, TensorActivations(x), checkpoint_dir=tmp_path / "ck").run(max_steps=2)
    changed = small_config(token_budget=4000, buffer_tokens=1024, scale_estimate_tokens=500, lr=0.5)
    with pytest.raises(ConfigError, match="lr"):
        Trainer.resume(tmp_path / "ck", changed, TensorActivations(x))
    with pytest.raises(ConfigError, match="different data"):
        Trainer.resume(tmp_path / "ck", config, TensorActivations(x[:100]))
    # Only when it stops may change.
    later = small_config(
        token_budget=4000, buffer_tokens=1024, scale_estimate_tokens=500, time_budget_s=60.0
    )
    Trainer.resume(tmp_path / "ck", later, TensorActivations(x))


def test_resume_without_checkpoint_is_an_artifact_error(tmp_path: Path) -> None:
    x = planted_activations(n=1000).x
    with pytest.raises(ArtifactError, match="no training checkpoint"):
        Trainer.resume(tmp_path / "none", small_config(), TensorActivations(x))
