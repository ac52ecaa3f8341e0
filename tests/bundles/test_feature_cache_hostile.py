"""Hostile feature-cache shards: foreign names and dtypes, symlinks, FIFOs, planted links.

The cache is a speed-up, so a shard it did not write is skipped with a warning (its examples
are recomputed); what it cannot skip (non-finite values, a shard that breaks after indexing)
is an ArtifactError naming the shard. Nothing blocks, nothing is read or written outside.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from calibration.feature_cache import FeatureCache, text_key
from scope_guard.errors import ArtifactError, InputError

SEP = "\u241e"
NS = {"kind": "test"}


def fresh(tmp_path: Path) -> tuple[FeatureCache, str]:
    cache = FeatureCache(tmp_path / "cache", NS)
    key = text_key("prompt", "response")
    cache.put({key: {"val": np.array([0.5, 2.0], np.float32)}})
    return cache, key


def plant(cache: FeatureCache, tensors: dict[str, torch.Tensor], name: str = "zz") -> Path:
    path = cache.folder / f"shard-{name}.safetensors"
    save_file(tensors, str(path))
    return path


def test_shard_with_a_foreign_tensor_name_is_skipped(tmp_path, caplog) -> None:
    cache, _ = fresh(tmp_path)
    other = text_key("other")
    plant(cache, {f"{other}{SEP}val": torch.ones(2), "model.embed_tokens.weight": torch.ones(2)})
    reopened = FeatureCache(tmp_path / "cache", NS)
    assert other not in reopened  # the whole foreign shard is ignored, so it is recomputed
    assert "is not named" in caplog.text


def test_shard_with_a_bfloat16_tensor_is_skipped(tmp_path, caplog) -> None:
    cache, _ = fresh(tmp_path)
    other = text_key("other")
    plant(cache, {f"{other}{SEP}val": torch.ones(2, dtype=torch.bfloat16)})
    assert FeatureCache(tmp_path / "cache", NS).missing([other]) == [other]
    assert "numpy cannot hold" in caplog.text


def test_shard_symlinked_out_of_the_cache_is_skipped(tmp_path, caplog) -> None:
    cache, _ = fresh(tmp_path)
    other = text_key("other")
    outside = tmp_path / "outside.safetensors"
    save_file({f"{other}{SEP}val": torch.ones(2)}, str(outside))
    (cache.folder / "shard-link.safetensors").symlink_to(outside)
    assert FeatureCache(tmp_path / "cache", NS).missing([other]) == [other]
    assert "resolves outside" in caplog.text


def test_shard_that_is_a_fifo_does_not_block(tmp_path) -> None:
    cache, key = fresh(tmp_path)
    os.mkfifo(cache.folder / "shard-fifo.safetensors")
    # In a child process: a blocked open() would hold the GIL and freeze this test run.
    code = (
        "import sys; from calibration.feature_cache import FeatureCache; "
        f"c = FeatureCache(sys.argv[1], {NS!r}); print({key!r} in c)"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "cache")],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("opening the cache blocked on a FIFO shard")
    assert done.stdout.strip() == "True", done.stderr


def test_shard_that_is_a_directory_is_skipped(tmp_path) -> None:
    cache, key = fresh(tmp_path)
    (cache.folder / "shard-dir.safetensors").mkdir()
    assert key in FeatureCache(tmp_path / "cache", NS)


def test_non_finite_cached_features_are_an_artifact_error(tmp_path) -> None:
    cache, _ = fresh(tmp_path)
    other = text_key("other")
    shard = plant(cache, {f"{other}{SEP}val": torch.tensor([1.0, float("nan")])})
    reopened = FeatureCache(tmp_path / "cache", NS)
    with pytest.raises(ArtifactError, match="NaN or inf") as err:
        reopened.get([other])
    assert shard.name in str(err.value)


def test_shard_torn_after_indexing_is_an_artifact_error(tmp_path) -> None:
    cache, key = fresh(tmp_path)
    shard = cache._index[key]
    shard.write_bytes(b"torn")
    with pytest.raises(ArtifactError, match="unreadable") as err:
        cache.get([key])
    assert shard.name in str(err.value)


def test_namespace_json_planted_as_a_symlink_is_never_written_through(tmp_path) -> None:
    probe = FeatureCache(tmp_path / "cache", NS)
    meta = probe.folder / "namespace.json"
    meta.unlink()
    target = tmp_path / "victim.txt"  # does not exist: a dangling link the cache would create
    meta.symlink_to(target)
    FeatureCache(tmp_path / "cache", NS)
    assert not target.exists()


def test_keys_with_the_separator_are_refused_on_write(tmp_path) -> None:
    cache = FeatureCache(tmp_path / "cache", NS)
    with pytest.raises(InputError, match="free of"):
        cache.put({f"a{SEP}b": {"val": np.zeros(1)}})
