"""An on-disk cache of per-example features: safetensors shards, resumable, append-only.

A cache *namespace* is keyed by everything that determines the features (reader fingerprint,
SAE fingerprint, site, pooling, feature-set version...); within it each example is keyed by a
hash of its text. Every :meth:`FeatureCache.put` writes one new shard atomically (temporary
file, then rename), so an interrupted extraction keeps every shard it finished and a rerun only
computes what is missing. Shards are never rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from scope_guard.errors import ArtifactError, InputError
from scope_guard.safe_files import confined_file

__all__ = ["FeatureCache", "text_key"]

logger = logging.getLogger(__name__)

_SEP = "\u241e"  # separates an example key from a field name inside a shard
# safetensors dtype names numpy can represent (bfloat16 and float8 it cannot).
_NUMPY_DTYPES = {"F16", "F32", "F64", "I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64"}
_NUMPY_DTYPES.add("BOOL")


def _checked(tensor: torch.Tensor, name: str, shard: Path) -> np.ndarray:
    array = tensor.numpy()
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        key = name.split(_SEP, 1)[0]
        msg = (
            f"feature cache shard {shard} holds NaN or inf features for {key}; delete the "
            "shard to recompute them"
        )
        raise ArtifactError(msg)
    return array


def text_key(*parts: Any) -> str:
    """A stable hash of an example's inputs (JSON of ``parts``)."""
    blob = json.dumps(parts, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class FeatureCache:
    """Per-example feature arrays under ``root/<namespace hash>/shard-*.safetensors``.

    Args:
        root: Cache folder (created if missing).
        namespace: What the features depend on; written to ``namespace.json`` for humans.
    """

    def __init__(self, root: str | os.PathLike[str], namespace: Mapping[str, Any]) -> None:
        self.namespace = dict(namespace)
        digest = text_key(self.namespace)[:16]
        self.folder = Path(root) / digest
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_namespace(self.folder / "namespace.json")
        self._index: dict[str, Path] = {}
        for shard in sorted(self.folder.glob("shard-*.safetensors")):
            self._index_shard(shard)

    def _write_namespace(self, meta: Path) -> None:
        if meta.is_symlink() or meta.exists():
            return
        text = json.dumps(self.namespace, indent=2, default=str)
        # O_EXCL | O_NOFOLLOW: a symlink planted here is never followed to write elsewhere.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(meta, flags, 0o644)
        except FileExistsError:  # another writer was first: its content is the same
            return
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)

    def _shard_names(self, shard: Path) -> list[str] | str:
        """The tensor names of one of this cache's shards, or why ``shard`` is not one."""
        try:
            real = confined_file(shard, root=self.folder, what="cache shard")
            with safe_open(str(real), framework="pt") as handle:
                names = list(handle.keys())
                dtypes = {name: handle.get_slice(name).get_dtype() for name in names}
        except ArtifactError as exc:
            return str(exc)
        except (OSError, SafetensorError) as exc:
            return f"unreadable: {exc}"
        for name in names:
            key, sep, field = name.partition(_SEP)
            if not (key and sep and field) or _SEP in field:
                return f"tensor {name[:60]!r} is not named '<key>{_SEP}<field>'"
            if dtypes[name] not in _NUMPY_DTYPES:
                return f"tensor {name[:60]!r} has dtype {dtypes[name]}, which numpy cannot hold"
        return names

    def _index_shard(self, shard: Path) -> None:
        # A shard this cache did not write (torn, foreign, a symlink out, a FIFO) is skipped,
        # so its examples are recomputed: the cache is a speed-up, never a source of truth.
        names = self._shard_names(shard)
        if isinstance(names, str):
            logger.warning("ignoring cache shard %s: %s", shard, names)
            return
        for name in names:
            self._index[name.split(_SEP, 1)[0]] = shard

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def missing(self, keys: Iterable[str]) -> list[str]:
        """Keys not in the cache, in the given order, without duplicates."""
        seen: set[str] = set()
        out = []
        for key in keys:
            if key not in self._index and key not in seen:
                seen.add(key)
                out.append(key)
        return out

    def get(self, keys: Iterable[str]) -> dict[str, dict[str, np.ndarray]]:
        """The cached fields of each key (every key must be cached)."""
        wanted = list(dict.fromkeys(keys))
        by_shard: dict[Path, list[str]] = {}
        for key in wanted:
            if key not in self._index:
                msg = f"feature cache {self.folder} has no entry {key}"
                raise ArtifactError(msg)
            by_shard.setdefault(self._index[key], []).append(key)
        out: dict[str, dict[str, np.ndarray]] = {k: {} for k in wanted}
        for shard, shard_keys in by_shard.items():
            wanted_here = set(shard_keys)
            try:
                real = confined_file(shard, root=self.folder, what="cache shard")
                with safe_open(str(real), framework="pt") as handle:
                    for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                        key, _, field = name.partition(_SEP)
                        if key in wanted_here:
                            out[key][field] = _checked(handle.get_tensor(name), name, shard)
            except (OSError, SafetensorError, TypeError) as exc:
                msg = f"feature cache shard {shard} became unreadable: {exc}; delete it"
                raise ArtifactError(msg) from exc
        return out

    def put(self, rows: Mapping[str, Mapping[str, np.ndarray]]) -> Path | None:
        """Write ``{key: {field: array}}`` as one new shard; returns its path."""
        bad = [
            k for k, fields in rows.items() if not k or _SEP in k or any(_SEP in f for f in fields)
        ]
        if bad:
            msg = f"cache keys and field names must be non-empty and free of {_SEP!r}: {bad[:3]}"
            raise InputError(msg)
        tensors = {
            f"{key}{_SEP}{field}": torch.from_numpy(np.ascontiguousarray(value))
            for key, fields in rows.items()
            for field, value in fields.items()
        }
        if not tensors:
            return None
        handle, tmp = tempfile.mkstemp(prefix=".shard-", suffix=".tmp", dir=self.folder)
        os.close(handle)
        try:
            save_file(tensors, tmp)
            # Name by content so concurrent writers never collide and reruns are idempotent.
            final = self.folder / f"shard-{text_key(sorted(tensors))[:20]}.safetensors"
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._index_shard(final)
        return final
