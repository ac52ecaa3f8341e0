"""Reading a Gemma Scope ``params.npz`` without trusting a byte of it.

``numpy.load`` allocates whatever an ``.npy`` header declares before reading a byte of data, so
a 300-byte archive declaring a 4 TiB array ends in ``MemoryError``; and it reports an archive
whose members are shorter than they claim as "needs pickle". This reader opens the zip itself
and, before allocating anything, checks for every array it will read that:

- the member is stored or deflated (what ``np.savez`` / ``np.savez_compressed`` write), its
  compressed bytes fit in the archive, and its declared size is one deflate could produce from
  them (at most about 1032 to 1);
- the ``.npy`` header parses (numpy's bounded parser), holds a plain float16/32/64 dtype (no
  object arrays, which need pickle; no structured, string or integer arrays), and declares
  exactly as many data bytes as the member holds.

Only then is the array read, with ``allow_pickle=False``.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import IO

import numpy as np
import torch

from scope_guard.errors import ArtifactError

__all__ = ["read_npz"]

# Deflate cannot expand data by more than ~1032x; allow slack for headers of tiny members.
_MAX_DEFLATE_RATIO = 1032
_DEFLATE_SLACK = 1 << 16
_FLOAT_KINDS = {2, 4, 8}  # float16, float32, float64 itemsizes
_NPY_MAGIC = b"\x93NUMPY"


def read_npz(path: Path, wanted: set[str]) -> dict[str, torch.Tensor]:
    """Read the arrays ``wanted`` of an ``.npz`` archive; others are listed by name only.

    Args:
        path: A regular file (already confined by the caller).
        wanted: Array names to read (others map to an empty tensor, for messages).

    Returns:
        ``{name: tensor}`` on CPU, in native byte order.

    Raises:
        ArtifactError: naming ``path`` and the array, for every malformed or hostile input.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(len(_NPY_MAGIC))
        handle.seek(0)
        if head == _NPY_MAGIC:
            msg = f"{path} is a single .npy array, not an .npz archive of the SAE's arrays"
            raise ArtifactError(msg)
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            msg = f"cannot read {path} as an .npz archive: {exc}"
            raise ArtifactError(msg) from exc
        with archive:
            return _read_members(archive, path, size, wanted)


def _read_members(
    archive: zipfile.ZipFile, path: Path, size: int, wanted: set[str]
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for info in archive.infolist():
        if info.is_dir():
            continue
        key = info.filename.removesuffix(".npy")
        if key in out:
            msg = f"{path}: the archive holds the array {key!r} twice"
            raise ArtifactError(msg)
        if key not in wanted:
            out[key] = torch.empty(0)  # never read: only its name matters, for messages
            continue
        _check_member(info, path, size, key)
        out[key] = _read_array(archive, info, path, key)
    return out


def _check_member(info: zipfile.ZipInfo, path: Path, size: int, key: str) -> None:
    if info.flag_bits & 0x1:
        msg = f"{path}: array {key!r} is encrypted"
        raise ArtifactError(msg)
    if info.compress_size > size:
        msg = (
            f"{path}: array {key!r} is truncated: the archive declares {info.compress_size} "
            f"compressed bytes for it but the whole file holds {size}"
        )
        raise ArtifactError(msg)
    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size != info.compress_size:
            msg = (
                f"{path}: array {key!r} is stored uncompressed but declares {info.file_size} "
                f"bytes while holding {info.compress_size}"
            )
            raise ArtifactError(msg)
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        if info.file_size > info.compress_size * _MAX_DEFLATE_RATIO + _DEFLATE_SLACK:
            msg = (
                f"{path}: array {key!r} declares {info.file_size} bytes from "
                f"{info.compress_size} compressed bytes, more than deflate can produce"
            )
            raise ArtifactError(msg)
    else:
        msg = (
            f"{path}: array {key!r} uses zip compression method {info.compress_type}; only "
            "stored and deflated members (np.savez / np.savez_compressed) are read"
        )
        raise ArtifactError(msg)


def _header(member: IO[bytes], path: Path, key: str) -> tuple[tuple[int, ...], np.dtype]:
    try:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            msg = f"unsupported .npy format version {version}"
            raise ValueError(msg)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError) as exc:
        msg = f"{path}: array {key!r} has a malformed .npy header: {str(exc)[:200]}"
        raise ArtifactError(msg) from exc
    if dtype.hasobject:
        msg = f"{path}: array {key!r} cannot be read without pickle, which is refused (objects)"
        raise ArtifactError(msg)
    if dtype.kind != "f" or dtype.itemsize not in _FLOAT_KINDS or dtype.fields is not None:
        msg = f"{path}: array {key!r} has dtype {dtype}, expected float16, float32 or float64"
        raise ArtifactError(msg)
    return tuple(int(n) for n in shape), dtype


def _read_array(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, key: str
) -> torch.Tensor:
    try:
        with archive.open(info) as member:
            shape, dtype = _header(member, path, key)
            declared = math.prod(shape) * dtype.itemsize
            held = info.file_size - member.tell()
            if declared != held:
                state = "truncated" if declared > held else "padded"
                msg = (
                    f"{path}: array {key!r} is {state}: its header declares shape {shape} "
                    f"({declared} bytes of {dtype}) but the archive holds {held} bytes of data"
                )
                raise ArtifactError(msg)
        # Sizes are now proven consistent, so numpy allocates only what the file holds.
        with archive.open(info) as member:
            array = np.lib.format.read_array(member, allow_pickle=False)
    except ArtifactError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError) as exc:
        msg = f"{path}: array {key!r} is unreadable: {str(exc)[:200]}"
        raise ArtifactError(msg) from exc
    if array.shape != shape or array.dtype != dtype:
        msg = f"{path}: array {key!r} changed while it was read"
        raise ArtifactError(msg)
    native = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
    return torch.from_numpy(native)
