"""The built-in miniature reader: a tiny Gemma 2 with seeded random weights.

It lets every part of scope-guard run on a fresh machine with no downloaded weights. It is saved
in the real formats (``save_pretrained`` for the model, a trained ``tokenizers`` tokenizer with a
Gemma-style chat template), so loading it exercises exactly the code path a real checkpoint takes.
Its activations mean nothing: everything that uses it labels it as a stand-in.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "MINIATURE_ID",
    "MINIATURE_LABEL",
    "build_miniature_model",
    "default_cache_root",
    "miniature_model_path",
]

logger = logging.getLogger(__name__)

MINIATURE_ID = "scope-guard/miniature-gemma2-v1"
MINIATURE_LABEL = "miniature Gemma 2 (stand-in: random weights, not a real model)"

# Gemma's chat template, in its observable behaviour: BOS, then one turn per message with the
# assistant role renamed "model", content trimmed, each turn closed by <end_of_turn>.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]

# Word list of the synthetic corpus (one space-separated line per entry).
_WORD_LINES = (
    "the of and to in is was for on that with as by at from it this be are an or which has",
    "have not were its but their had been also more one two three four five six seven",
    "eight nine ten first new after year years city company river tower bridge museum",
    "report according passage question answer context document revenue percent million",
    "billion dollars price growth team season game players won lost population capital",
    "country government president minister law court study patients drug trial results",
    "data model language research university students school hotel restaurant menu review",
    "rating stars customers service product sales quarter market share increase decrease",
    "january february march april may june july august september october november december",
    "monday friday built opened designed located north south east west tall long wide",
    "metres kilometres miles feet hours minutes days weeks months century water energy",
    "power climate weather temperature rain summer winter people children family history",
    "based provided information however therefore although because while during before",
    "between about approximately around nearly only most many several some each other such",
    "these those should could would will can may must does did said says told asked agreed",
    "believe think true false correct wrong yes no sorry cannot find mentioned according",
    "support evidence",
)
_WORDS = " ".join(_WORD_LINES).split()
_NAMES = " ".join(
    ("Paris London Berlin Tokyo Eiffel Thames Amazon Google Gemma Alice Bob Maria Chen",)
).split()


def default_cache_root() -> Path:
    """Where scope-guard keeps generated artifacts (``$SCOPE_GUARD_CACHE`` or ~/.cache)."""
    env = os.environ.get("SCOPE_GUARD_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "scope_guard"


def _corpus(n_sentences: int, seed: int) -> list[str]:
    """Seeded synthetic sentences covering words, names, numbers, punctuation and non-ASCII."""
    rng = random.Random(seed)
    extras = ["café", "naïve", "Zürich", "São Paulo", "日本", "€", "—", "“quoted”", "😀"]
    sentences = []
    for _ in range(n_sentences):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(5, 16))]
        if rng.random() < 0.5:
            words.insert(rng.randrange(len(words)), rng.choice(_NAMES))
        if rng.random() < 0.5:
            number = rng.choice(
                [str(rng.randint(0, 3000)), f"{rng.randint(1, 99)}.{rng.randint(0, 9)}"]
            )
            words.insert(rng.randrange(len(words)), number)
        if rng.random() < 0.1:
            words.append(rng.choice(extras))
        text = " ".join(words)
        sentences.append(text[0].upper() + text[1:] + rng.choice([".", ".", "?", "!", ",", ":"]))
    return sentences


def _train_tokenizer(vocab_size: int, seed: int):  # -> PreTrainedTokenizerFast
    """Train a byte-level BPE tokenizer on the synthetic corpus and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(4000, seed), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
        chat_template=GEMMA_CHAT_TEMPLATE,
        model_max_length=2048,
        add_bos_token=True,  # as Gemma's tokenizers do; the chat template writes BOS itself
    )


def build_miniature_model(
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    num_hidden_layers: int = 6,
    sliding_window: int = 32,
) -> Path:
    """Build the miniature Gemma 2 and its tokenizer, and save both under ``path``.

    The sliding window is deliberately short so that tests with a few dozen tokens exercise both
    Gemma 2 attention kinds (local sliding and global).

    Returns:
        The folder written (a regular Hugging Face model folder).
    """
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM

    tokenizer = _train_tokenizer(vocab_size, seed)
    ids = tokenizer.convert_tokens_to_ids(["<pad>", "<eos>", "<bos>"])
    config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden_size // 4,
        query_pre_attn_scalar=hidden_size // 4,
        max_position_embeddings=2048,
        sliding_window=sliding_window,
        pad_token_id=ids[0],
        eos_token_id=ids[1],
        bos_token_id=ids[2],
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    model = Gemma2ForCausalLM(config).eval()
    with torch.no_grad():  # Gemma RMSNorm scales by (1 + w); give the norms some variety too
        for name, param in model.named_parameters():
            if "norm" in name:
                param.normal_(0.0, 0.1)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    from scope_guard.reader.loading import quiet_transformers

    with quiet_transformers():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    (out / "STAND_IN.txt").write_text(MINIATURE_LABEL + "\n", encoding="utf-8")
    return out


def miniature_model_path(cache_root: str | os.PathLike[str] | None = None) -> Path:
    """Return the miniature model's folder, building it once (atomically) if it is missing."""
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    target = root / "miniature" / "gemma2-v1"
    if (target / "config.json").is_file() and (target / "STAND_IN.txt").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("building the miniature stand-in reader at %s", target)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        build_miniature_model(staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first; theirs is identical
            if not (target / "STAND_IN.txt").is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
