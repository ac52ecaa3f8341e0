"""The JumpReLU sparse autoencoder that Gemma Scope publishes, for inference.

Encoding follows Gemma Scope exactly (Lieberum et al. 2024)::

    pre = x @ W_enc + b_enc
    f   = relu(pre) * (pre > threshold)

There is no ``b_dec`` subtraction before encoding (SAELens calls this
``apply_b_dec_to_input = False`` for Gemma Scope). Decoding is ``f @ W_dec + b_dec``.

A :class:`JumpReLUSAE` can be *narrowed* to the latents a probe actually uses; the narrowed SAE
computes exactly those columns of the full encoding at a fraction of the cost.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch

from scope_guard.errors import ConfigError, InputError
from scope_guard.sites import Site

__all__ = ["JumpReLUSAE", "SAEInfo", "SAEOutput"]

logger = logging.getLogger(__name__)

#: The five tensors of a JumpReLU SAE, in the literature's names.
TENSOR_NAMES: tuple[str, ...] = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")


@dataclass(frozen=True)
class SAEInfo:
    """What an SAE is, independent of its weights.

    Attributes:
        d_model: Width of the activations the SAE reads (for attention SAEs: the concatenated
            heads, ``n_heads * head_dim``).
        d_sae: Number of latents of the *original* SAE (not of a narrowed copy).
        site: Where in the model the SAE reads, when known.
        source: Where the SAE came from: a registry id or a local path.
        neuronpedia_id: Neuronpedia's id of the SAE (``"gemma-2-2b/20-gemmascope-res-16k"``),
            when one exists.
        model_name: The model the SAE was trained on (``"gemma-2-2b"``), when known.
    """

    d_model: int
    d_sae: int
    site: Site | None = None
    source: str | None = None
    neuronpedia_id: str | None = None
    model_name: str | None = None

    def __post_init__(self) -> None:
        for name in ("d_model", "d_sae"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                msg = f"SAEInfo.{name} must be a positive integer, got {value!r}"
                raise ConfigError(msg)


class SAEOutput(NamedTuple):
    """Result of :meth:`JumpReLUSAE.forward`.

    Attributes:
        codes: Sparse codes, shape ``(..., n_latents)``, non-negative.
        reconstruction: Decoded activations, shape ``(..., d_model)``.
    """

    codes: torch.Tensor
    reconstruction: torch.Tensor


class JumpReLUSAE(torch.nn.Module):
    """A JumpReLU SAE (Gemma Scope convention), possibly narrowed to a subset of latents.

    All weights are buffers, not parameters: this class is for inference, and buffers follow
    ``.to(dtype=..., device=...)`` like parameters do. The integer buffer ``latent_ids`` keeps
    the original index of every latent this SAE computes (``arange(d_sae)`` for a full SAE).

    Args:
        W_enc: Encoder matrix, shape ``(d_model, n_latents)``.
        W_dec: Decoder matrix, shape ``(n_latents, d_model)``.
        b_enc: Encoder bias, shape ``(n_latents,)``.
        b_dec: Decoder bias, shape ``(d_model,)``.
        threshold: JumpReLU thresholds, shape ``(n_latents,)``.
        info: Metadata; ``info.d_model`` must match the tensors.
        latent_ids: Original latent index of each column, shape ``(n_latents,)``; defaults to
            ``arange(n_latents)``, in which case ``info.d_sae`` must equal ``n_latents``.

    Raises:
        ConfigError: if the shapes disagree with each other or with ``info``.
    """

    W_enc: torch.Tensor
    W_dec: torch.Tensor
    b_enc: torch.Tensor
    b_dec: torch.Tensor
    threshold: torch.Tensor
    latent_ids: torch.Tensor

    def __init__(
        self,
        W_enc: torch.Tensor,
        W_dec: torch.Tensor,
        b_enc: torch.Tensor,
        b_dec: torch.Tensor,
        threshold: torch.Tensor,
        *,
        info: SAEInfo,
        latent_ids: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if W_enc.ndim != 2:
            msg = f"W_enc must be 2-D (d_model, n_latents), got shape {tuple(W_enc.shape)}"
            raise ConfigError(msg)
        d_model, n_latents = W_enc.shape
        expected = {
            "W_dec": (n_latents, d_model),
            "b_enc": (n_latents,),
            "b_dec": (d_model,),
            "threshold": (n_latents,),
        }
        given = {"W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec, "threshold": threshold}
        for name, shape in expected.items():
            if tuple(given[name].shape) != shape:
                msg = (
                    f"{name} has shape {tuple(given[name].shape)}, expected {shape} "
                    f"for W_enc of shape {(d_model, n_latents)}"
                )
                raise ConfigError(msg)
        if info.d_model != d_model:
            msg = f"info.d_model={info.d_model} but W_enc has d_model={d_model}"
            raise ConfigError(msg)
        if latent_ids is None:
            if info.d_sae != n_latents:
                msg = f"info.d_sae={info.d_sae} but the SAE has {n_latents} latents"
                raise ConfigError(msg)
            latent_ids = torch.arange(n_latents, dtype=torch.long)
        elif tuple(latent_ids.shape) != (n_latents,):
            msg = f"latent_ids has shape {tuple(latent_ids.shape)}, expected ({n_latents},)"
            raise ConfigError(msg)
        self.info = info
        self.register_buffer("W_enc", W_enc)
        self.register_buffer("W_dec", W_dec)
        self.register_buffer("b_enc", b_enc)
        self.register_buffer("b_dec", b_dec)
        self.register_buffer("threshold", threshold)
        self.register_buffer("latent_ids", latent_ids.to(torch.long))

    # ------------------------------------------------------------------ properties
    @property
    def d_model(self) -> int:
        """Width of the input activations."""
        return self.info.d_model

    @property
    def n_latents(self) -> int:
        """Number of latents this SAE computes (``d_sae`` unless narrowed)."""
        return int(self.W_enc.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        """The dtype encoding is computed in (that of the weights)."""
        return self.W_enc.dtype

    @property
    def device(self) -> torch.device:
        """The device the weights live on."""
        return self.W_enc.device

    @property
    def is_narrowed(self) -> bool:
        """Whether this SAE computes only a subset (or a permutation) of the original latents."""
        if self.n_latents != self.info.d_sae:
            return True
        return not torch.equal(self.latent_ids.cpu(), torch.arange(self.info.d_sae))

    # ------------------------------------------------------------------ maths
    def _check_input(self, x: torch.Tensor | np.ndarray, width: int, what: str) -> torch.Tensor:
        tensor = torch.as_tensor(x)
        if tensor.ndim == 0 or tensor.shape[-1] != width:
            msg = f"{what} must have shape (..., {width}), got {tuple(tensor.shape)}"
            raise InputError(msg)
        return tensor.to(dtype=self.dtype, device=self.device)

    @torch.no_grad()
    def encode(self, x: torch.Tensor | np.ndarray, *, exact: bool = False) -> torch.Tensor:
        """Encode activations into sparse JumpReLU codes.

        By default the pre-activations are computed in the SAE's dtype (fast). BLAS kernels
        sum in an order that depends on the matrix shapes, so a narrowed SAE's codes then equal
        the full SAE's columns only up to float rounding (about 1e-6 relative in float32).
        ``exact=True`` accumulates in float64 and rounds once to the SAE's dtype, which makes
        the codes independent of how many latents are computed: a narrowed SAE then returns
        exactly the full SAE's columns (barring a float64 result lying on a rounding boundary).

        Args:
            x: Activations, shape ``(..., d_model)``; cast to the SAE's dtype and device.
            exact: Accumulate in float64 (slower; for verification and reproducibility).

        Returns:
            Codes of shape ``(..., n_latents)``: ``relu(pre) * (pre > threshold)`` with
            ``pre = x @ W_enc + b_enc``, in the SAE's dtype.

        Raises:
            InputError: if the last dimension of ``x`` is not ``d_model``.
        """
        x = self._check_input(x, self.d_model, "x")
        if exact:
            pre64 = x.double() @ self.W_enc.double() + self.b_enc.double()
            codes = torch.relu(pre64) * (pre64 > self.threshold.double()).double()
            return codes.to(self.dtype)
        pre = x @ self.W_enc + self.b_enc
        return torch.relu(pre) * (pre > self.threshold).to(pre.dtype)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Decode codes back to activation space: ``codes @ W_dec + b_dec``.

        Only a full SAE decodes. A narrowed SAE refuses, on purpose: a reconstruction from a
        subset of latents is not the SAE's reconstruction, and silently returning one would make
        reconstruction metrics (FVU) meaningless.

        Args:
            codes: Codes, shape ``(..., d_sae)``.

        Returns:
            Reconstruction, shape ``(..., d_model)``.

        Raises:
            ConfigError: if this SAE is narrowed.
            InputError: if the last dimension of ``codes`` is not ``d_sae``.
        """
        if self.is_narrowed:
            msg = (
                f"cannot decode with a narrowed SAE ({self.n_latents} of {self.info.d_sae} "
                "latents): a partial reconstruction is not the SAE's reconstruction; decode "
                "with the full SAE instead"
            )
            raise ConfigError(msg)
        codes = self._check_input(codes, self.n_latents, "codes")
        return codes @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor | np.ndarray) -> SAEOutput:
        """Encode and decode ``x`` (shape ``(..., d_model)``); full SAEs only."""
        codes = self.encode(x)
        return SAEOutput(codes=codes, reconstruction=self.decode(codes))

    # ------------------------------------------------------------------ narrowing
    def narrow(self, latents: Sequence[int]) -> JumpReLUSAE:
        """A new SAE computing only ``latents``, in the given order.

        Args:
            latents: Original latent ids (as in :attr:`latent_ids`), each one that this SAE
                computes, no duplicates.

        Returns:
            An SAE whose encoding equals ``self.encode(x)[..., positions]`` (bitwise with
            ``exact=True``, see :meth:`encode`), where ``positions`` are the columns of
            ``latents``; its ``latent_ids`` are ``latents``.

        Raises:
            ConfigError: if ``latents`` is empty, holds a non-integer, a duplicate, or an id
                this SAE does not compute.
        """
        ids = latents.tolist() if isinstance(latents, torch.Tensor) else list(latents)
        if not ids:
            msg = "narrow() needs at least one latent id"
            raise ConfigError(msg)
        bad_type = [v for v in ids if isinstance(v, bool) or not isinstance(v, int | np.integer)]
        if bad_type:
            msg = f"latent ids must be integers, got {bad_type[:5]!r}"
            raise ConfigError(msg)
        ids = [int(v) for v in ids]
        duplicates = sorted(v for v, n in Counter(ids).items() if n > 1)
        if duplicates:
            msg = f"duplicate latent ids in narrow(): {duplicates[:10]}"
            raise ConfigError(msg)
        position = {int(v): i for i, v in enumerate(self.latent_ids.tolist())}
        missing = [v for v in ids if v not in position]
        if missing:
            if self.is_narrowed:
                valid = f"the {self.n_latents} latents this narrowed SAE keeps"
            else:
                valid = f"0..{self.info.d_sae - 1}"
            msg = f"latent ids {missing[:10]} are out of range; valid ids: {valid}"
            raise ConfigError(msg)
        index = torch.tensor([position[v] for v in ids], dtype=torch.long, device=self.device)
        logger.debug("narrowing SAE %s to %d latents", self.info.source, len(ids))
        return JumpReLUSAE(
            W_enc=self.W_enc.index_select(1, index).contiguous(),
            W_dec=self.W_dec.index_select(0, index).contiguous(),
            b_enc=self.b_enc.index_select(0, index),
            b_dec=self.b_dec.clone(),
            threshold=self.threshold.index_select(0, index),
            info=replace(self.info),
            latent_ids=torch.tensor(ids, dtype=torch.long, device=self.device),
        )

    def extra_repr(self) -> str:
        site = str(self.info.site) if self.info.site is not None else "unknown site"
        return (
            f"d_model={self.d_model}, n_latents={self.n_latents}, d_sae={self.info.d_sae}, "
            f"site={site}, dtype={self.dtype}"
        )
