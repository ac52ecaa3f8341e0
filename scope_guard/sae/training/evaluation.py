"""How good a trained SAE is on held-out text: FVU, mean L0, dead latents, and delta-CE.

Delta-CE is the increase of the next-token loss when the site's activations are replaced by the
SAE's reconstruction, the standard figure of an SAE's faithfulness. It needs the whole model with
its LM head, which the reader never loads; :func:`load_causal_lm` loads it once, for evaluation.
BOS keeps its own activation (the SAE was not trained on it), every other token is replaced, and
the loss counts the predictions made from replaced positions only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, cast

import torch
from torch import nn

from scope_guard.errors import ArtifactError, ConfigError, InputError
from scope_guard.reader import Reader
from scope_guard.reader.hooks import site_module
from scope_guard.reader.loading import (
    SUPPORTED_MODEL_TYPES,
    decoder_layers,
    find_decoder,
    quiet_transformers,
    resolve_model_dir,
)
from scope_guard.sae.jumprelu import JumpReLUSAE
from scope_guard.sae.stats import sae_stats
from scope_guard.sae.training.corpus import TextCorpus
from scope_guard.sae.training.stream import TokenWindow, read_windows, text_windows
from scope_guard.sites import Site, SiteKind

__all__ = [
    "CrossEntropy",
    "EvaluationResult",
    "delta_cross_entropy",
    "evaluate_sae",
    "first_windows",
    "load_causal_lm",
    "model_folder_of",
    "reconstruction_of",
    "spliced_losses",
    "zeros",
]

logger = logging.getLogger(__name__)


class CrossEntropy(NamedTuple):
    """Next-token losses with and without the SAE spliced in (nats per token).

    Attributes:
        clean: Mean loss of the unmodified model.
        spliced: Mean loss with the site replaced by the reconstruction.
        zero_ablated: Mean loss with the site's activations set to zero (a scale for the delta).
        n_tokens: Predictions counted.
    """

    clean: float
    spliced: float
    zero_ablated: float
    n_tokens: int

    @property
    def delta(self) -> float:
        """``spliced - clean``: what the SAE costs the model, in nats per token."""
        return self.spliced - self.clean

    @property
    def loss_recovered(self) -> float:
        """``(zero - spliced) / (zero - clean)``: 1 is a perfect SAE, 0 no better than zeros."""
        gap = self.zero_ablated - self.clean
        return (self.zero_ablated - self.spliced) / gap if gap else float("nan")


class EvaluationResult(NamedTuple):
    """An SAE's quality on held-out text.

    Attributes:
        fvu: Fraction of variance unexplained (see :class:`~scope_guard.sae.stats.SAEStats`).
        mean_l0: Mean active latents per token.
        dead_fraction: Latents never active on the held-out tokens.
        n_tokens: Held-out tokens encoded.
        cross_entropy: Delta-CE figures, when the whole model was available.
    """

    fvu: float
    mean_l0: float
    dead_fraction: float
    n_tokens: int
    cross_entropy: CrossEntropy | None


def first_windows(
    tokenizer: Any,
    corpus: TextCorpus,
    context_size: int,
    max_tokens: int,
    *,
    seed: int | None = None,
) -> list[TokenWindow]:
    """Windows of the corpus's documents up to ``max_tokens`` tokens.

    Args:
        tokenizer: The reader's tokenizer.
        corpus: The documents.
        context_size: Tokens per sequence, BOS included.
        max_tokens: Stop once this many tokens are gathered.
        seed: Visit documents in a seeded random order (so that a small sample spans many
            documents and datasets) instead of corpus order.
    """
    corpus.require_text()
    order = list(range(len(corpus)))
    if seed is not None:
        order = torch.randperm(len(corpus), generator=torch.Generator().manual_seed(seed)).tolist()
    windows: list[TokenWindow] = []
    total = 0
    for doc in order:
        for window in text_windows(tokenizer, corpus.texts[doc], doc, context_size):
            if total >= max_tokens:
                return windows
            windows.append(window)
            total += len(window.ids)
    if not windows:
        msg = f"the corpus {corpus.name!r} tokenizes to no tokens"
        raise InputError(msg)
    return windows


def model_folder_of(reader: Reader) -> Path:
    """The folder of the reader's whole checkpoint (LM head included), to load it again.

    Raises:
        ArtifactError: the reader was built from a model object, not loaded from a folder or id.
    """
    from scope_guard.reader.miniature import miniature_model_path

    source = getattr(reader, "source", None)
    if source is None:
        msg = (
            "the reader was not loaded with Reader.from_pretrained, so its whole model cannot be "
            "found for delta-CE; pass the model folder explicitly"
        )
        raise ArtifactError(msg)
    if source == "miniature":
        return miniature_model_path()
    folder = getattr(reader, "model_dir", None)  # the folder the reader was loaded from
    if folder is not None:
        return Path(folder)
    try:  # a GGUF reader (a built-in name or a .gguf file) reads a converted, cached folder
        from scope_guard.reader.gguf import converted_folder, find_gguf_source
        from scope_guard.reader.miniature import default_cache_root
    except ImportError:
        pass
    else:
        gguf = find_gguf_source(source)
        if gguf is not None:
            return converted_folder(gguf, reader.dtype, default_cache_root())
    return resolve_model_dir(source)


def load_causal_lm(folder: str | Path, *, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """The whole causal LM in ``folder`` (safetensors only, no remote code), in eval mode.

    Raises:
        ArtifactError: the folder cannot be read as a supported Gemma checkpoint.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(folder)
        model_type = getattr(config, "model_type", "")
        if model_type not in SUPPORTED_MODEL_TYPES:
            msg = f"unsupported model_type {model_type!r} in {folder}"
            raise ConfigError(msg)
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(
                folder,
                dtype=dtype,
                attn_implementation=SUPPORTED_MODEL_TYPES[model_type],
                use_safetensors=True,
            )
    except (OSError, ValueError, RuntimeError) as exc:
        msg = f"cannot load the whole model in {folder} for delta-CE: {exc}"
        raise ArtifactError(msg) from exc
    module = cast(nn.Module, model)
    return module.to(device).eval()


