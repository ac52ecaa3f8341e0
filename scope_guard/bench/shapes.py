"""Model shapes for the benchmark: Gemma 2 configs with random weights.

Cost does not depend on weight values, so a random-weight model at the real Gemma 2 2B shape
measures what the real one would cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from scope_guard.errors import ConfigError

__all__ = ["SHAPES", "BenchShape", "get_shape"]


@dataclass(frozen=True)
class BenchShape:
    """A Gemma 2 shape and the site the benchmark hooks.

    Attributes:
        name: Shape id on the command line.
        vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
        num_key_value_heads, head_dim: The Gemma 2 config fields.
        layer: The hooked layer (``resid_post``), as a Gemma Scope SAE would read it.
        d_sae: Width of the full SAE encoded in the benchmark.
    """

    name: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    layer: int
    d_sae: int

    def config(self, num_hidden_layers: int | None = None):  # -> Gemma2Config
        """A Gemma2Config of this shape, optionally cut to its first ``num_hidden_layers``."""
        from transformers import Gemma2Config

        n = self.num_hidden_layers if num_hidden_layers is None else num_hidden_layers
        return Gemma2Config(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=n,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            head_dim=self.head_dim,
            query_pre_attn_scalar=self.head_dim,
            layer_types=[
                "sliding_attention" if (i + 1) % 2 else "full_attention"
                for i in range(self.num_hidden_layers)
            ][:n],
        )


SHAPES: dict[str, BenchShape] = {
    s.name: s
    for s in (
        BenchShape("tiny", 1024, 64, 256, 6, 4, 2, 16, layer=3, d_sae=1024),
        BenchShape("small", 32000, 512, 2048, 8, 8, 4, 64, layer=6, d_sae=4096),
        # google/gemma-2-2b; Gemma Scope's Neuronpedia demo SAE reads resid_post at layer 20.
        BenchShape("gemma-2-2b", 256000, 2304, 9216, 26, 8, 4, 256, layer=20, d_sae=16384),
    )
}


def get_shape(name: str) -> BenchShape:
    if name not in SHAPES:
        msg = f"unknown benchmark shape {name!r}; valid: {', '.join(SHAPES)}"
        raise ConfigError(msg)
    return SHAPES[name]
