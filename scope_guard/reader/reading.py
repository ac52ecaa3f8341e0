"""The typed result of reading one exchange."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from scope_guard.errors import ConfigError
from scope_guard.reader.surprisal import TokenSurprisal
from scope_guard.sites import Site

__all__ = ["Reading"]


@dataclass(frozen=True)
class Reading:
    """Activations of the response tokens of one exchange, per site.

    BOS, template tokens, prompt tokens and padding are never in it: row ``i`` of every
    activation tensor is response token ``i``.

    Attributes:
        activations: Per site, a ``(n_tokens, d)`` tensor (``d`` is ``d_model``, or
            ``n_heads * head_dim`` for ``attn_out``), in the reader's dtype and on its device.
        token_ids: The response token ids, ``n_tokens`` long.
        tokens: Each token's text, ``response[start:end]`` of its offsets.
        offsets: ``(start, end)`` character offsets of each token into ``response``.
        response: The response text as given.
        prompt_truncated: The prompt was cut from its start to fit the reader's ``max_tokens``.
        response_truncated: The response alone exceeded ``max_tokens`` and was cut; only its
            first ``n_tokens`` tokens were read.
        n_prompt_tokens_dropped: Prompt tokens removed by truncation.
        n_tokens_read: Length of the whole sequence the model read (template and prompt included).
        reader: The reader's name (a model id or path).
        is_stand_in: True for the built-in miniature reader, whose activations mean nothing.
        lookback: ``(n_tokens, layers, heads)`` float32 lookback ratios (attention to the
            context against the response so far; :mod:`scope_guard.reader.lookback`), or
            ``None`` when the reader was not asked for them.
        surprisal: Per token, the reader's surprisal ``-log p(token | prefix)`` and the entropy
            of its next-token distribution, in nats (:mod:`scope_guard.reader.surprisal`), or
            ``None`` when the reader was not asked for them.
    """

    activations: Mapping[Site, torch.Tensor]
    token_ids: tuple[int, ...]
    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    response: str
    prompt_truncated: bool
    response_truncated: bool
    n_prompt_tokens_dropped: int
    n_tokens_read: int
    reader: str
    is_stand_in: bool
    lookback: torch.Tensor | None = None
    surprisal: TokenSurprisal | None = None

    @property
    def n_tokens(self) -> int:
        """Number of response tokens read."""
        return len(self.token_ids)

    @property
    def sites(self) -> tuple[Site, ...]:
        return tuple(self.activations)

    def activation(self, site: Site | str) -> torch.Tensor:
        """The ``(n_tokens, d)`` activations at ``site`` (a :class:`Site` or its spelling)."""
        key = Site.parse(site)
        try:
            return self.activations[key]
        except KeyError:
            valid = ", ".join(str(s) for s in self.activations)
            msg = f"site {key} was not read; this reading has: {valid}"
            raise ConfigError(msg) from None

    def lookback_ratios(self) -> torch.Tensor:
        """The ``(n_tokens, layers, heads)`` lookback ratios.

        Raises:
            ConfigError: the reader did not capture them (``lookback=False``).
        """
        if self.lookback is None:
            msg = "this reading has no lookback ratios: read with Reader(..., lookback=True)"
            raise ConfigError(msg)
        return self.lookback

    def token_surprisal(self) -> TokenSurprisal:
        """Each token's surprisal and entropy, ``(n_tokens,)`` each.

        Raises:
            ConfigError: the reader did not compute them (``surprisal=False``).
        """
        if self.surprisal is None:
            msg = "this reading has no surprisal: read with Reader(..., surprisal=True)"
            raise ConfigError(msg)
        return self.surprisal
