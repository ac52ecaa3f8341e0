"""A shuffling buffer: consecutive tokens of a text are correlated, batches should not be.

The buffer fills to its capacity, shuffles, and hands out batches from the front until it is half
empty; then it refills and shuffles again, so every batch mixes tokens of many documents and of
several refills. Rows keep the dtype they arrive in (bf16 from a bf16 reader: half the memory,
and a checkpoint of them is exact). Its state (rows in order and the generator) is all a
checkpoint needs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from scope_guard.errors import ConfigError

__all__ = ["ShufflingBuffer"]


class ShufflingBuffer:
    """Mixes rows from a stream before they reach the optimizer.

    Args:
        capacity: Rows held after a refill; at least two batches.
        generator: Seeded generator for the shuffles (its state is checkpointed).
    """

    def __init__(self, capacity: int, generator: torch.Generator) -> None:
        if capacity < 2:
            msg = f"buffer capacity must be >= 2 rows, got {capacity}"
            raise ConfigError(msg)
        self.capacity = capacity
        self.generator = generator
        self.rows: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.rows is None else int(self.rows.shape[0])

    def take(self, n: int, refill: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``n`` rows, refilling from ``refill()`` (and reshuffling) when half empty.

        Args:
            n: Rows wanted; at most half the capacity.
            refill: Returns the next rows of the stream, shape ``(m, d)``, ``m >= 1``.
        """
        if len(self) < max(n, self.capacity // 2):
            parts = [] if self.rows is None else [self.rows]
            have = len(self)
            while have < self.capacity:
                chunk = refill()
                parts.append(chunk)
                have += int(chunk.shape[0])
            rows = torch.cat(parts)
            order = torch.randperm(rows.shape[0], generator=self.generator)
            self.rows = rows[order]
        rows = self.rows if self.rows is not None else torch.empty(0)
        batch, self.rows = rows[:n], rows[n:]
        return batch

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The rows (possibly none) and the generator state, for a checkpoint."""
        out = {"buffer.generator": self.generator.get_state()}
        if self.rows is not None:
            out["buffer.rows"] = self.rows.contiguous()
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_tensors` returned."""
        self.generator.set_state(tensors["buffer.generator"])
        self.rows = tensors.get("buffer.rows")
