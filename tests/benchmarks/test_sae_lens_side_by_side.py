"""The side-by-side benchmark's shared parts, and its ``--impl ours`` path on a tiny cache."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from benchmarks.sae_lens_side_by_side import compare, heldout_stats, load_slices, main
from scope_guard.sae import JumpReLUSAE, SAEInfo
from scope_guard.sae.stats import sae_stats


def _write_cache(folder: Path, x: torch.Tensor, shard: int) -> None:
    """The format ``train_sae_gemma3`` writes: ``meta.json`` plus bf16 shards."""
    folder.mkdir(parents=True)
    names = []
    for i, start in enumerate(range(0, x.shape[0], shard)):
        names.append(f"shard_{i:04d}.pt")
        torch.save(x[start : start + shard].bfloat16().clone(), folder / names[-1])
    meta = {"source": {"kind": "synthetic"}, "state": {}, "read_s": 0.0, "shards": names}
    (folder / "meta.json").write_text(json.dumps(meta))


def _planted(n: int, d_model: int = 8, k: int = 24, seed: int = 0) -> torch.Tensor:
    """Sparse codes times unit directions, a large mean, one loud dimension."""
    gen = torch.Generator().manual_seed(seed)
    D = torch.randn(k, d_model, generator=gen)
    D /= D.norm(dim=1, keepdim=True)
    codes = torch.rand(n, k, generator=gen) * (torch.rand(n, k, generator=gen) < 3 / k)
    x = 3 * codes @ D + 5.0
    x[:, 2] += 4 * torch.randn(n, generator=gen)
    return x


def _random_sae(d_model: int = 8, d_sae: int = 16) -> JumpReLUSAE:
    gen = torch.Generator().manual_seed(3)
    return JumpReLUSAE(
        W_enc=torch.randn(d_model, d_sae, generator=gen),
        W_dec=torch.randn(d_sae, d_model, generator=gen),
        b_enc=0.1 * torch.randn(d_sae, generator=gen),
        b_dec=0.1 * torch.randn(d_model, generator=gen),
        threshold=0.5 + torch.rand(d_sae, generator=gen),
        info=SAEInfo(d_model=d_model, d_sae=d_sae),
    )


def test_heldout_stats_match_sae_stats() -> None:
    sae = _random_sae()
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(1)).bfloat16()

    def forward(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes, recon = sae(rows)
        return codes, recon

    mine, theirs = heldout_stats(forward, x, 16, batch_size=64), sae_stats(sae, x)
    assert mine["fvu"] == pytest.approx(theirs.fvu, rel=1e-12)
    assert mine["mean_l0"] == pytest.approx(theirs.mean_l0, rel=1e-12)
    assert mine["dead_fraction"] == theirs.dead_fraction
    assert mine["n_tokens"] == 300


def test_fvu_without_top_dim_by_hand() -> None:
    # Variances 4 and 1; the reconstruction errs by 1 in dimension 0, by 0.5 in dimension 1.
    x = torch.tensor([[2.0, 1.0], [-2.0, -1.0]])
    err = torch.tensor([1.0, 0.5])

    def forward(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor([[1.0, 0.0, 0.0]]).expand(rows.shape[0], 3), rows + err

    stats = heldout_stats(forward, x, 3)
    assert stats["top_dim"] == 0
    assert stats["fvu"] == pytest.approx((2 * 1.0 + 2 * 0.25) / (8 + 2))
    assert stats["fvu_without_top_dim"] == pytest.approx(0.5 / 2)
    assert stats["mean_l0"] == 1.0
    assert stats["dead_fraction"] == pytest.approx(2 / 3)


def _run(impl: str, l0: float, fvu: float, sha: str = "a", mode: str = "step") -> dict:
    setting = {"width": 4, "batch_size": 2, "token_budget": 10, "train_tokens": 10}
    return {
        **setting,
        "train_sha256": sha,
        "heldout_sha256": "h",
        "impl": impl,
        "sparsity_mode": mode,
        "heldout": {"mean_l0": l0, "fvu": fvu, "fvu_without_top_dim": 2 * fvu},
    }


def test_compare_interpolates_in_log_l0_and_never_extrapolates() -> None:
    runs = {
        "ours": _run("ours", math.sqrt(40 * 80), 0.05, mode="step+controller"),
        "lo": _run("saelens", 40, 0.20),
        "hi": _run("saelens", 80, 0.10),
        "far": _run("saelens", 20, 0.30),
        "other-rows": _run("saelens", 50, 0.0, sha="b"),
        "quad": _run("saelens", 55, 0.0, mode="quadratic"),
    }
    out = compare(runs, "ours")
    assert out["saelens_step_fvu_at_reference_l0"] == pytest.approx(0.15)
    assert out["saelens_step_fvu_without_top_dim_at_reference_l0"] == pytest.approx(0.30)
    assert out["bracket"] == ["lo", "hi"]
    assert [p["label"] for p in out["saelens_step_points"]] == ["far", "lo", "hi"]
    del runs["hi"]
    assert compare(runs, "ours")["saelens_step_fvu_at_reference_l0"] is None


def test_slices_refuse_overlap(tmp_path: Path) -> None:
    _write_cache(tmp_path / "acts", _planted(1000), shard=300)
    slices = load_slices(tmp_path / "acts", 900, 100)
    assert slices.train.shape == (900, 8)
    assert slices.heldout.shape == (100, 8)
    assert slices.total_tokens == 1000
    with pytest.raises(SystemExit, match="too few"):
        load_slices(tmp_path / "acts", 901, 100)


def test_ours_end_to_end(tmp_path: Path) -> None:
    x = _planted(3000)
    _write_cache(tmp_path / "acts", x, shard=700)
    results = tmp_path / "out.json"
    common = ["--cache", str(tmp_path / "acts"), "--results", str(results), "--threads", "1"]
    sizes = ["--train-tokens", "2048", "--token-budget", "4096", "--heldout-tokens", "512"]
    small = ["--width", "32", "--batch-size", "64", "--scale-estimate-tokens", "256"]
    small += ["--buffer-tokens", "512", "--log-every-steps", "16", "--dead-after", "1024"]
    assert (
        main(["--impl", "ours", "--label", "ours", "--target-l0", "5", *common, *sizes, *small])
        == 0
    )
    data = json.loads(results.read_text())
    run = data["runs"]["ours"]
    assert run["tokens"] == 4096
    assert run["steps"] == 64
    assert run["passes_over_train_tokens"] == 2
    assert run["details"]["sae_stats_agrees"] is True
    assert run["heldout"]["n_tokens"] == 512
    assert run["heldout"]["top_dim"] == 2
    assert run["heldout"]["fvu"] < 0.5  # it learned: an untrained SAE is near 1 or above
    assert run["train_sha256"] != run["heldout_sha256"]
    assert data["comparison"]["reference_l0"] == run["heldout"]["mean_l0"]
    assert data["comparison"]["saelens_step_fvu_at_reference_l0"] is None
    assert [row["label"] for row in data["table"]] == ["ours"]
