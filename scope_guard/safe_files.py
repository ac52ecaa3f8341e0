"""Confined, bounded reading of files that come from someone else (bundles, SAEs, caches).

A downloaded artifact is hostile until checked. Its loaders read it only through these helpers,
which guarantee that:

- a file name written *inside* an artifact (a manifest's file list) is a plain relative name,
  never absolute and never climbing out with ``..``;
- every file, after following symlinks, lies inside the artifact's folder (a symlink to
  ``/etc/passwd`` or ``../../secret`` is refused before it is opened);
- it is a regular file: a directory, FIFO, socket or device is refused from ``stat`` alone,
  so opening it can never block;
- JSON is bounded in bytes and nesting depth, UTF-8, one object, without duplicate keys.

A folder inside the Hugging Face cache (``models--org--name/snapshots/<rev>/...``) holds
symlinks into the repository's own ``blobs/`` folder; there the confinement root is the
repository folder, so cached downloads keep working and still cannot reach outside it.

Every refusal is an :class:`~scope_guard.errors.ArtifactError` naming the file.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from scope_guard.errors import ArtifactError

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "check_relative_name",
    "confined_file",
    "confinement_root",
    "read_bounded",
    "read_json_object",
]

MAX_JSON_BYTES = 16 * 1024 * 1024
"""Largest JSON file (manifest, SAE config) read; real ones are a few kilobytes."""
MAX_JSON_DEPTH = 64
"""Deepest nesting of JSON containers accepted; real files nest fewer than ten levels."""

_HF_REPO_PREFIXES = ("models--", "datasets--", "spaces--")


def check_relative_name(name: object, *, where: Path | str) -> str:
    """Refuse a file name from an artifact unless it is a plain name inside its folder.

    Args:
        name: The name as the artifact gives it.
        where: The artifact file that names it (for the message).

    Returns:
        ``name``, unchanged.

    Raises:
        ArtifactError: not a string, empty, absolute, with a drive or backslash, a NUL, or a
            ``.``/``..`` component.
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        msg = f"{where} names a file {name!r}: a file name must be a non-empty string"
        raise ArtifactError(msg)
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or "\\" in name:
        msg = f"{where} names the file {name!r}: only relative names inside its folder are allowed"
        raise ArtifactError(msg)
    if any(part in ("..", ".") for part in name.split("/")) or "" in name.split("/"):
        msg = f"{where} names the file {name!r}: '.', '..' and empty path parts are not allowed"
        raise ArtifactError(msg)
    return name


def confinement_root(folder: Path) -> Path:
    """The folder an artifact's files must resolve into: ``folder`` itself, or, inside the HF
    cache, the repository folder that holds the snapshot's blobs."""
    real = folder.resolve()
    for parent in (real, *real.parents):
        if parent.parent.name == "snapshots" and parent.parent.parent.name.startswith(
            _HF_REPO_PREFIXES
        ):
            return parent.parent.parent
    return real


def confined_file(path: Path, *, root: Path, what: str = "file") -> Path:
    """Check that ``path`` is a regular file that resolves inside ``root``.

    Args:
        path: The file (it may be a symlink).
        root: The folder it must stay in (see :func:`confinement_root`).
        what: What the file is, for the message (``"bundle file"``, ``"SAE config"``...).

    Returns:
        The resolved path, to open.

    Raises:
        ArtifactError: missing, a symlink loop, outside ``root``, or not a regular file.
    """
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError as exc:
        msg = f"{what} {path} is missing"
        raise ArtifactError(msg) from exc
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on Python < 3.13
        msg = f"{what} {path} cannot be resolved: {exc}"
        raise ArtifactError(msg) from exc
    real_root = root.resolve()
    if not real.is_relative_to(real_root):
        msg = (
            f"{what} {path} resolves outside its folder {real_root} (a symlink leaving the "
            "artifact); refused"
        )
        raise ArtifactError(msg)
    _require_regular(real, os.stat(real).st_mode, what=f"{what} {path}")
    return real


def _require_regular(path: Path, mode: int, *, what: str) -> None:
    if stat.S_ISREG(mode):
        return
    kind = (
        "a directory"
        if stat.S_ISDIR(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    msg = f"{what} is {kind}, expected a regular file"
    raise ArtifactError(msg)


def read_bounded(path: Path, *, max_bytes: int, what: str = "file") -> bytes:
    """Read a whole regular file of at most ``max_bytes`` bytes.

    The file is opened non-blocking and checked again with ``fstat``, so a file swapped for a
    FIFO after :func:`confined_file` cannot stall the reader.

    Raises:
        ArtifactError: unreadable, not a regular file, or larger than ``max_bytes``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        msg = f"cannot open {what} {path}: {exc.strerror or exc}"
        raise ArtifactError(msg) from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        _require_regular(path, info.st_mode, what=f"{what} {path}")
        if info.st_size > max_bytes:
            msg = f"{what} {path} has {info.st_size} bytes, more than the {max_bytes} allowed"
            raise ArtifactError(msg)
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew while being read
        msg = f"{what} {path} has more than the {max_bytes} bytes allowed"
        raise ArtifactError(msg)
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # Two parsers may keep different copies; what was hashed must be what is used.
            msg = f"duplicate key {key[:80]!r}"
            raise ValueError(msg)
        out[key] = value
    return out


def _depth_exceeds(data: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return False


def read_json_object(
    path: Path,
    *,
    root: Path,
    what: str = "JSON file",
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> dict[str, Any]:
    """Read a JSON object from an artifact file, with every bound of this module.

    Args:
        path: The file.
        root: The folder it must stay in.
        what: What the file is, for messages.
        max_bytes: Largest file accepted.
        max_depth: Deepest container nesting accepted.

    Returns:
        The parsed object (``NaN``/``Infinity`` literals are kept: callers that need finite
        numbers check the fields they use).

    Raises:
        ArtifactError: confinement, size, encoding, syntax, duplicate keys, too deep, too long
            a number, or a top-level value that is not an object.
    """
    real = confined_file(path, root=root, what=what)
    data = read_bounded(real, max_bytes=max_bytes, what=what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"{what} {path} is not UTF-8 text: {exc.reason} at byte {exc.start}"
        raise ArtifactError(msg) from exc
    try:
        parsed = json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError as exc:
        msg = f"{what} {path} nests JSON more than {max_depth} levels deep"
        raise ArtifactError(msg) from exc
    except ValueError as exc:  # JSONDecodeError, duplicate keys, integers over 4300 digits
        msg = f"{what} {path} is not valid JSON: {str(exc)[:200]}"
        raise ArtifactError(msg) from exc
    if not isinstance(parsed, dict):
        msg = f"{what} {path} must hold a JSON object, got {type(parsed).__name__}"
        raise ArtifactError(msg)
    if _depth_exceeds(parsed, max_depth):
        msg = f"{what} {path} nests JSON more than {max_depth} levels deep"
        raise ArtifactError(msg)
    return parsed
