"""``train_sae``: from a reader and a corpus to a saved, evaluated, explained SAE folder."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NamedTuple

from torch import nn

from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.reader import Reader
from scope_guard.sae.jumprelu import JumpReLUSAE, SAEInfo
from scope_guard.sae.training.config import TrainingConfig
from scope_guard.sae.training.corpus import TextCorpus
from scope_guard.sae.training.evaluation import (
    EvaluationResult,
    evaluate_sae,
    first_windows,
    load_causal_lm,
    model_folder_of,
)
from scope_guard.sae.training.explain import top_contexts, write_explanations
from scope_guard.sae.training.outputs import (
    TrainingManifest,
    TrainingReport,
    build_report,
    write_sae_folder,
)
from scope_guard.sae.training.stream import ReaderActivations, check_site
from scope_guard.sae.training.trainer import CurvePoint, Trainer, TrainingResult
from scope_guard.sites import Site

__all__ = [
    "CHECKPOINT_SUBFOLDER",
    "TrainedSAE",
    "manifest_fields",
    "reader_identity",
    "train_sae",
]

logger = logging.getLogger(__name__)

CHECKPOINT_SUBFOLDER = "checkpoint"


class TrainedSAE(NamedTuple):
    """The outcome of :func:`train_sae`.

    Attributes:
        sae: The SAE (raw-activation units, float32, CPU).
        folder: The output folder.
        report: Held-out figures and the curve; ``None`` when the run was paused.
        manifest: What produced it; ``None`` when the run was paused.
        evaluation: The held-out evaluation; ``None`` when the run was paused.
    """

    sae: JumpReLUSAE
    folder: Path
    report: TrainingReport | None
    manifest: TrainingManifest | None
    evaluation: EvaluationResult | None


def reader_identity(reader: Reader, site: Site) -> dict[str, object]:
    """The reader as the manifest records it: name, source, type, dtype, quantization, hashes."""
    info = reader.info
    return {
        "name": info.name,
        "source": reader.source,
        "model_type": info.model_type,
        "n_layers": info.n_layers,
        "dtype": info.dtype,
        "quantization": getattr(reader, "quantization", None),
        "is_stand_in": info.is_stand_in,
        "fingerprint_upto_site": reader.fingerprint_upto(site.layer),
        "tokenizer_fingerprint": reader.tokenizer_fingerprint,
    }


def manifest_fields(
    reader: Reader,
    site: Site,
    config: TrainingConfig,
    result: TrainingResult,
    *,
    data: dict[str, Any],
    heldout: TextCorpus,
    evaluation: EvaluationResult,
) -> dict[str, Any]:
    """The manifest of a finished run (without the fields :func:`write_sae_folder` adds)."""
    return {
        "reader": reader_identity(reader, site),
        "site": str(site),
        "d_model": reader.site_dim(site),
        "width": config.width,
        "data": data,
        "heldout": {
            "corpus": heldout.name,
            "corpus_sha256": heldout.sha256,
            "n_documents": len(heldout),
            "n_tokens": evaluation.n_tokens,
        },
        "tokens_trained": result.tokens,
        "steps": result.steps,
        "stopped_by": result.stopped_by,
        "passes": result.passes,
        "seed": config.seed,
        "input_scale": result.scale,
        "config": config.to_dict(),
        "wall_s": result.wall_s,
    }


def train_sae(
    reader: Reader,
    site: Site | str,
    corpus: TextCorpus,
    config: TrainingConfig,
    out: str | Path,
    *,
    eval_corpus: TextCorpus | None = None,
    heldout_fraction: float = 0.05,
    eval_tokens: int = 16_384,
    context_size: int = 256,
    reader_batch_size: int = 8,
    resume: bool = False,
    lm: nn.Module | Literal["auto"] | None = "auto",
    explain_tokens: int = 50_000,
    explain_top_k: int = 8,
    on_progress: Callable[[CurvePoint], None] | None = None,
    max_steps: int | None = None,
) -> TrainedSAE:
    """Train a JumpReLU SAE on ``reader``'s activations at ``site`` over ``corpus``.

    Args:
        reader: The reader (bf16 is the intended dtype; the SAE trains in float32).
        site: Where to read.
        corpus: Training documents (held-out ones are split off unless ``eval_corpus``).
        config: The hyperparameters and budgets.
        out: Output folder (see :mod:`scope_guard.sae.training.outputs`).
        eval_corpus: Held-out documents; default: a ``heldout_fraction`` split of ``corpus``.
        heldout_fraction: Share of documents held out when ``eval_corpus`` is not given.
        eval_tokens: At most this many held-out tokens are evaluated.
        context_size: Tokens per read sequence, BOS included.
        reader_batch_size: Sequences per forward pass.
        resume: Continue from the checkpoint in ``out``.
        lm: The whole causal LM for delta-CE; ``"auto"`` loads it from the reader's folder
            (skipped with a warning when that fails); ``None`` skips delta-CE.
        explain_tokens: Training tokens scanned for the top-activating contexts (0: none).
        explain_top_k: Contexts kept per latent.
        on_progress: Called with each point of the training curve.
        max_steps: Pause after this many steps (a checkpoint is written; nothing else is).

    Raises:
        ConfigError: a bad site or setting, or a checkpoint in ``out`` without ``resume``
            (or none with it).
        InputError: an empty corpus or held-out set, or non-finite activations.
    """
    parsed = check_site(reader, site)
    corpus.require_text()
    if eval_corpus is None:
        train, held = corpus.split_heldout(heldout_fraction)
    else:
        train, held = corpus, eval_corpus
    train.require_text()
    held.require_text()
    folder = Path(out)
    ckpt = folder / CHECKPOINT_SUBFOLDER
    source = ReaderActivations(
        reader,
        parsed,
        train,
        context_size=context_size,
        seed=config.seed,
        batch_size=reader_batch_size,
    )
    d_model = reader.site_dim(parsed)
    if config.width < d_model:
        msg = f"width {config.width} is below d_model={d_model} at {parsed}"
        raise ConfigError(msg)
    info = SAEInfo(
        d_model=d_model, d_sae=config.width, site=parsed, source=str(folder), model_name=reader.name
    )
    if resume:
        trainer = Trainer.resume(ckpt, config, source, info=info)
    else:
        if ckpt.exists():
            msg = (
                f"{folder} already holds a training checkpoint: resume it or choose another folder"
            )
            raise ConfigError(msg)
        trainer = Trainer(config, source, info=info, checkpoint_dir=ckpt)
    result = trainer.run(on_progress=on_progress, max_steps=max_steps)
    if result.stopped_by == "steps":
        return TrainedSAE(result.sae, folder, None, None, None)

    windows = first_windows(reader.tokenizer, held, context_size, eval_tokens, seed=0)
    model = _whole_model(reader) if lm == "auto" else lm
    evaluation = evaluate_sae(
        result.sae, reader, parsed, windows, lm=model, batch_size=reader_batch_size
    )
    del model
    report = build_report(result, evaluation, trainer.dead_fraction())
    manifest = manifest_fields(
        reader, parsed, config, result, data=source.describe(), heldout=held, evaluation=evaluation
    )
    written = write_sae_folder(
        folder, result.sae, l0=evaluation.mean_l0, manifest=manifest, report=report
    )
    if explain_tokens > 0:
        scan = first_windows(reader.tokenizer, train, context_size, explain_tokens, seed=1)
        contexts = top_contexts(
            result.sae, reader, scan, top_k=explain_top_k, batch_size=reader_batch_size
        )
        write_explanations(
            folder,
            contexts,
            {
                "site": str(parsed),
                "corpus": train.name,
                "n_tokens_scanned": sum(len(w.ids) for w in scan),
            },
        )
    return TrainedSAE(result.sae, folder, report, written, evaluation)


def _whole_model(reader: Reader) -> nn.Module | None:
    try:
        return load_causal_lm(model_folder_of(reader), dtype=reader.dtype, device=reader.device)
    except (ArtifactError, ConfigError) as exc:
        logger.warning("delta-CE skipped: %s", exc)
        return None