def _replace(value: Any, new: torch.Tensor) -> Any:
    return (new, *value[1:]) if isinstance(value, tuple) else new


Replacement = Callable[[torch.Tensor], torch.Tensor]
"""What a splice puts at the site: a function of the site's activations ``(batch, seq, d)``."""


def reconstruction_of(sae: JumpReLUSAE) -> Replacement:
    """The SAE's reconstruction, in the site's dtype."""
    return lambda x: sae(x.float()).reconstruction.to(x.dtype)


def zeros(x: torch.Tensor) -> torch.Tensor:
    """Zero ablation, the scale of loss recovered."""
    return torch.zeros_like(x)


@contextmanager
def _spliced(lm: nn.Module, site: Site, replace: Replacement, keep: torch.Tensor) -> Iterator[None]:
    """Replace the site's activations by ``replace(x)`` where ``keep`` is False. ``keep`` is
    ``(batch, seq)``; True for BOS and padding."""

    def swap(x: torch.Tensor) -> torch.Tensor:
        return torch.where(keep.unsqueeze(-1).to(x.device), x, replace(x))

    module = site_module(decoder_layers(find_decoder(lm)), site)
    if site.kind is SiteKind.ATTN_OUT:
        handle = module.register_forward_pre_hook(lambda _m, args: (swap(args[0]), *args[1:]))
    else:
        handle = module.register_forward_hook(
            lambda _m, _a, out: _replace(out, swap(out[0] if isinstance(out, tuple) else out))
        )
    try:
        yield
    finally:
        handle.remove()


def _losses(
    lm: nn.Module, ids: torch.Tensor, mask: torch.Tensor, start: int, lengths: Sequence[int]
) -> tuple[float, int]:
    """Summed next-token loss of the predictions made from positions ``start .. len - 2``."""
    logits = lm(input_ids=ids, attention_mask=mask, use_cache=False).logits
    total, count = 0.0, 0
    for b, length in enumerate(lengths):
        if length - 1 <= start:
            continue
        row = logits[b, start : length - 1].float()
        target = ids[b, start + 1 : length]
        total += float(torch.nn.functional.cross_entropy(row, target, reduction="sum"))
        count += length - 1 - start
    return total, count


