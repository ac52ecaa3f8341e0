"""What a registry id resolves to: :class:`SAERegistryEntry`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scope_guard.sites import Site

__all__ = ["NEURONPEDIA_BASE", "SAERegistryEntry"]

NEURONPEDIA_BASE = "https://www.neuronpedia.org"


@dataclass(frozen=True)
class SAERegistryEntry:
    """A resolved registry id: where the SAE's files are and what it reads.

    Attributes:
        sae_id: The normalised id (canonical resolved to its L0).
        release: Release name (``"gemma-scope-2b-pt-res"``).
        family: ``"gemma-scope"`` (Gemma 2) or ``"gemma-scope-2"`` (Gemma 3).
        repo_id: Hugging Face repo (``"google/gemma-scope-2b-pt-res"``).
        path_in_repo: The weights file inside the repo.
        config_path_in_repo: Gemma Scope 2's ``config.json`` beside the weights, else None.
        model: The model the SAE reads (``"gemma-2-2b"``, ``"gemma-3-270m-it"``).
        site: Hook site.
        d_model: Width of the activations the SAE reads (``n_heads * head_dim`` for attention).
        width: Width label (``"16k"``); ``d_sae`` is its number of latents.
        d_sae: Number of latents.
        l0: Average L0 (Gemma Scope 1) or the bucket's target L0 (Gemma Scope 2), or None where
            not recorded.
        l0_label: ``"average_l0_71"`` or ``"l0_medium"``.
        canonical: Whether this is the release's canonical SAE for the layer and width.
        verified: True when no fact behind the entry comes from a secondary source
            (``unverified`` is empty).
        neuronpedia_id: Neuronpedia's id (``"gemma-2-2b/20-gemmascope-res-16k"``, or
            ``"gemma-2-9b/9-gemmascope-res-16k__l0-51"`` for a non-canonical SAE), or None.
        unverified: The facts behind the entry that the registry took from a secondary source
            (a third-party registry such as SAELens's, a blog) rather than from Google's model
            card, the hub's file listing or real weights: any of ``"d_model"``, ``"layers"``,
            ``"widths"``, ``"l0"``, ``"neuronpedia_id"``. Such an id may name a file that does
            not exist, or an SAE of another width; ``load_sae`` checks the downloaded tensors
            against ``d_model`` and ``d_sae`` either way.
    """

    sae_id: str
    release: str
    family: Literal["gemma-scope", "gemma-scope-2"]
    repo_id: str
    path_in_repo: str
    config_path_in_repo: str | None
    model: str
    site: Site
    d_model: int
    width: str
    d_sae: int
    l0: int | None
    l0_label: str
    canonical: bool
    verified: bool
    neuronpedia_id: str | None
    unverified: tuple[str, ...] = ()

    @property
    def neuronpedia_sae_url(self) -> str | None:
        """Neuronpedia page of the whole SAE, when it has one."""
        if self.neuronpedia_id is None:
            return None
        return f"{NEURONPEDIA_BASE}/{self.neuronpedia_id}"

    @property
    def folder_in_repo(self) -> str:
        """The folder holding the SAE's files (``"resid_post/layer_12_width_16k_l0_medium"``)."""
        return self.path_in_repo.rpartition("/")[0]
