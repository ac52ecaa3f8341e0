"""Resumable training checkpoints: safetensors for tensors, JSON for the rest, written atomically.

A checkpoint holds everything that decides what the run computes next: the parameters, Adam's
moments, the shuffling buffer's rows and generator, the resampling generator, the dead-latent
counters, the sparsity controller, the input scale, the stream cursor, and the curve so far.
No pickle: tensors go to ``state.safetensors``, scalars to ``state.json``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from scope_guard.errors import ArtifactError

__all__ = ["CheckpointData", "read_checkpoint", "write_checkpoint"]

CHECKPOINT_VERSION = 1
_TENSORS = "state.safetensors"
_META = "state.json"


@dataclass
class CheckpointData:
    """What a checkpoint holds.

    Attributes:
        tensors: Named tensors (parameters ``model.*``, Adam moments ``adam.*``, buffer, RNGs).
        meta: JSON-ready scalars and lists (config, counters, cursor, curve).
    """

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def write_checkpoint(folder: str | Path, data: CheckpointData) -> Path:
    """Write ``data`` to ``folder``, replacing an older checkpoint only once the new one is whole.

    Returns:
        The checkpoint folder.
    """
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(target.name + ".writing")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in data.tensors.items()}
    save_file(tensors, str(staging / _TENSORS))
    meta = {"checkpoint_version": CHECKPOINT_VERSION, **data.meta}
    (staging / _META).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    if old.exists():
        shutil.rmtree(old)
    return target


def read_checkpoint(folder: str | Path) -> CheckpointData:
    """Read a checkpoint :func:`write_checkpoint` wrote.

    Raises:
        ArtifactError: the folder, a file, or the version is missing or unreadable.
    """
    path = Path(folder)
    tensors_file, meta_file = path / _TENSORS, path / _META
    if not tensors_file.is_file() or not meta_file.is_file():
        msg = f"no training checkpoint in {path} (expected {_TENSORS} and {_META})"
        raise ArtifactError(msg)
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        tensors = load_file(str(tensors_file))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, SafetensorError) as exc:
        msg = f"cannot read the checkpoint in {path}: {exc}"
        raise ArtifactError(msg) from exc
    if not isinstance(meta, dict) or meta.get("checkpoint_version") != CHECKPOINT_VERSION:
        version = meta.get("checkpoint_version") if isinstance(meta, dict) else None
        msg = (
            f"{meta_file}: checkpoint version {version!r}; this version reads {CHECKPOINT_VERSION}"
        )
        raise ArtifactError(msg)
    return CheckpointData(tensors=tensors, meta=meta)
