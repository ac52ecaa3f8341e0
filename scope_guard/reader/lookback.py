"""Attention to the context: the lookback ratio of each response token, per layer and head.

Chuang et al. (2024), "Lookback Lens": a head that attends to the retrieved context while the
answer is written is grounding it; one that attends mostly to the answer so far is free-running.
For the query row of response token ``i`` (sequence position ``p``, response starting at ``r``):

- ``ctx`` = mean attention weight over the context positions ``1 .. r-1`` (BOS, position 0, is
  left out: it is the attention sink of every head and would swamp the context mass);
- ``new`` = mean attention weight over the response positions ``r .. p`` (itself included, so the
  first response token has one);
- ``lookback = ctx / (ctx + new)``, in ``[0, 1]``; ``0`` where there is no context.

Weights come from the eager attention path (the only one that materializes them), inside the same
early-stopped pass that captures the sites, for layers ``0 ..`` the deepest site only. Each hook
keeps ``(n_rows, n_heads)`` per layer; the ``(batch, heads, seq, seq)`` weights never outlive it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from scope_guard.errors import ConfigError

__all__ = ["capture_lookback", "lookback_ratios"]


def lookback_ratios(
    weights: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, starts: torch.Tensor
) -> torch.Tensor:
    """Lookback ratios ``(n, heads)`` of the query positions ``(rows[i], cols[i])``.

    Args:
        weights: Attention probabilities ``(batch, heads, seq, seq)`` of one layer.
        rows: Batch index of each kept query, ``(n,)``.
        cols: Sequence position of each kept query, ``(n,)``.
        starts: Position of the first response token of each kept query's sequence, ``(n,)``.
    """
    picked = weights[rows, :, cols, :].float()  # (n, heads, seq)
    cum = picked.cumsum(dim=-1)
    heads = picked.shape[1]

    def at(pos: torch.Tensor) -> torch.Tensor:  # cumulative mass up to and including pos
        return cum.gather(-1, pos.view(-1, 1, 1).expand(-1, heads, 1)).squeeze(-1)

    before = at(starts - 1)  # positions 0 .. r-1
    n_ctx = (starts - 1).clamp(min=0).to(torch.float32).unsqueeze(1)
    ctx_sum = before - picked[:, :, 0]
    ctx = torch.where(n_ctx > 0, ctx_sum / n_ctx.clamp(min=1), torch.zeros_like(ctx_sum))
    n_new = (cols - starts + 1).to(torch.float32).unsqueeze(1)
    new = (at(cols) - before) / n_new
    total = ctx + new
    return torch.where(total > 0, ctx / total.clamp(min=1e-30), torch.zeros_like(total))


@contextmanager
def capture_lookback(
    layers: nn.ModuleList,
    upto: int,
    rows: torch.Tensor,
    cols: torch.Tensor,
    starts: torch.Tensor,
) -> Iterator[dict[int, torch.Tensor]]:
    """Capture the lookback ratios of layers ``0 .. upto`` during one forward pass.

    Afterwards ``captured[layer]`` is ``(len(rows), n_heads)`` float32. Hooks are removed on
    exit, also on error.

    Raises:
        ConfigError: (during the pass) an attention module returned no weights: the model is
            not on the eager attention path.
    """
    captured: dict[int, torch.Tensor] = {}
    handles = []

    def keep(layer: int, out: Any) -> None:
        weights = out[1] if isinstance(out, tuple) and len(out) > 1 else None
        if weights is None:
            msg = "lookback ratios need attention weights: load the reader with lookback=True"
            raise ConfigError(msg)
        captured[layer] = lookback_ratios(weights.detach(), rows, cols, starts)

    try:
        for index in range(upto + 1):
            attention = getattr(layers[index], "self_attn", None)
            if attention is None:
                msg = f"decoder layer {index} has no self_attn module; lookback needs one"
                raise ConfigError(msg)
            handles.append(
                attention.register_forward_hook(
                    lambda _m, _args, out, index=index: keep(index, out)
                )
            )
        yield captured
    finally:
        for handle in handles:
            handle.remove()
