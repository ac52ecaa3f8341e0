"""Gemma Scope JumpReLU SAEs: the model, the file formats, the pretrained registry, loading, stats.

- :class:`JumpReLUSAE`: encode / decode / narrow to the latents a probe uses.
- :func:`load_sae`: from a local file (Gemma Scope 1 npz, Gemma Scope 2 folder, SAELens folder)
  or a registry id through the Hugging Face cache.
- :func:`resolve_sae_id` / :func:`neuronpedia_url`: the registry (``data/gemma_scope.yaml``).
- :func:`save_saelens`, :func:`save_gemma_scope_npz`, :func:`save_gemma_scope_2`: writers.
- :func:`sae_stats`: FVU, mean L0 and dead latents on a set of activations.
"""

from scope_guard.sae.formats import LoadedParams, SAEFormat, detect_format, read_sae
from scope_guard.sae.jumprelu import JumpReLUSAE, SAEInfo, SAEOutput
from scope_guard.sae.loading import load_sae
from scope_guard.sae.registry import (
    SAERegistryEntry,
    known_releases,
    neuronpedia_url,
    resolve_sae_id,
)
from scope_guard.sae.stats import SAEStats, sae_stats
from scope_guard.sae.writers import (
    hf_hook_point,
    save_gemma_scope_2,
    save_gemma_scope_npz,
    save_saelens,
)

__all__ = [
    "JumpReLUSAE",
    "LoadedParams",
    "SAEFormat",
    "SAEInfo",
    "SAEOutput",
    "SAERegistryEntry",
    "SAEStats",
    "detect_format",
    "hf_hook_point",
    "known_releases",
    "load_sae",
    "neuronpedia_url",
    "read_sae",
    "resolve_sae_id",
    "sae_stats",
    "save_gemma_scope_2",
    "save_gemma_scope_npz",
    "save_saelens",
]
