"""What identifies a reader: digests of its weights and of its tokenizer.

Cached features and fitted detectors are only valid for the reader that produced them, so the
feature cache and detector bundles key on these digests; they must change whenever activations
can, and must not change when a checkpoint is merely loaded again.

Weights are hashed in full, each element rounded to bfloat16 first: a checkpoint loaded in
float32 and the same checkpoint loaded in bfloat16 give one digest (the bf16 load *is* the
rounding). A float16 load does not: float16 rounds to other values and saturates outside its
range, so it is a different reader, and Gemma 2 is not meant to run in it anyway.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["WeightDigests", "tokenizer_digest"]

# Elements hashed per slice: the bf16 copy of a float32 slice (8 MiB) stays in cache while it is
# hashed (2^24-element slices made a float32 load of Gemma 2 2B hash ~1.6x slower).
_SLICE = 1 << 22
# Serialized tokenizer fields that are runtime settings (transformers sets the backend's
# truncation and padding on each call), not part of what the tokenizer is.
_VOLATILE_TOKENIZER_FIELDS = ("version", "truncation", "padding")


def _hash_tensors(tensors: Iterable[torch.Tensor]) -> bytes:
    """sha256 over each tensor's shape and all of its elements, rounded to bfloat16."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(repr(tuple(tensor.shape)).encode())
        flat = tensor.detach().reshape(-1)
        for start in range(0, flat.numel(), _SLICE):
            # numpy has no bfloat16: hash its bits. A bf16 tensor on CPU is hashed in place.
            part = flat[start : start + _SLICE].to(torch.bfloat16).view(torch.int16).cpu()
            digest.update(part.numpy().data)
    return digest.digest()


class WeightDigests:
    """Digests of a decoder's weights, each computed on first use and kept.

    Args:
        embedding: The input embedding matrix, ``(vocab_size, d_model)``.
        layers: The loaded decoder layers.
        meta: Architecture facts hashed with the embedding (model type, sizes).
    """

    def __init__(self, embedding: torch.Tensor, layers: nn.ModuleList, meta: Any) -> None:
        self._embedding = embedding
        self._layers = layers
        self._meta = repr(meta).encode()
        self._head: bytes | None = None
        self._per_layer: list[bytes] = []
        self._lock = threading.Lock()  # two threads asking at once hash once

    def __len__(self) -> int:
        return len(self._layers)

    def upto(self, layer: int) -> str:
        """Hex digest of the architecture, the embedding and layers ``0..layer`` (inclusive)."""
        with self._lock:
            if self._head is None:
                self._head = hashlib.sha256(self._meta + _hash_tensors([self._embedding])).digest()
            while len(self._per_layer) <= layer:
                module = self._layers[len(self._per_layer)]
                self._per_layer.append(_hash_tensors(module.parameters()))
            head, parts = self._head, self._per_layer[: layer + 1]
        return hashlib.sha256(head + b"".join(parts)).hexdigest()[:32]

    def whole(self, norm: nn.Module, head_weight: torch.Tensor, softcap: float | None) -> str:
        """Hex digest of everything the next-token distribution depends on: :meth:`upto` the
        last layer, the final norm, the LM head (a head tied to the embedding is hashed once,
        as the embedding) and the logit soft-cap."""
        upto = self.upto(len(self._layers) - 1)
        tied = head_weight is self._embedding or (
            head_weight.shape == self._embedding.shape
            and head_weight.data_ptr() == self._embedding.data_ptr()
        )
        head = b"tied" if tied else _hash_tensors([head_weight])
        parts = [upto.encode(), _hash_tensors(norm.parameters()), head, repr(softcap).encode()]
        return hashlib.sha256(b"|".join(parts)).hexdigest()[:32]


def tokenizer_digest(tokenizer: Any) -> str:
    """A stable hex digest of what a tokenizer does: vocabulary, merges, normalizer,
    pre-tokenizer, post-processor, added and special tokens.

    Tokenizers with the same vocabulary size but other merges or normalization give other ids
    for the same text, so vocabulary size alone cannot tell them apart.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        for name in _VOLATILE_TOKENIZER_FIELDS:
            spec.pop(name, None)
    else:  # a slow (sentencepiece) tokenizer: its vocabulary is what can be read
        spec = {"vocab": sorted(tokenizer.get_vocab().items())}
    special = getattr(tokenizer, "special_tokens_map", None) or {}
    spec["special_tokens"] = {str(k): str(v) for k, v in special.items()}
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
