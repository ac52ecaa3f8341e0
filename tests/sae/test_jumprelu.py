from __future__ import annotations

import numpy as np
import pytest
import torch
from sae_builders import D_MODEL, D_SAE, random_inputs, random_sae

from scope_guard.errors import ConfigError, InputError
from scope_guard.sae import JumpReLUSAE, SAEInfo, SAEOutput


def hand_sae(dtype: torch.dtype = torch.float32) -> JumpReLUSAE:
    """W_enc = 2 I, thresholds [1.0, 0.5, 0.25], W_dec = I, b_dec = [1, 2, 3]."""
    return JumpReLUSAE(
        W_enc=2 * torch.eye(3, dtype=dtype),
        W_dec=torch.eye(3, dtype=dtype),
        b_enc=torch.zeros(3, dtype=dtype),
        b_dec=torch.tensor([1.0, 2.0, 3.0], dtype=dtype),
        threshold=torch.tensor([1.0, 0.5, 0.25], dtype=dtype),
        info=SAEInfo(d_model=3, d_sae=3),
    )


def test_encode_hand_computed() -> None:
    # pre = 2 * 0.3 = 0.6 for every latent; only thresholds 0.5 and 0.25 are below it.
    codes = hand_sae().encode(torch.full((1, 3), 0.3))
    assert torch.equal(codes, torch.tensor([[0.0, 0.6, 0.6]]))


def test_encode_hand_computed_with_bias_and_negatives() -> None:
    sae = hand_sae(torch.float64)
    sae.b_enc.copy_(torch.tensor([0.5, 0.0, -0.1], dtype=torch.float64))
    # pre = [0.6 + 0.5, -0.6, 0.6 - 0.1] = [1.1, -0.6, 0.5] -> 1.1 > 1.0, -0.6 < 0.5, 0.5 > 0.25
    codes = sae.encode(torch.tensor([0.3, -0.3, 0.3], dtype=torch.float64))
    torch.testing.assert_close(codes, torch.tensor([1.1, 0.0, 0.5], dtype=torch.float64))


def test_threshold_is_strict() -> None:
    sae = hand_sae()
    sae.threshold.copy_(torch.tensor([0.6, 0.6, 0.6]))
    # 2 * 0.3 == 0.6 exactly in float32: at the threshold the latent is off.
    assert torch.equal(sae.encode(torch.full((3,), 0.3)), torch.zeros(3))


def test_negative_threshold_still_relu() -> None:
    sae = hand_sae()
    sae.threshold.fill_(-1.0)
    codes = sae.encode(torch.tensor([-0.25, 0.25, 0.0]))
    assert torch.equal(codes, torch.tensor([0.0, 0.5, 0.0]))


def test_decode_and_forward_hand_computed() -> None:
    sae = hand_sae()
    out = sae(torch.full((2, 3), 0.3))
    assert isinstance(out, SAEOutput)
    assert torch.equal(out.codes, torch.tensor([[0.0, 0.6, 0.6]] * 2))
    assert torch.equal(out.reconstruction, torch.tensor([[1.0, 2.6, 3.6]] * 2))


def test_encode_matches_formula_on_batches(sae: JumpReLUSAE) -> None:
    x = random_inputs(12).reshape(3, 4, D_MODEL)
    pre = x @ sae.W_enc + sae.b_enc
    expected = torch.where(pre > sae.threshold, pre, torch.zeros_like(pre)).clamp_min(0)
    codes = sae.encode(x)
    assert codes.shape == (3, 4, D_SAE)
    assert torch.equal(codes, expected)
    assert 0 < int((codes > 0).sum()) < codes.numel()  # sparse, not empty


def test_encode_casts_input_to_sae_dtype(sae: JumpReLUSAE, inputs: torch.Tensor) -> None:
    codes = sae.encode(inputs.to(torch.float64))
    assert codes.dtype == torch.float32
    assert torch.equal(codes, sae.encode(inputs))
    assert torch.equal(sae.encode(inputs.numpy()), sae.encode(inputs))


def test_encode_rejects_wrong_width(sae: JumpReLUSAE) -> None:
    with pytest.raises(InputError, match=r"\(\.\.\., 8\)"):
        sae.encode(torch.zeros(2, D_MODEL + 1))


