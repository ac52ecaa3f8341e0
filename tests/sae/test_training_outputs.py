"""What a run leaves behind: both formats reload through load_sae and encode like the trainer."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from training_builders import planted_activations, small_config

from scope_guard.reader import Reader
from scope_guard.reader.miniature import _corpus
from scope_guard.sae import load_sae
from scope_guard.sae.jumprelu import JumpReLUSAE, SAEInfo
from scope_guard.sae.training import (
    TensorActivations,
    TextCorpus,
    Trainer,
    load_explanations,
    train_sae,
)
from scope_guard.sae.training.evaluation import delta_cross_entropy, first_windows, load_causal_lm
from scope_guard.sae.training.outputs import SAELENS_SUBFOLDER
from scope_guard.sae.training.stream import read_windows
from scope_guard.sae.writers import save_gemma_scope_2, save_saelens
from scope_guard.sites import Site


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader.miniature(["resid_post@2"])


def _corpus_texts(n: int, first_seed: int = 0) -> TextCorpus:
    return TextCorpus.from_texts([" ".join(_corpus(4, s)) for s in range(first_seed, n)])


def _trainer_view(trainer: Trainer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The trainer's own codes (training units) and reconstruction (raw units) of ``x``."""
    model, transform = trainer.model, trainer.transform
    assert model is not None
    assert transform is not None
    codes = model.encode_scaled(transform.apply(x))
    recon = (codes @ model.W_dec + model.b_dec) / transform.scale + transform.center
    return codes, recon.detach()


@pytest.mark.parametrize("outlier_dim_ratio", [None, 1.5])
def test_saved_sae_encodes_like_the_trainer_in_both_formats(
    tmp_path: Path, outlier_dim_ratio: float | None
) -> None:
    planted = planted_activations(n=4000)
    x = planted.x * 37.0  # raw activations far from the training scale: the fold must be right
    x[:, 3] = 50.0 * x[:, 3] + 900.0  # a massive dimension, as in real residual streams
    info = SAEInfo(d_model=24, d_sae=96, site=Site.parse("resid_post@4"), model_name="planted")
    config = small_config(token_budget=6000, outlier_dim_ratio=outlier_dim_ratio)
    trainer = Trainer(config, TensorActivations(x), info=info)
    trainer.run()
    assert trainer.transform is not None
    assert abs(trainer.scale - 1.0) > 0.5
    weighted = trainer.transform.scale < trainer.scale * 0.999
    assert bool(weighted[3]) == (outlier_dim_ratio is not None)
    own, recon = _trainer_view(trainer, x[:500])
    assert (own > 0).any()
    exported = trainer.export()
    torch.testing.assert_close(exported.W_dec.norm(dim=1), torch.ones(96))  # unit rows
    if outlier_dim_ratio is None:  # one scale: the codes are the trainer's divided by it
        torch.testing.assert_close(
            exported.encode(x[:500]), own / trainer.scale, rtol=1e-4, atol=1e-3
        )
    for folder in (
        save_gemma_scope_2(exported, tmp_path / "gs2"),
        save_saelens(exported, tmp_path / "sl"),
    ):
        loaded = load_sae(folder)
        assert loaded.info.site == Site.parse("resid_post@4")
        codes = loaded.encode(x[:500])
        assert torch.equal(codes > 0, own > 0)
        # and reconstructs raw activations, in raw units
        torch.testing.assert_close(loaded.decode(codes), recon, rtol=1e-4, atol=2e-2)


def test_train_sae_end_to_end_on_the_miniature_reader(reader: Reader, tmp_path: Path) -> None:
    config = small_config(
        width=128,
        token_budget=3000,
        batch_size=64,
        buffer_tokens=512,
        scale_estimate_tokens=256,
        lr=5e-3,
        checkpoint_every_tokens=1000,
    )
    out = train_sae(
        reader,
        "resid_post@2",
        _corpus_texts(40),
        config,
        tmp_path / "sae",
        eval_corpus=_corpus_texts(46, 40),
        context_size=32,
        eval_tokens=400,
        explain_tokens=300,
    )
    assert out.report is not None
    assert out.manifest is not None
    folder = tmp_path / "sae"
    for name in (
        "params.safetensors",
        "config.json",
        "manifest.json",
        "report.json",
        "report.md",
        "explanations.json",
        "checkpoint/state.safetensors",
    ):
        assert (folder / name).is_file(), name
    gs2, sl = load_sae(folder), load_sae(folder / SAELENS_SUBFOLDER)
    acts = torch.cat(
        read_windows(
            reader,
            Site.parse("resid_post@2"),
            first_windows(reader.tokenizer, _corpus_texts(3), 32, 200),
        )
    )
    assert torch.equal(gs2.encode(acts), out.sae.encode(acts))
    assert torch.equal(sl.encode(acts), out.sae.encode(acts))
    config_json = json.loads((folder / "config.json").read_text())
    assert config_json["hf_hook_point_in"] == "model.layers.2.output"
    assert config_json["architecture"] == "jump_relu"
    assert config_json["width"] == 128
    assert config_json["l0"] == pytest.approx(out.report.mean_l0)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["reader"]["fingerprint_upto_site"] == reader.fingerprint_upto(2)
    assert manifest["data"]["corpus_sha256"] == _corpus_texts(40).sha256
    assert manifest["tokens_trained"] >= 3000
    assert manifest["files"]["params.safetensors"]
    report = json.loads((folder / "report.json").read_text())
    assert 0 <= report["fvu"] < 1.0
    assert report["delta_ce"] is not None
    assert report["curve"]
    explanations = load_explanations(folder)
    assert explanations
    latent, contexts = next(iter(explanations.items()))
    assert 0 <= latent < 128
    assert contexts[0].activation >= contexts[-1].activation > 0
    assert "[[" in contexts[0].render()
    # A new SAE in the same folder, not scanned: the old SAE's contexts must not stay beside it.
    shutil.rmtree(folder / "checkpoint")  # (the pipeline refuses a folder that holds one)
    train_sae(reader, "resid_post@2", _corpus_texts(40), config, folder, explain_tokens=0)
    assert not (folder / "explanations.json").exists()


