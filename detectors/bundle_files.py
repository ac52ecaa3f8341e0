"""The files of a detector bundle, checked as hostile before any is used.

Every file the manifest lists must be a plain relative name, a regular file inside the bundle
folder (no symlink out, no FIFO or device) and match its sha256. The files the loader uses are
read once into memory, bounded, hashed and parsed from the same bytes, so what was verified is
what is used. Error messages name the file and the expected hash, never the actual one (that
would reveal a hash of whatever the name pointed to).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from detectors.bundle_manifest import BundleManifest, sha256_file
from scope_guard.errors import ArtifactError
from scope_guard.safe_files import check_relative_name, confined_file, read_bounded

__all__ = ["parse_tensors", "verified_files"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


def verified_files(
    folder: Path,
    root: Path,
    manifest: BundleManifest,
    manifest_path: Path,
    *,
    used: Mapping[str, int],
) -> dict[str, bytes]:
    """Check every listed file; return the bytes of the listed ones among ``used``.

    Args:
        folder: The bundle folder.
        root: The folder files must resolve into (:func:`~scope_guard.safe_files.confinement_root`).
        manifest: The validated manifest.
        manifest_path: Its path, for messages.
        used: File name -> the most bytes it may have, for the files the loader reads.

    Raises:
        ArtifactError: a bad name or hash, a file missing, outside the folder, not regular,
            too large, or altered.
    """
    contents: dict[str, bytes] = {}
    for name, expected in manifest.files.items():
        check_relative_name(name, where=manifest_path)
        if not _SHA256.fullmatch(expected):
            msg = f"{manifest_path}: the sha256 of {name!r} is not 64 hex digits"
            raise ArtifactError(msg)
        real = confined_file(folder / name, root=root, what="bundle file")
        if name in used:
            contents[name] = read_bounded(real, max_bytes=used[name], what="bundle file")
            actual = hashlib.sha256(contents[name]).hexdigest()
        else:
            actual = sha256_file(real)
        if actual != expected:
            msg = (
                f"bundle file {folder / name} was altered: its sha256 is not the "
                f"{expected[:12]}... the manifest says"
            )
            raise ArtifactError(msg)
    return contents


def parse_tensors(data: bytes, *, where: Path) -> dict[str, torch.Tensor]:
    """The tensors of a verified safetensors file's bytes.

    Raises:
        ArtifactError: not a valid safetensors file.
    """
    try:
        return load_safetensors(data)
    except (SafetensorError, ValueError, OSError) as exc:
        msg = f"bundle file {where} is not a valid safetensors file: {exc}"
        raise ArtifactError(msg) from exc
