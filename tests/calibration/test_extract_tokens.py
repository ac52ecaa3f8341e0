"""Per-token activations and lookback ratios in feature extraction: equal to a direct read,
and equal again from the cache."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_rag import synthetic_rag

from calibration.data import prompt_of
from calibration.extract import extract_features
from scope_guard.errors import ConfigError
from scope_guard.reader import Reader


@pytest.fixture(scope="module")
def reader(miniature_dir):
    return Reader.from_pretrained(miniature_dir, ["resid_post@2"], dtype="float32", lookback=True)


def test_tokens_and_lookback_equal_a_direct_read_and_the_cache(reader, tmp_path):
    data = synthetic_rag(n_sources=3, per_source=2)
    first = extract_features(
        data,
        reader=reader,
        raw_sites=[],
        token_sites=["resid_post@2"],
        lookback=True,
        cache_dir=tmp_path,
        progress=False,
        chunk_size=4,
    )
    assert first.n_computed == len(data)
    again = extract_features(
        data,
        reader=reader,
        raw_sites=[],
        token_sites=["resid_post@2"],
        lookback=True,
        cache_dir=tmp_path,
        progress=False,
    )
    assert again.n_computed == 0
    site = reader.sites[0]
    assert first.lookback_shape == (3, 4)
    for i, example in enumerate(data):
        reading = reader.read(prompt_of(example), example.response)
        direct = reading.activation(site).numpy()
        ratios = reading.lookback_ratios().reshape(reading.n_tokens, -1).numpy()
        for got in (first, again):
            np.testing.assert_array_equal(got.tokens[site][i], direct)
            np.testing.assert_array_equal(got.token_offsets[i], np.asarray(reading.offsets))
            np.testing.assert_allclose(got.lookback[i], ratios.mean(axis=0), rtol=1e-6)
            np.testing.assert_array_equal(got.token_lookback[i], ratios)


def test_lookback_needs_a_lookback_reader(miniature_dir):
    plain = Reader.from_pretrained(miniature_dir, ["resid_post@1"], dtype="float32")
    with pytest.raises(ConfigError, match="lookback=True"):
        extract_features(synthetic_rag(n_sources=1, per_source=1), reader=plain, lookback=True)
