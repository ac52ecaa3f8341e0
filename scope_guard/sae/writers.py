"""Writers for the three on-disk SAE formats that :mod:`scope_guard.sae.formats` reads.

They exist so that tests, the miniature model and users who convert SAEs can produce real
artifacts: Gemma Scope 1 ``params.npz``, Gemma Scope 2 ``params.safetensors`` + ``config.json``,
and SAELens ``cfg.json`` + ``sae_weights.safetensors``. Only full (not narrowed) SAEs are written.
No pickle anywhere.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from scope_guard.errors import ConfigError
from scope_guard.sae.formats import (
    GS1_FILE,
    GS2_CONFIG,
    GS2_FILE,
    SAELENS_CFG,
    SAELENS_WEIGHTS,
)
from scope_guard.sae.jumprelu import TENSOR_NAMES, JumpReLUSAE
from scope_guard.sites import Site, SiteKind

__all__ = ["hf_hook_point", "save_gemma_scope_2", "save_gemma_scope_npz", "save_saelens"]

logger = logging.getLogger(__name__)

_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
_DTYPE_NAMES[torch.float64] = "float64"


def hf_hook_point(site: Site) -> str:
    """The Hugging Face module path Gemma Scope 2 configs use for ``site``.

    ``resid_post`` -> ``model.layers.L.output``; ``mlp_out`` ->
    ``model.layers.L.post_feedforward_layernorm.output``; ``attn_out`` ->
    ``model.layers.L.self_attn.o_proj.input``.
    """
    if site.kind is SiteKind.RESID_POST:
        return f"model.layers.{site.layer}.output"
    if site.kind is SiteKind.MLP_OUT:
        return f"model.layers.{site.layer}.post_feedforward_layernorm.output"
    return f"model.layers.{site.layer}.self_attn.o_proj.input"


def _tensors(sae: JumpReLUSAE, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    if sae.is_narrowed:
        msg = (
            f"cannot save a narrowed SAE ({sae.n_latents} of {sae.info.d_sae} latents); "
            "save the full SAE"
        )
        raise ConfigError(msg)
    out = {}
    for name in TENSOR_NAMES:
        tensor = getattr(sae, name).detach().to("cpu")
        out[name] = (tensor if dtype is None else tensor.to(dtype)).contiguous().clone()
    return out


def _folder(folder: str | Path) -> Path:
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_gemma_scope_npz(sae: JumpReLUSAE, path: str | Path) -> Path:
    """Write ``sae`` as a Gemma Scope 1 ``params.npz`` (float32).

    Args:
        sae: A full SAE.
        path: The ``.npz`` file to write, or a folder to write ``params.npz`` into.

    Returns:
        The path of the written file.
    """
    target = Path(path)
    if target.suffix != ".npz":
        target = _folder(target) / GS1_FILE
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {k: v.numpy() for k, v in _tensors(sae, torch.float32).items()}
    np.savez(target, allow_pickle=False, **arrays)
    logger.info("wrote Gemma Scope 1 SAE to %s", target)
    return target


def save_gemma_scope_2(sae: JumpReLUSAE, folder: str | Path, *, l0: float | None = None) -> Path:
    """Write ``sae`` as a Gemma Scope 2 folder: ``params.safetensors`` + ``config.json``.

    Tensor keys are lowercase (``w_enc (d_model, d_sae)``, ``w_dec``, ``b_enc``, ``b_dec``,
    ``threshold``), float32. The config's ``hf_hook_point_in`` comes from ``sae.info.site``.

    Args:
        sae: A full SAE whose ``info.site`` is set.
        folder: The folder to write (created if needed).
        l0: Average L0 to record in the config, if known.

    Returns:
        The folder.

    Raises:
        ConfigError: if the SAE has no site (Gemma Scope 2 configs need a hook point).
    """
    if sae.info.site is None:
        msg = "a Gemma Scope 2 config needs the SAE's site (info.site is None)"
        raise ConfigError(msg)
    target = _folder(folder)
    tensors = _tensors(sae, torch.float32)
    renamed = {"w_enc": tensors["W_enc"], "w_dec": tensors["W_dec"]}
    renamed.update({k: tensors[k] for k in ("b_enc", "b_dec", "threshold")})
    save_file(renamed, str(target / GS2_FILE))
    hook = hf_hook_point(sae.info.site)
    config: dict[str, Any] = {
        "hf_hook_point_in": hook,
        "hf_hook_point_out": hook,
        "width": sae.info.d_sae,
        "model_name": sae.info.model_name,
        "architecture": "jump_relu",
        "l0": l0,
        "affine_connection": False,
        "type": "sae",
    }
    (target / GS2_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote Gemma Scope 2 SAE to %s", target)
    return target


def save_saelens(sae: JumpReLUSAE, folder: str | Path) -> Path:
    """Write ``sae`` as a SAELens folder: ``cfg.json`` + ``sae_weights.safetensors``.

    Weights keep the SAE's dtype (recorded as ``dtype`` in the cfg). The cfg follows SAELens 6
    (``metadata`` holds ``model_name``, ``hook_name``, ``neuronpedia_id``), and sets
    ``apply_b_dec_to_input: false`` and ``normalize_activations: "none"`` as Gemma Scope needs.

    Args:
        sae: A full SAE.
        folder: The folder to write (created if needed).

    Returns:
        The folder.
    """
    target = _folder(folder)
    tensors = _tensors(sae, None)
    dtype = tensors["W_enc"].dtype
    if dtype not in _DTYPE_NAMES:
        msg = f"cannot save dtype {dtype}; valid: {sorted(_DTYPE_NAMES.values())}"
        raise ConfigError(msg)
    save_file(tensors, str(target / SAELENS_WEIGHTS))
    site = sae.info.site
    cfg = {
        "architecture": "jumprelu",
        "d_in": sae.d_model,
        "d_sae": sae.info.d_sae,
        "dtype": _DTYPE_NAMES[dtype],
        "device": "cpu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "reshape_activations": "hook_z" if site and site.kind is SiteKind.ATTN_OUT else "none",
        "metadata": {
            "model_name": sae.info.model_name,
            "hook_name": site.hook_name if site is not None else None,
            "hook_head_index": None,
            "prepend_bos": True,
            "neuronpedia_id": sae.info.neuronpedia_id,
            "sae_lens_training_version": None,
        },
    }
    (target / SAELENS_CFG).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote SAELens SAE to %s", target)
    return target