def test_to_dtype_keeps_latent_ids(sae: JumpReLUSAE, inputs: torch.Tensor) -> None:
    expected = sae.encode(inputs).to(torch.float64)
    sae64 = sae.to(torch.float64)
    assert sae64.dtype == torch.float64
    assert sae64.latent_ids.dtype == torch.long
    torch.testing.assert_close(sae64.encode(inputs), expected, rtol=1e-5, atol=1e-5)


def test_narrow_equals_column_slice(sae: JumpReLUSAE, inputs: torch.Tensor) -> None:
    keep = [3, 0, 15, 7]
    narrow = sae.narrow(keep)
    assert narrow.n_latents == 4
    assert narrow.latent_ids.tolist() == keep
    assert narrow.is_narrowed
    assert not sae.is_narrowed
    assert torch.equal(narrow.encode(inputs, exact=True), sae.encode(inputs, exact=True)[:, keep])
    # The fast path differs from the column slice only by float32 summation order.
    torch.testing.assert_close(narrow.encode(inputs), sae.encode(inputs)[:, keep])


@pytest.mark.parametrize(
    ("d_model", "d_sae", "n_tokens"), [(8, 16, 1), (64, 256, 3), (256, 2048, 5)]
)
@pytest.mark.parametrize("n_keep", [1, 2, 7, 16, 33])
def test_narrow_is_exact_for_many_shapes(
    d_model: int, d_sae: int, n_tokens: int, n_keep: int
) -> None:
    sae = random_sae(d_model=d_model, d_sae=d_sae)
    x = 3 * random_inputs(n_tokens, d_model=d_model)
    keep = torch.randperm(d_sae, generator=torch.Generator().manual_seed(n_keep))[:n_keep]
    full = sae.encode(x, exact=True)
    assert torch.equal(sae.narrow(keep.tolist()).encode(x, exact=True), full[:, keep])
    torch.testing.assert_close(sae.encode(x), full, rtol=1e-4, atol=1e-3)  # cancellation


def test_narrow_of_narrow_uses_original_ids(sae: JumpReLUSAE, inputs: torch.Tensor) -> None:
    twice = sae.narrow(np.array([2, 9, 11])).narrow([11, 2])
    assert twice.latent_ids.tolist() == [11, 2]
    assert torch.equal(twice.encode(inputs, exact=True), sae.encode(inputs, exact=True)[:, [11, 2]])
    with pytest.raises(ConfigError, match=r"\[9\]"):
        sae.narrow([2, 11]).narrow([9])


@pytest.mark.parametrize(
    ("latents", "match"),
    [
        ([16], r"out of range.*0\.\.15"),
        ([-1], "out of range"),
        ([1, 2, 1], r"duplicate.*\[1\]"),
        ([], "at least one"),
        ([True], "integers"),
        ([1.5], "integers"),
    ],
)
def test_narrow_rejects_bad_ids(sae: JumpReLUSAE, latents: list, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        sae.narrow(latents)


def test_narrowed_sae_refuses_to_decode(sae: JumpReLUSAE, inputs: torch.Tensor) -> None:
    narrow = sae.narrow([1, 2])
    with pytest.raises(ConfigError, match="narrowed"):
        narrow(inputs)
    # A permutation of every latent is narrowed too: its codes are not in the decoder's order.
    assert sae.narrow(list(range(D_SAE))[::-1]).is_narrowed


def test_constructor_checks_shapes() -> None:
    sae = random_sae()
    with pytest.raises(ConfigError, match="W_dec"):
        JumpReLUSAE(sae.W_enc, sae.W_dec.T, sae.b_enc, sae.b_dec, sae.threshold, info=sae.info)
    with pytest.raises(ConfigError, match="d_sae"):
        JumpReLUSAE(
            sae.W_enc,
            sae.W_dec,
            sae.b_enc,
            sae.b_dec,
            sae.threshold,
            info=SAEInfo(d_model=D_MODEL, d_sae=D_SAE + 1),
        )
    with pytest.raises(ConfigError, match="d_model"):
        SAEInfo(d_model=0, d_sae=4)
