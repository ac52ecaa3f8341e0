"""Hook sites: where in the reader a Gemma Scope SAE reads its input.

A site is a (kind, layer) pair with the meaning Gemma Scope gives it:

- ``resid_post``: the residual stream after block ``layer`` (the output of
  ``model.layers[layer]``; TransformerLens ``blocks.L.hook_resid_post``).
- ``mlp_out``: the MLP's contribution to the residual stream, after Gemma 2's
  post-feedforward RMSNorm (TransformerLens ``blocks.L.hook_mlp_out``).
- ``attn_out``: the concatenated attention heads *before* the output projection
  (TransformerLens ``blocks.L.attn.hook_z``, flattened to ``n_heads * head_dim``), which is what
  Gemma Scope 1 attention SAEs read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from scope_guard.errors import ConfigError

__all__ = ["Site", "SiteKind"]


class SiteKind(StrEnum):
    """The three kinds of activation Gemma Scope SAEs are trained on."""

    RESID_POST = "resid_post"
    MLP_OUT = "mlp_out"
    ATTN_OUT = "attn_out"


# Accepted spellings, each mapped to (kind, layer) by a regex with a named `layer` group.
_PATTERNS: tuple[tuple[re.Pattern[str], SiteKind | None], ...] = (
    (re.compile(r"^(?P<kind>resid_post|mlp_out|attn_out)@(?P<layer>\d+)$"), None),
    (re.compile(r"^layer_(?P<layer>\d+)/(?P<kind>resid_post|mlp_out|attn_out)$"), None),
    (re.compile(r"^blocks\.(?P<layer>\d+)\.hook_resid_post$"), SiteKind.RESID_POST),
    (re.compile(r"^blocks\.(?P<layer>\d+)\.hook_mlp_out$"), SiteKind.MLP_OUT),
    (re.compile(r"^blocks\.(?P<layer>\d+)\.attn\.hook_z$"), SiteKind.ATTN_OUT),
    # Hugging Face module paths, as Gemma Scope 2 configs write them (`hf_hook_point_in`).
    (re.compile(r"^model\.layers\.(?P<layer>\d+)(\.output)?$"), SiteKind.RESID_POST),
    (
        re.compile(r"^model\.layers\.(?P<layer>\d+)\.post_feedforward_layernorm(\.output)?$"),
        SiteKind.MLP_OUT,
    ),
    (re.compile(r"^model\.layers\.(?P<layer>\d+)\.self_attn\.o_proj\.input$"), SiteKind.ATTN_OUT),
)


@dataclass(frozen=True, order=True)
class Site:
    """A hook site: a kind of activation at one layer.

    Attributes:
        layer: Zero-based decoder layer index.
        kind: Which activation of that layer.
    """

    layer: int
    kind: SiteKind

    def __post_init__(self) -> None:
        if not isinstance(self.layer, int) or isinstance(self.layer, bool) or self.layer < 0:
            msg = f"site layer must be a non-negative integer, got {self.layer!r}"
            raise ConfigError(msg)
        try:
            object.__setattr__(self, "kind", SiteKind(self.kind))
        except ValueError:
            valid = ", ".join(k.value for k in SiteKind)
            msg = f"unknown site kind {self.kind!r}; valid kinds: {valid}"
            raise ConfigError(msg) from None

    @classmethod
    def parse(cls, spec: str | Site) -> Site:
        """Parse a site from any accepted spelling.

        Accepted: ``"resid_post@20"``, ``"layer_20/resid_post"``, TransformerLens hook names
        (``"blocks.20.hook_resid_post"``, ``"blocks.20.hook_mlp_out"``,
        ``"blocks.20.attn.hook_z"``) and Hugging Face module paths (``"model.layers.20.output"``).

        Raises:
            ConfigError: if ``spec`` matches none of them.
        """
        if isinstance(spec, Site):
            return spec
        text = str(spec).strip()
        for pattern, kind in _PATTERNS:
            match = pattern.match(text)
            if match:
                found = kind if kind is not None else SiteKind(match.group("kind"))
                return cls(layer=int(match.group("layer")), kind=found)
        msg = (
            f"cannot parse site {spec!r}; write it as 'resid_post@20', 'layer_20/mlp_out', "
            "'blocks.20.hook_resid_post', 'blocks.20.attn.hook_z' or 'model.layers.20.output'"
        )
        raise ConfigError(msg)

    @property
    def hook_name(self) -> str:
        """The TransformerLens / SAELens hook name of this site."""
        if self.kind is SiteKind.ATTN_OUT:
            return f"blocks.{self.layer}.attn.hook_z"
        return f"blocks.{self.layer}.hook_{self.kind.value}"

    def __str__(self) -> str:
        return f"{self.kind.value}@{self.layer}"
