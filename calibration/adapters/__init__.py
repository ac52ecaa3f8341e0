"""Readers for labeled data: our JSONL format and public benchmark formats.

Each format is one module with a ``load(path, *, strict=True, **options)`` function; this registry
maps format names to them and imports a module only when its format is used. Every loader reports
bad records as :class:`~calibration.data_problems.DataError` naming the file and line (or row), and
logs the class balance per risk of what it loaded. Nothing here imports :mod:`calibration.data`
(the facade above): the models come from :mod:`calibration.labeled`.

=======================  ============================================  =======================
format                   labels                                        module
=======================  ============================================  =======================
``jsonl``                ours: any risk                                :mod:`.jsonl`
``ragtruth``             fabrication (+ spans)                         :mod:`.ragtruth`
``halueval-qa``          fabrication                                   :mod:`.halueval_qa`
``summedits``            fabrication                                   :mod:`.summedits`
``begin``                fabrication                                   :mod:`.begin`
``wice``                 fabrication                                   :mod:`.wice`
``anthropic-sycophancy`` sycophancy                                    :mod:`.anthropic_sycophancy`
``ai-liar``              deception                                     :mod:`.ai_liar`
``truthfulqa``           deception                                     :mod:`.truthfulqa`
=======================  ============================================  =======================
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scope_guard.errors import ConfigError

if TYPE_CHECKING:
    from calibration.labeled import LabeledDataset

__all__ = ["available_formats", "get_loader", "load_dataset"]

logger = logging.getLogger(__name__)

_LOADERS: dict[str, str] = {
    "jsonl": "jsonl",
    "ragtruth": "ragtruth",
    "halueval-qa": "halueval_qa",
    "summedits": "summedits",
    "begin": "begin",
    "wice": "wice",
    "anthropic-sycophancy": "anthropic_sycophancy",
    "ai-liar": "ai_liar",
    "truthfulqa": "truthfulqa",
}


def available_formats() -> tuple[str, ...]:
    """The format names :func:`load_dataset` accepts, ``jsonl`` (ours) first."""
    return tuple(_LOADERS)


def _normalize(format: str) -> str:
    return format.strip().lower().replace("_", "-")


def get_loader(format: str) -> Callable[..., LabeledDataset]:
    """The ``load`` function of a format (names are case-insensitive; ``_`` and ``-`` match).

    Raises:
        ConfigError: if the format is unknown; the message lists the valid ones.
    """
    name = _normalize(format) if isinstance(format, str) else None
    if name not in _LOADERS:
        msg = f"unknown data format {format!r}; valid: {', '.join(available_formats())}"
        raise ConfigError(msg)
    module = importlib.import_module(f"{__name__}.{_LOADERS[name]}")
    loader: Callable[..., LabeledDataset] = module.load
    return loader


def load_dataset(
    path: str | os.PathLike[str], format: str = "jsonl", *, limit: int | None = None, **options: Any
) -> LabeledDataset:
    """Load labeled data from ``path`` in ``format``.

    Args:
        path: A file, or a folder where the format allows one (see each format's module).
        format: One of :func:`available_formats`.
        limit: Keep only the first ``limit`` examples (a quick look at a big file). Formats that
            make pairs may cut the last pair in two.
        **options: The format's own keyword options (e.g. ``strict=False`` to skip bad records,
            ``partial_label=None`` for ``wice``).

    Returns:
        The examples, with ``format`` set to the normalized format name.

    Raises:
        ConfigError: for an unknown format, an option the format does not take, or a bad limit.
        DataError: for a missing path or bad records.
    """
    loader = get_loader(format)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        msg = f"limit must be a positive int or None, got {limit!r}"
        raise ConfigError(msg)
    try:
        inspect.signature(loader).bind(Path(path), **options)
    except TypeError:
        accepted = [
            p.name
            for p in inspect.signature(loader).parameters.values()
            if p.kind == p.KEYWORD_ONLY
        ]
        msg = (
            f"format {_normalize(format)!r} does not take options {sorted(options)}; "
            f"it takes: {', '.join(accepted) or 'none'}"
        )
        raise ConfigError(msg) from None
    dataset = loader(Path(path), **options)
    if limit is not None and limit < len(dataset):
        logger.info("keeping the first %d of %d examples (limit)", limit, len(dataset))
        dataset = dataset.subset(range(limit))
    return dataset
