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

from scope_guard.errors import ArtifactError

__all__ = ["FeatureCache", "text_key"]

logger = logging.getLogger(__name__)

_SEP = "\u241e"  # separates an example key from a field name inside a shard


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
        meta = self.folder / "namespace.json"
        if not meta.exists():
            meta.write_text(json.dumps(self.namespace, indent=2, default=str), encoding="utf-8")
        self._index: dict[str, Path] = {}
        for shard in sorted(self.folder.glob("shard-*.safetensors")):
            self._index_shard(shard)

    def _index_shard(self, shard: Path) -> None:
        try:
            with safe_open(str(shard), framework="pt") as handle:
                keys = list(handle.keys())
        except (OSError, SafetensorError) as exc:  # a torn or corrupt shard: recompute it
            logger.warning("ignoring unreadable cache shard %s: %s", shard, exc)
            return
        for key in keys:
            self._index[key.split(_SEP, 1)[0]] = shard

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
            with safe_open(str(shard), framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    key, field = name.split(_SEP, 1)
                    if key in wanted_here:
                        out[key][field] = handle.get_tensor(name).numpy()
        return out

    def put(self, rows: Mapping[str, Mapping[str, np.ndarray]]) -> Path | None:
        """Write ``{key: {field: array}}`` as one new shard; returns its path."""
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
