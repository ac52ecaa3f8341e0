"""Hugging Face hub settings shared by the model and SAE loaders, read at call time.

``huggingface_hub`` reads ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` once, at import; a user (or a
test) who sets them later must still be obeyed, so both are read from the environment here.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["hub_cache_dir", "offline_mode"]

_TRUE = {"1", "on", "yes", "true"}


def offline_mode() -> bool:
    """Whether Hugging Face offline mode is on (``HF_HUB_OFFLINE``)."""
    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().lower() in _TRUE
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The hub cache folder: ``cache_dir`` if given, else ``HF_HUB_CACHE`` or the default."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("HF_HUB_CACHE")
    if env:
        return Path(env)
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)