def test_explanations_show_where_each_latent_fires_most(reader: Reader, tmp_path: Path) -> None:
    from scope_guard.sae.training import top_contexts

    site = Site.parse("resid_post@2")
    windows = first_windows(reader.tokenizer, _corpus_texts(6), 32, 400)
    acts = torch.cat(read_windows(reader, site, windows)).float()
    sae = _identity_sae(acts.shape[1], site)
    found = top_contexts(sae, reader, windows, top_k=3)
    codes = sae.encode(acts)
    for latent in (0, 5):
        best = codes[:, latent].topk(3).values
        got = torch.tensor([c.activation for c in found[latent]])
        torch.testing.assert_close(got, best)


def _identity_sae(d: int, site: Site) -> JumpReLUSAE:
    """Latents ``x_i`` and ``-x_i``: reconstructs ``x`` exactly (thresholds tiny)."""
    eye = torch.eye(d)
    return JumpReLUSAE(
        W_enc=torch.cat([eye, -eye], dim=1),
        W_dec=torch.cat([eye, -eye], dim=0),
        b_enc=torch.zeros(2 * d),
        b_dec=torch.zeros(d),
        threshold=torch.full((2 * d,), 1e-9),
        info=SAEInfo(d_model=d, d_sae=2 * d, site=site),
    )


def test_delta_ce_is_zero_for_a_perfect_sae_and_zero_ablation_for_an_empty_one(
    reader: Reader,
) -> None:
    from scope_guard.reader.miniature import miniature_model_path

    site = Site.parse("resid_post@2")
    lm = load_causal_lm(miniature_model_path(), dtype=torch.float32, device=torch.device("cpu"))
    windows = first_windows(reader.tokenizer, _corpus_texts(4), 32, 200)
    perfect = delta_cross_entropy(lm, reader.tokenizer, site, _identity_sae(64, site), windows)
    assert abs(perfect.delta) < 1e-4
    assert perfect.clean != perfect.zero_ablated  # the splice does reach the model
    empty = _identity_sae(64, site)
    empty.W_dec.zero_()
    ablated = delta_cross_entropy(lm, reader.tokenizer, site, empty, windows)
    assert ablated.spliced == pytest.approx(ablated.zero_ablated, rel=1e-6)
    assert ablated.loss_recovered == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("n_points", [1, 3, 20, 45])
def test_report_markdown_shows_each_curve_point_once_and_the_last(n_points: int) -> None:
    from scope_guard.sae.training import TrainingReport

    curve = [
        {
            "tokens": float(i),
            "fvu": 0.1,
            "l0": 3.0,
            "l0_coefficient": 1.0,
            "dead_fraction": 0.0,
            "lr": 1e-3,
            "tokens_per_s": 1.0,
        }
        for i in range(n_points)
    ]
    report = TrainingReport(
        site="resid_post@2",
        width=8,
        tokens_trained=n_points,
        fvu=0.1,
        mean_l0=3.0,
        dead_fraction=0.0,
        dead_fraction_training=0.0,
        n_eval_tokens=10,
        ce_clean=None,
        ce_spliced=None,
        ce_zero_ablated=None,
        delta_ce=None,
        loss_recovered=None,
        n_resampled=0,
        wall_s=1.0,
        tokens_per_s=1.0,
        curve=curve,
    )
    rows = [
        line
        for line in report.markdown().splitlines()
        if line.startswith("| ") and line.split("|")[1].strip().isdigit()
    ]
    tokens = [int(r.split("|")[1]) for r in rows]
    assert len(tokens) == len(set(tokens))
    assert tokens[-1] == n_points - 1
