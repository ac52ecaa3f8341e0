"""The reader's own surprise at each response token: ``-log p(token | prefix)`` and the entropy of
its predictive distribution, from the model's final norm and LM head.

A fabricated span is text the context does not support; a reader that has the context in view
may find it less predictable than a grounded one (higher surprisal), or be unsure where the
answer goes (higher entropy). Both need every layer, the final norm and the LM head, which a
plain reader never computes; ``Reader(..., surprisal=True)`` runs them.

What Gemma applies after the last decoder layer (transformers 5, ``Gemma2ForCausalLM`` and
``Gemma3ForCausalLM``): the final RMSNorm (inside the decoder), the LM head (tied to the input
embedding, without its ``sqrt(d_model)`` scale) and, where the config sets
``final_logit_softcapping``, ``cap * tanh(logits / cap)`` (Gemma 2: 30; Gemma 3: none).
The multimodal ``Gemma3ForConditionalGeneration`` applies no soft-cap, and its top-level config
has no such field, which is where :meth:`LMHead.of` reads it.

Logits are computed only at the positions that predict a response token (position ``p - 1``
predicts the token at ``p``), a few rows at a time: the vocabulary is 262,144 wide, so the
``(seq, vocab)`` logits of a whole prompt are never materialized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from scope_guard.errors import ConfigError

__all__ = ["LMHead", "TokenSurprisal", "token_surprisal"]

LOGIT_ROWS = 64
"""Response positions whose logits exist at once: 64 x 262,144 float32 is 64 MiB."""


class TokenSurprisal(NamedTuple):
    """Per response token, in nats (natural log), float32 on the CPU.

    Attributes:
        surprisal: ``(n_tokens,)`` ``-log p(token_i | everything before it)``, ``>= 0`` (up
            to float rounding).
        entropy: ``(n_tokens,)`` entropy of the distribution token ``i`` was drawn from,
            ``0 .. log(vocab_size)`` (up to float rounding).
    """

    surprisal: torch.Tensor
    entropy: torch.Tensor

    @classmethod
    def empty(cls) -> TokenSurprisal:
        return cls(torch.empty(0), torch.empty(0))


@dataclass(frozen=True)
class LMHead:
    """What maps the final normed hidden state to next-token logits.

    Attributes:
        weight: ``(vocab_size, d_model)``, the output embedding (for Gemma, the input
            embedding's own tensor).
        softcap: ``final_logit_softcapping`` as the model's forward applies it, or ``None``.
    """

    weight: torch.Tensor
    softcap: float | None

    @classmethod
    def of(cls, model: nn.Module) -> LMHead:
        """The head of a causal LM (``get_output_embeddings()``, a bias-free linear map).

        Raises:
            ConfigError: ``model`` has no LM head (a bare decoder was given).
        """
        getter = getattr(model, "get_output_embeddings", None)
        head = getter() if callable(getter) else None
        if not isinstance(head, nn.Linear) or head.bias is not None:
            msg = (
                f"surprisal needs the model's LM head, and {type(model).__name__} has none: "
                "pass the causal LM (e.g. Gemma3ForCausalLM), not its decoder"
            )
            raise ConfigError(msg)
        cap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
        return cls(head.weight, float(cap) if cap is not None else None)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(n, vocab)`` logits of ``(n, d_model)`` normed hidden states, in the model's dtype
        and with the same operations as the model's forward (so the same numbers)."""
        logits = nn.functional.linear(hidden, self.weight)
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


def token_surprisal(
    hidden: torch.Tensor, targets: torch.Tensor, head: LMHead, *, rows: int = LOGIT_ROWS
) -> TokenSurprisal:
    """Surprisal and entropy of ``targets`` under the logits of ``hidden``.

    Args:
        hidden: ``(n, d_model)`` final normed hidden states, row ``i`` at the position just
            before target ``i``.
        targets: ``(n,)`` the token ids that followed.
        head: The model's LM head.
        rows: Rows whose logits are computed at once (bounds the memory).

    Returns:
        Per target, float32 on the CPU.
    """
    if hidden.shape[0] != targets.shape[0]:
        msg = f"{hidden.shape[0]} hidden rows for {targets.shape[0]} targets"
        raise ValueError(msg)
    surprisal, entropy = [], []
    for start in range(0, hidden.shape[0], rows):
        # float32 over logits in the model's dtype, as a loss on its output would be. One shift
        # by the row maximum, one exp: log Z = log sum exp(z), surprisal = log Z - z[target],
        # entropy = log Z - sum(exp(z) z) / Z (half the passes of log_softmax then p log p).
        z = head.logits(hidden[start : start + rows]).float()
        z -= z.amax(dim=-1, keepdim=True)  # <= 0: exp cannot overflow, an underflow adds 0
        ez = torch.exp(z)
        total = ez.sum(dim=-1)
        log_total = torch.log(total)
        picked = z.gather(1, targets[start : start + rows].view(-1, 1).to(z.device)).squeeze(1)
        surprisal.append(log_total - picked)
        entropy.append(log_total - torch.linalg.vecdot(ez, z) / total)
    if not surprisal:
        return TokenSurprisal.empty()
    return TokenSurprisal(torch.cat(surprisal).cpu(), torch.cat(entropy).cpu())
