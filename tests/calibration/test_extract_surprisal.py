"""Per-token surprisal in feature extraction: equal to a direct read, equal again from the cache,
keyed by everything surprisal depends on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic_rag import synthetic_rag

from calibration.data import prompt_of
from calibration.extract import _stream_namespace, extract_features
from calibration.feature_cache import FeatureCache, text_key
from calibration.reader_blocks import surprisal_block
from detectors.feature_blocks import assemble
from detectors.feature_blocks import surprisal_block as default_surprisal_block
from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.reader import Reader
from scope_guard.sites import Site, SiteKind

SITE = Site.parse("resid_post@2")


def _reader(miniature_dir):
    return Reader.from_pretrained(miniature_dir, ["resid_post@2"], dtype="float32", surprisal=True)


@pytest.fixture(scope="module")
def reader(miniature_dir):
    return _reader(miniature_dir)


def _extract(data, reader, cache, **kwargs):
    return extract_features(
        data, reader=reader, raw_sites=[], progress=False, cache_dir=cache, **kwargs
    )


def test_surprisal_equals_a_direct_read_and_the_cache(reader, tmp_path):
    data = synthetic_rag(n_sources=3, per_source=2)
    first = _extract(data, reader, tmp_path, surprisal=True, chunk_size=4)
    assert first.n_computed == len(data)
    again = _extract(data, reader, tmp_path, surprisal=True)
    assert again.n_computed == 0
    block = surprisal_block(first)
    for i, example in enumerate(data):
        reading = reader.read(prompt_of(example), example.response)
        values = reading.token_surprisal()
        direct = np.stack([values.surprisal.numpy(), values.entropy.numpy()], axis=1)
        for got in (first, again):
            assert got.token_surprisal is not None
            np.testing.assert_array_equal(got.token_surprisal[i], direct)
            np.testing.assert_allclose(
                got.matrix([block])[i], assemble([block], reading=reading)[0], rtol=1e-12
            )


def test_site_streams_are_shared_with_a_plain_reader(reader, miniature_dir, tmp_path):
    data = synthetic_rag(n_sources=2, per_source=2)
    _extract(data, reader, tmp_path, token_sites=["resid_post@2"], surprisal=True)
    plain = Reader.from_pretrained(miniature_dir, ["resid_post@2"], dtype="float32")
    # The activations are the same bits (tests/reader/test_surprisal.py): nothing to recompute.
    reused = _extract(data, plain, tmp_path, token_sites=["resid_post@2"])
    assert reused.n_computed == 0
    assert reused.token_surprisal is None


def test_a_new_surprisal_stream_leaves_the_filled_streams_alone(reader, miniature_dir, tmp_path):
    data = synthetic_rag(n_sources=2, per_source=2)
    plain = Reader.from_pretrained(miniature_dir, ["resid_post@2"], dtype="float32")
    # One example per chunk here, all in one chunk below: a rewrite would be a new shard.
    _extract(data, plain, tmp_path, token_sites=["resid_post@2"], chunk_size=1)
    tokens = FeatureCache(tmp_path, _stream_namespace(plain, "tokens", SITE)).folder
    shards = sorted(tokens.glob("shard-*"))
    added = _extract(data, reader, tmp_path, token_sites=["resid_post@2"], surprisal=True)
    assert added.n_computed == len(data)  # the surprisal stream was missing
    assert sorted(tokens.glob("shard-*")) == shards  # nothing rewritten beside it
    assert added.token_surprisal is not None


def test_the_surprisal_stream_is_keyed_by_the_head(reader, miniature_dir, tmp_path):
    data = synthetic_rag(n_sources=2, per_source=2)
    first = _extract(data, reader, tmp_path, surprisal=True)
    other = _reader(miniature_dir)
    with torch.no_grad():
        other.decoder.norm.weight.add_(0.05)  # same layers up to every site: only surprisal moves
    assert other.fingerprint_upto(2) == reader.fingerprint_upto(2)
    second = _extract(data, other, tmp_path, surprisal=True)
    assert second.n_computed == len(data)
    assert first.token_surprisal is not None
    assert second.token_surprisal is not None
    assert not np.array_equal(first.token_surprisal[0], second.token_surprisal[0])


def test_surprisal_needs_a_surprisal_reader(miniature_dir):
    plain = Reader.from_pretrained(miniature_dir, ["resid_post@1"], dtype="float32")
    with pytest.raises(ConfigError, match="surprisal=True"):
        extract_features(synthetic_rag(n_sources=1, per_source=1), reader=plain, surprisal=True)
    with pytest.raises(ConfigError, match="need a reader"):
        extract_features(synthetic_rag(n_sources=1, per_source=1), surprisal=True)
    without = extract_features(
        synthetic_rag(n_sources=1, per_source=1), reader=plain, raw_sites=["resid_post@1"]
    )
    with pytest.raises(ConfigError, match="surprisal=True"):
        surprisal_block(without)
    with pytest.raises(ConfigError, match="surprisal=True"):
        without.matrix([default_surprisal_block()])


def test_a_damaged_cache_is_an_artifact_error(reader, tmp_path):
    data = synthetic_rag(n_sources=1, per_source=1)
    example = data[0]
    site = Site(reader.n_layers - 1, SiteKind.RESID_POST)
    cache = FeatureCache(tmp_path, _stream_namespace(reader, "surprisal", site))
    key = text_key(prompt_of(example), example.response)
    cache.put({key: {"tok": np.zeros((4, 3), dtype=np.float32)}})
    with pytest.raises(ArtifactError, match="damaged"):
        _extract(data, reader, tmp_path, surprisal=True)
