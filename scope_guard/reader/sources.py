"""Where a reader's weights come from: one function from what the user names to a local folder.

A reader is named by a local Hugging Face folder, a hub id (through the HF cache), a GGUF file
or a folder holding one, or a built-in name (``gemma-3-270m``). GGUFs are converted once into
a Hugging Face folder (:mod:`scope_guard.reader.gguf`); everything ends as a folder that
:func:`scope_guard.reader.loading.load_decoder` (or transformers) reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from scope_guard.reader.gguf import converted_folder, find_gguf_source
from scope_guard.reader.loading import resolve_model_dir
from scope_guard.reader.miniature import default_cache_root

__all__ = ["resolve_reader_folder"]


def resolve_reader_folder(
    model: str | os.PathLike[str],
    *,
    dtype: torch.dtype,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    revision: str | None = None,
) -> Path:
    """The local Hugging Face folder of ``model``, converting a GGUF into ``dtype`` once.

    Raises:
        ArtifactError: the model cannot be found, downloaded or converted.
        ConfigError: a GGUF of an unsupported architecture.
    """
    gguf = find_gguf_source(model)
    if gguf is not None:
        return converted_folder(gguf, dtype, default_cache_root())
    return resolve_model_dir(
        model, cache_dir=cache_dir, local_files_only=local_files_only, revision=revision
    )
