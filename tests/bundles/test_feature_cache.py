"""The on-disk feature cache: round trip, resume, no recomputation, corrupt shards."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.feature_cache import FeatureCache, text_key
from scope_guard.errors import ArtifactError


def test_round_trip_and_namespaces(tmp_path):
    cache = FeatureCache(tmp_path, {"reader": "a", "site": "resid_post@3"})
    rows = {
        text_key("p1", "r1"): {"idx": np.array([1, 5]), "val": np.array([0.5, 2.0], np.float32)},
        text_key("p2", "r2"): {"idx": np.array([], np.int64), "val": np.array([], np.float32)},
    }
    cache.put(rows)
    again = FeatureCache(tmp_path, {"reader": "a", "site": "resid_post@3"})
    assert len(again) == 2
    got = again.get(list(rows))
    for key, fields in rows.items():
        for name, value in fields.items():
            np.testing.assert_array_equal(got[key][name], value)
    other = FeatureCache(tmp_path, {"reader": "b", "site": "resid_post@3"})
    assert len(other) == 0
    assert other.folder != again.folder


def test_missing_keeps_order_and_skips_cached(tmp_path):
    cache = FeatureCache(tmp_path, {"k": 1})
    cache.put({"b": {"x": np.zeros(2)}})
    assert cache.missing(["a", "b", "c", "a"]) == ["a", "c"]


def test_unknown_key_is_an_error(tmp_path):
    with pytest.raises(ArtifactError, match="no entry"):
        FeatureCache(tmp_path, {"k": 1}).get(["nope"])


def test_corrupt_shard_is_ignored_and_recomputed(tmp_path):
    cache = FeatureCache(tmp_path, {"k": 1})
    shard = cache.put({"a": {"x": np.ones(3)}})
    assert shard is not None
    shard.write_bytes(b"torn write")
    reopened = FeatureCache(tmp_path, {"k": 1})
    assert reopened.missing(["a"]) == ["a"]


def test_text_key_is_stable_and_sensitive():
    assert text_key("p", "r") == text_key("p", "r")
    assert text_key("p", "r") != text_key("p", "r ")
    assert text_key("a\ud800b") == text_key("a\ud800b")  # lone surrogates hash, not crash


def test_reader_features_are_keyed_by_the_tokenizer(tmp_path, miniature_dir):
    """A tokenizer of the same size that splits text otherwise must not reuse cached features."""
    from synthetic_rag import synthetic_rag
    from tokenizers import normalizers
    from transformers import AutoTokenizer

    from calibration.extract import extract_features
    from scope_guard.reader import Reader

    data = synthetic_rag(n_sources=2, per_source=2)
    reader = Reader.from_pretrained(miniature_dir, ["resid_post@1"], dtype="float32")
    lower = AutoTokenizer.from_pretrained(miniature_dir)
    lower.backend_tokenizer.normalizer = normalizers.Lowercase()
    other = Reader(reader.decoder, lower, reader.sites, n_layers=reader.n_layers)

    def computed(r: Reader) -> int:
        got = extract_features(
            data, reader=r, raw_sites=r.sites, cache_dir=tmp_path, progress=False
        )
        return got.n_computed

    assert computed(reader) == len(data)
    assert computed(other) == len(data)
    assert computed(reader) == 0
