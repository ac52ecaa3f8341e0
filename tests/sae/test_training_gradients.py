"""The straight-through estimators, checked against gradients computed by hand.

Where a function is differentiable (the codes in the pre-activations, the reconstruction loss in
the weights and biases) autograd must give the true derivative; in the thresholds, where the
true derivative is zero almost everywhere, it must give the documented pseudo-derivative
``-(theta / eps) K((z - theta) / eps)`` (JumpReLU) and ``-(1 / eps) K((z - theta) / eps)`` (step).
"""

from __future__ import annotations

import pytest
import torch

from scope_guard.sae.training.autograd import jumprelu, rectangle, step
from scope_guard.sae.training.model import TrainableJumpReLU

EPS = 0.1
# Latent 0: 0.3 is above its threshold 0.2 but outside the kernel (|0.3 - 0.2| / eps = 1);
# latent 1: 0.52 lies within eps/2 of 0.5 (inside the kernel), and so does 0.46;
# latent 2: 1.0 is far above 0.4, 0.1 far below.
Z = torch.tensor([[0.3, 0.52, 1.0], [0.05, 0.46, 0.1]], dtype=torch.float64)
THETA = torch.tensor([0.2, 0.5, 0.4], dtype=torch.float64)
UPSTREAM = torch.tensor([[1.0, 2.0, -1.0], [0.5, -3.0, 4.0]], dtype=torch.float64)


def test_rectangle_kernel_is_open_unit_interval() -> None:
    u = torch.tensor([-0.5, -0.49, 0.0, 0.49, 0.5, 1.0])
    assert rectangle(u).tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_jumprelu_forward_and_pseudo_derivative() -> None:
    z, theta = Z.clone().requires_grad_(), THETA.clone().requires_grad_()
    out = jumprelu(z, theta, EPS)
    assert torch.equal(out.detach(), Z * (Z > THETA))
    grad_z, grad_theta = torch.autograd.grad((out * UPSTREAM).sum(), (z, theta))
    assert torch.equal(grad_z, UPSTREAM * (Z > THETA))  # the true derivative in z
    # By hand: only (row 0, latent 1) and (row 1, latent 1) are inside the kernel.
    expected = torch.tensor([0.0, -(0.5 / EPS) * (2.0 + -3.0), 0.0], dtype=torch.float64)
    torch.testing.assert_close(grad_theta, expected)


def test_step_has_no_gradient_in_z_and_the_pseudo_derivative_in_theta() -> None:
    z, theta = Z.clone().requires_grad_(), THETA.clone().requires_grad_()
    out = step(z, theta, EPS)
    assert torch.equal(out.detach(), (Z > THETA).double())
    grad_z, grad_theta = torch.autograd.grad((out * UPSTREAM).sum(), (z, theta))
    assert torch.equal(grad_z, torch.zeros_like(Z))
    expected = torch.tensor([0.0, -(1 / EPS) * (2.0 + -3.0), 0.0], dtype=torch.float64)
    torch.testing.assert_close(grad_theta, expected)


def test_true_derivative_in_theta_would_be_zero() -> None:
    # Why the estimator exists: nudging theta within the kernel changes nothing here.
    before = Z * (Z > THETA)
    after = Z * (Z > THETA + 1e-4)
    assert torch.equal(before, after)


@pytest.mark.parametrize("lam", [0.0, 0.7])
def test_one_training_step_gradients_by_hand(lam: float) -> None:
    gen = torch.Generator().manual_seed(3)
    model = TrainableJumpReLU(2, 3, init_threshold=0.1, generator=gen).double()
    with torch.no_grad():
        model.W_enc.copy_(torch.tensor([[1.0, 0.5, -0.3], [0.2, -1.0, 0.8]]))
        model.b_enc.copy_(torch.tensor([0.05, 0.1, -0.02]))
        model.threshold.copy_(torch.tensor([0.2, 0.45, 0.3]))
        model.W_dec.copy_(torch.tensor([[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]]))
        model.b_dec.copy_(torch.tensor([0.1, -0.2]))
    x = torch.tensor([[0.4, 0.3], [-0.2, -0.5]], dtype=torch.float64)
    eps = 0.2
    out = model.losses(x, lam, eps)
    out.loss.backward()

    W_enc, b_enc, theta = model.W_enc.detach(), model.b_enc.detach(), model.threshold.detach()
    W_dec, b_dec = model.W_dec.detach(), model.b_dec.detach()
    batch = x.shape[0]
    pre = x @ W_enc + b_enc
    active = (pre > theta).double()
    f = pre * active
    r = f @ W_dec + b_dec - x
    d_r = 2 * r / batch
    d_f = d_r @ W_dec.T
    d_pre = d_f * active
    kernel = rectangle((pre - theta) / eps)
    assert kernel.sum() > 0, "the example must put some pre-activation inside the kernel"
    d_theta = (d_f * -(theta / eps) * kernel).sum(0) + lam * (-(1 / eps) * kernel).sum(0) / batch

    torch.testing.assert_close(model.W_dec.grad, f.T @ d_r)
    torch.testing.assert_close(model.b_dec.grad, d_r.sum(0))
    torch.testing.assert_close(model.W_enc.grad, x.T @ d_pre)
    torch.testing.assert_close(model.b_enc.grad, d_pre.sum(0))
    torch.testing.assert_close(model.threshold.grad, d_theta)


def test_decoder_gradient_projection_keeps_rows_on_the_sphere_to_first_order() -> None:
    gen = torch.Generator().manual_seed(0)
    model = TrainableJumpReLU(4, 6, init_threshold=0.01, generator=gen)
    model.W_dec.grad = torch.randn(6, 4, generator=gen)
    model.project_decoder_grad()
    along = (model.W_dec.grad * model.W_dec.detach()).sum(dim=1)
    torch.testing.assert_close(along, torch.zeros(6), atol=1e-6, rtol=0)