@torch.inference_mode()
def spliced_losses(
    lm: nn.Module,
    tokenizer: Any,
    site: Site,
    windows: Sequence[TokenWindow],
    replacements: Mapping[str, Replacement],
    *,
    batch_size: int = 4,
) -> tuple[dict[str, float], int]:
    """Mean next-token loss of ``lm`` on ``windows``, clean (``"clean"``) and with each named
    replacement spliced in at ``site``; and the number of predictions counted.

    BOS keeps its own activation (an SAE is not trained on it); the loss counts the predictions
    made from replaced positions only.

    Raises:
        InputError: no window yields a prediction from a replaced position.
    """
    bos = tokenizer.bos_token_id
    prefix = [] if bos is None else [int(bos)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(lm.parameters()).device
    sums = dict.fromkeys(["clean", *replacements], 0.0)
    n_predictions = 0
    for first in range(0, len(windows), batch_size):
        chunk = windows[first : first + batch_size]
        seqs = [[*prefix, *w.ids] for w in chunk]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for b, seq in enumerate(seqs):
            ids[b, : len(seq)] = torch.tensor(seq)
            mask[b, : len(seq)] = 1
        keep = mask == 0
        keep[:, : len(prefix)] = True
        ids, mask = ids.to(device), mask.to(device)
        lengths = [len(s) for s in seqs]
        start = len(prefix)
        clean, count = _losses(lm, ids, mask, start, lengths)
        sums["clean"] += clean
        for name, replace in replacements.items():
            with _spliced(lm, site, replace, keep):
                sums[name] += _losses(lm, ids, mask, start, lengths)[0]
        n_predictions += count
    if n_predictions == 0:
        msg = "delta-CE needs windows of at least two tokens"
        raise InputError(msg)
    return {name: total / n_predictions for name, total in sums.items()}, n_predictions


def delta_cross_entropy(
    lm: nn.Module,
    tokenizer: Any,
    site: Site,
    sae: JumpReLUSAE,
    windows: Sequence[TokenWindow],
    *,
    batch_size: int = 4,
) -> CrossEntropy:
    """Next-token loss of ``lm`` on ``windows``: clean, spliced with ``sae``, zero-ablated.

    Raises:
        InputError: no window yields a prediction from a replaced position.
    """
    sae = sae.to(next(lm.parameters()).device)
    losses, n = spliced_losses(
        lm,
        tokenizer,
        site,
        windows,
        {"spliced": reconstruction_of(sae), "zero": zeros},
        batch_size=batch_size,
    )
    return CrossEntropy(
        clean=losses["clean"], spliced=losses["spliced"], zero_ablated=losses["zero"], n_tokens=n
    )


def evaluate_sae(
    sae: JumpReLUSAE,
    reader: Reader,
    site: Site,
    windows: Sequence[TokenWindow],
    *,
    lm: nn.Module | None = None,
    batch_size: int = 8,
) -> EvaluationResult:
    """FVU, L0 and dead latents of ``sae`` on ``windows`` read by ``reader``; delta-CE with ``lm``.

    Raises:
        InputError: no held-out tokens, or non-finite activations.
    """
    parts: list[torch.Tensor] = []
    for first in range(0, len(windows), batch_size):
        parts.extend(read_windows(reader, site, windows[first : first + batch_size]))
    if not parts:
        msg = "no held-out tokens to evaluate on"
        raise InputError(msg)
    acts = torch.cat(parts).float()
    stats = sae_stats(sae, acts)
    ce = delta_cross_entropy(lm, reader.tokenizer, site, sae, windows) if lm is not None else None
    logger.info("held-out evaluation: %s, delta-CE %s", stats, ce)
    return EvaluationResult(
        fvu=stats.fvu,
        mean_l0=stats.mean_l0,
        dead_fraction=stats.dead_fraction,
        n_tokens=stats.n_tokens,
        cross_entropy=ce,
    )
