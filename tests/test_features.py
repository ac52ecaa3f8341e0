"""Pooling and encoding of readings into sparse features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scope_guard.errors import ConfigError
from scope_guard.features import (
    Pooling,
    SparseVector,
    encode_reading,
    feature_names,
    pool_codes,
)
from scope_guard.reader import Reading
from scope_guard.sae.jumprelu import JumpReLUSAE, SAEInfo
from scope_guard.sites import Site

SITE = Site(3, "resid_post")


def _reading(acts: torch.Tensor) -> Reading:
    return _reading_at(SITE, acts)


def _reading_at(site: Site, acts: torch.Tensor) -> Reading:
    n = acts.shape[0]
    return Reading(
        activations={site: acts},
        token_ids=tuple(range(n)),
        tokens=tuple("t" for _ in range(n)),
        offsets=tuple((i, i + 1) for i in range(n)),
        response="t" * n,
        prompt_truncated=False,
        response_truncated=False,
        n_prompt_tokens_dropped=0,
        n_tokens_read=n + 5,
        reader="test",
        is_stand_in=True,
    )


def _sae(d_model: int = 4, d_sae: int = 6, seed: int = 0) -> JumpReLUSAE:
    g = torch.Generator().manual_seed(seed)
    return JumpReLUSAE(
        torch.randn(d_model, d_sae, generator=g),
        torch.randn(d_sae, d_model, generator=g),
        torch.randn(d_sae, generator=g) * 0.1,
        torch.zeros(d_model),
        torch.full((d_sae,), 0.5),
        info=SAEInfo(d_model=d_model, d_sae=d_sae, site=SITE),
    )


def test_pool_codes_by_hand():
    codes = torch.tensor([[0.0, 2.0, 0.0], [4.0, 0.0, 0.0]])
    assert pool_codes(codes, "mean").tolist() == [2.0, 1.0, 0.0]
    assert pool_codes(codes, "max").tolist() == [4.0, 2.0, 0.0]
    assert pool_codes(codes, "mean_max").tolist() == [2.0, 1.0, 0.0, 4.0, 2.0, 0.0]


def test_pool_zero_tokens_is_zeros():
    assert pool_codes(torch.zeros((0, 3)), "mean_max").tolist() == [0.0] * 6


def test_pool_rejects_bad_input():
    with pytest.raises(ConfigError, match="unknown pooling 'median'"):
        pool_codes(torch.zeros((2, 3)), "median")
    with pytest.raises(ConfigError, match="n_tokens, n_latents"):
        pool_codes(torch.zeros(3), "mean")


def test_sparse_vector_round_trip():
    dense = np.array([0.0, 1.5, 0.0, 0.0, 2.0], dtype=np.float32)
    vec = SparseVector.from_dense(dense)
    assert vec.indices.tolist() == [1, 4]
    assert vec.nnz == 2
    np.testing.assert_array_equal(vec.to_dense(), dense)


def test_encode_reading_matches_hand_computation():
    sae = _sae()
    acts = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    feats = encode_reading(_reading(acts), {SITE: sae}, "mean_max")[SITE]
    pre = acts @ sae.W_enc + sae.b_enc
    expected_codes = torch.relu(pre) * (pre > sae.threshold)
    torch.testing.assert_close(feats.codes, expected_codes)
    expected = torch.cat([expected_codes.mean(0), expected_codes.amax(0)]).numpy()
    np.testing.assert_allclose(feats.pooled.to_dense(), expected, rtol=1e-6)
    np.testing.assert_allclose(
        feats.raw, torch.cat([acts.mean(0), acts.amax(0)]).numpy(), rtol=1e-6
    )
    assert feats.latent_ids.tolist() == list(range(6))


def test_narrowed_sae_gives_the_same_columns():
    sae = _sae(d_sae=32)
    keep = [30, 2, 17, 5]
    acts = torch.randn(7, 4, generator=torch.Generator().manual_seed(2))
    full = encode_reading(_reading(acts), {SITE: sae}, "max")[SITE]
    narrow = encode_reading(_reading(acts), {SITE: sae.narrow(keep)}, "max")[SITE]
    torch.testing.assert_close(narrow.codes, full.codes[:, keep])
    assert narrow.latent_ids.tolist() == keep
    assert feature_names(SITE, narrow.latent_ids, "max") == [
        "resid_post@3/max/30",
        "resid_post@3/max/2",
        "resid_post@3/max/17",
        "resid_post@3/max/5",
    ]


def test_encode_reading_width_mismatch():
    with pytest.raises(ConfigError, match="width 4"):
        encode_reading(_reading(torch.randn(3, 8)), {SITE: _sae()})


def test_sae_of_another_site_is_refused():
    """resid_post and mlp_out of one layer have one width: only the SAE's own site tells."""
    acts = torch.randn(3, 4)
    with pytest.raises(ConfigError, match="given for mlp_out@3 was trained on resid_post@3"):
        encode_reading(_reading_at(Site(3, "mlp_out"), acts), {"mlp_out@3": _sae()})
    base = _sae()
    unknown = JumpReLUSAE(
        base.W_enc,
        base.W_dec,
        base.b_enc,
        base.b_dec,
        base.threshold,
        info=SAEInfo(d_model=4, d_sae=6),  # no site recorded: nothing to compare
    )
    feats = encode_reading(_reading_at(Site(3, "mlp_out"), acts), {"mlp_out@3": unknown})
    assert feats["mlp_out@3"].codes.shape == (3, 6)


def test_feature_lookup_by_spelling():
    feats = encode_reading(_reading(torch.randn(2, 4)), {"blocks.3.hook_resid_post": _sae()})
    assert feats["resid_post@3"].site == SITE
    assert feats.pooling is Pooling.MEAN_MAX
    with pytest.raises(ConfigError, match="no features for site"):
        feats["mlp_out@3"]
