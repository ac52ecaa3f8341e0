"""Forward hooks that capture activations at sites and stop the pass after the deepest one.

Each site maps to one module of a decoder layer (see :mod:`scope_guard.sites`):

- ``resid_post``: forward hook on ``layers[L]`` (its output is the residual stream after block L);
- ``mlp_out``: forward hook on ``layers[L].post_feedforward_layernorm`` (Gemma 2/3 add this
  normed MLP output to the residual);
- ``attn_out``: forward *pre*-hook on ``layers[L].self_attn.o_proj`` (its input is the concatenated
  heads, ``n_heads * head_dim`` wide).

The hooks keep only the selected token positions, so nothing of size ``(batch, seq, d)`` outlives
the pass. A final hook on the deepest layer raises :class:`_StopForward`, so no later layer, final
norm or LM head is ever computed, whatever model object the reader was given.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from scope_guard.errors import ConfigError
from scope_guard.sites import Site, SiteKind

__all__ = ["capture_sites", "site_module"]


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
) -> Iterator[dict[Site, torch.Tensor]]:
    """Capture each site at the positions ``(rows[i], cols[i])`` during one forward pass.

    Use as ``with capture_sites(...) as captured: run_until_stopped(...)``; afterwards
    ``captured[site]`` is a ``(len(rows), d)`` tensor. Hooks are removed on exit, also on error.

    Args:
        layers: The decoder layers (``model.layers``).
        sites: Sites to capture; the pass stops after the deepest site's layer.
        rows: Batch index of each kept position, ``(n,)``.
        cols: Sequence index of each kept position, ``(n,)``.
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

        def stop(_m: nn.Module, _args: Any, _out: Any) -> None:
            raise _StopForward

        deepest = max(site.layer for site in sites)
        # Registered last, so it runs after the capture hook on the same layer.
        handles.append(layers[deepest].register_forward_hook(stop))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def run_until_stopped(model: nn.Module, **inputs: Any) -> None:
    """Run ``model(**inputs)``, treating the stop signal as the normal end of the pass."""
    try:
        model(**inputs)
    except _StopForward:
        return
    msg = "the forward pass ended without reaching the deepest hooked layer"
    raise RuntimeError(msg)
