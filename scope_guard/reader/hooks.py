"""Forward hooks that capture activations at sites and stop the pass after the deepest one.

Each site maps to one module of a decoder layer (see :mod:`scope_guard.sites`):

- ``resid_post``: forward hook on ``layers[L]`` (its output is the residual stream after block L);
- ``mlp_out``: forward hook on ``layers[L].post_feedforward_layernorm`` (Gemma 2/3 add this
  normed MLP output to the residual);
- ``attn_out``: forward *pre*-hook on ``layers[L].self_attn.o_proj`` (its input is the concatenated
  heads, ``n_heads * head_dim`` wide).

The hooks keep only the selected token positions, so nothing of size ``(batch, seq, d)`` outlives
the pass. A final hook on the deepest layer raises :class:`_StopForward`, so no later layer, final
norm or LM head is ever computed, whatever model object the reader was given. A reader asked for
surprisal instead stops after the decoder's final norm (:func:`capture_final_norm`), and applies
the LM head itself to the few rows it needs (:mod:`scope_guard.reader.surprisal`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from scope_guard.errors import ConfigError
from scope_guard.sites import Site, SiteKind

__all__ = ["capture_final_norm", "capture_sites", "run_until_stopped", "site_module"]


class _StopForward(Exception):
    """Raised inside the forward pass once every site has been captured."""


def site_module(layers: nn.ModuleList, site: Site) -> nn.Module:
    """The module whose output (or, for ``attn_out``, input) is the site's activation."""
    if site.layer >= len(layers):
        msg = f"site {site} is beyond the reader's {len(layers)} loaded layers"
        raise ConfigError(msg)
    layer = layers[site.layer]
    try:
        if site.kind is SiteKind.RESID_POST:
            return layer
        if site.kind is SiteKind.MLP_OUT:
            return layer.post_feedforward_layernorm  # type: ignore[return-value]
        return layer.self_attn.o_proj  # type: ignore[union-attr,return-value]
    except AttributeError as exc:
        msg = (
            f"site {site}: decoder layer {type(layer).__name__} has no {exc.name!r} module; "
            "mlp_out and attn_out need a Gemma 2 / Gemma 3 layer"
        )
        raise ConfigError(msg) from exc


def _as_tensor(value: Any) -> torch.Tensor:
    # transformers 4 layers return tuples, transformers 5 layers return tensors.
    return value[0] if isinstance(value, tuple) else value


@contextmanager
def capture_sites(
    layers: nn.ModuleList,
    sites: Sequence[Site],
    rows: torch.Tensor,
    cols: torch.Tensor,
    *,
    stop: bool = True,
) -> Iterator[dict[Site, torch.Tensor]]:
    """Capture each site at the positions ``(rows[i], cols[i])`` during one forward pass.

    Use as ``with capture_sites(...) as captured: run_until_stopped(...)``; afterwards
    ``captured[site]`` is a ``(len(rows), d)`` tensor. Hooks are removed on exit, also on error.

    Args:
        layers: The decoder layers (``model.layers``).
        sites: Sites to capture.
        rows: Batch index of each kept position, ``(n,)``.
        cols: Sequence index of each kept position, ``(n,)``.
        stop: End the pass after the deepest site's layer (``False``: another hook ends it,
            e.g. :func:`capture_final_norm`).
    """
    captured: dict[Site, torch.Tensor] = {}
    handles = []

    def keep(site: Site, value: torch.Tensor) -> None:
        captured[site] = value[rows, cols].detach()

    try:
        for site in sites:
            module = site_module(layers, site)
            if site.kind is SiteKind.ATTN_OUT:
                handles.append(
                    module.register_forward_pre_hook(
                        lambda _m, args, site=site: keep(site, _as_tensor(args[0]))
                    )
                )
            else:
                handles.append(
                    module.register_forward_hook(
                        lambda _m, _args, out, site=site: keep(site, _as_tensor(out))
                    )
                )

        if stop:
            deepest = max(site.layer for site in sites)
            # Registered last, so it runs after the capture hook on the same layer.
            handles.append(layers[deepest].register_forward_hook(_stop))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def _stop(_m: nn.Module, _args: Any, _out: Any) -> None:
    raise _StopForward


@contextmanager
def capture_final_norm(
    decoder: nn.Module, rows: torch.Tensor, cols: torch.Tensor
) -> Iterator[dict[str, torch.Tensor]]:
    """Capture the decoder's final normed hidden state at ``(rows[i], cols[i])``, then end the
    pass (nothing of the decoder runs after its final norm, and no LM head is applied).

    Afterwards ``captured["hidden"]`` is ``(len(rows), d_model)``. The hook is removed on exit.

    Raises:
        ConfigError: the decoder has no final ``norm`` module (not a Gemma decoder).
    """
    norm = getattr(decoder, "norm", None)
    if not isinstance(norm, nn.Module):
        msg = f"{type(decoder).__name__} has no final norm module; surprisal needs a Gemma decoder"
        raise ConfigError(msg)
    captured: dict[str, torch.Tensor] = {}

    def keep(_m: nn.Module, _args: Any, out: Any) -> None:
        captured["hidden"] = _as_tensor(out)[rows, cols].detach()
        raise _StopForward

    handle = norm.register_forward_hook(keep)
    try:
        yield captured
    finally:
        handle.remove()


def run_until_stopped(model: nn.Module, **inputs: Any) -> None:
    """Run ``model(**inputs)``, treating the stop signal as the normal end of the pass."""
    try:
        model(**inputs)
    except _StopForward:
        return
    msg = "the forward pass ended without reaching the deepest hooked layer"
    raise RuntimeError(msg)
