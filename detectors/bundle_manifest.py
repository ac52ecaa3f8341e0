"""The manifest of a detector bundle: every fact about its detectors except their tensors."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from detectors.calibration_map import CalibrationMap
from detectors.feature_blocks import FeatureBlock
from scope_guard._version import __version__
from scope_guard.sae.jumprelu import JumpReLUSAE

__all__ = [
    "SCHEMA_VERSION",
    "BundleManifest",
    "DetectorSpec",
    "ReaderSpec",
    "SAESpec",
    "manifest_digest",
    "package_versions",
    "sae_fingerprint",
    "sha256_file",
]

SCHEMA_VERSION = 1


class ReaderSpec(BaseModel):
    """The reader a bundle was fitted with; ``fingerprint`` and ``tokenizer`` must match at load."""

    model_config = ConfigDict(frozen=True)
    name: str
    source: str | None = None
    """Where :meth:`ScopeGuard.from_bundle` loads the reader from (a hub id, a local folder, or
    ``"miniature"``). The bundle chooses it: a downloaded bundle is as trustworthy as its source."""
    max_tokens: int | None = Field(default=None, gt=0)
    """The reader's ``max_tokens`` at fitting; a reader with fewer cuts exchanges the detectors
    saw whole (a warning, not a refusal: only exchanges longer than the smaller limit change)."""
    model_type: str
    n_layers: int = Field(gt=0)
    d_model: int = Field(gt=0)
    fingerprint: str
    """:meth:`Reader.fingerprint_upto` ``fingerprint_layer``: the weights the features use."""
    fingerprint_layer: int = Field(ge=0)
    tokenizer: str
    """:attr:`Reader.tokenizer_fingerprint`: vocabulary, merges, normalization, special tokens."""
    dtype: str | None = None
    chat_template: str | None = None
    """sha256 of how exchanges were rendered: the chat template, or the plain rendering."""
    is_stand_in: bool = False
    quantization: str | None = None
    """The quantization the reader's weights went through (``"Q4_K_M"`` for a GGUF reader)."""
    surprisal_fingerprint: str | None = None
    """:attr:`Reader.surprisal_fingerprint` (every layer, the final norm, the LM head and its
    soft-cap), when a detector has a ``surprisal`` block; ``None`` otherwise."""

    @model_validator(mode="after")
    def _check_layers(self) -> ReaderSpec:
        if self.fingerprint_layer >= self.n_layers:
            msg = (
                f"fingerprint_layer {self.fingerprint_layer} is not a layer of a "
                f"{self.n_layers}-layer reader"
            )
            raise ValueError(msg)
        return self


class SAESpec(BaseModel):
    """An SAE a bundle's features came from (its narrowed tensors travel in the bundle)."""

    model_config = ConfigDict(frozen=True)
    site: str
    source: str
    d_model: int = Field(gt=0)
    d_sae: int = Field(gt=0)
    fingerprint: str
    neuronpedia_id: str | None = None
    model_name: str | None = None


class DetectorSpec(BaseModel):
    """Everything of a probe detector but its tensors.

    Its own numbers must be finite (JSON ``NaN`` or ``1e999`` is refused): a NaN intercept or
    threshold would make every later assessment fail.
    """

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)
    name: str
    risk: str
    blocks: list[FeatureBlock]
    intercept: float
    calibration: CalibrationMap
    threshold: float
    threshold_rule: str = "f1"
    threshold_target: float | None = None
    info: dict[str, Any] = {}


class BundleManifest(BaseModel):
    """The bundle's ``manifest.json``."""

    model_config = ConfigDict(frozen=True)
    schema_version: int = SCHEMA_VERSION
    created: str
    versions: dict[str, str]
    reader: ReaderSpec | None
    saes: list[SAESpec] = []
    detectors: list[DetectorSpec]
    training: dict[str, Any] = {}
    files: dict[str, str] = {}
    manifest_sha256: str | None = None
    """sha256 of this manifest's canonical JSON without this field (see :func:`manifest_digest`)."""


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sae_fingerprint(sae: JumpReLUSAE) -> str:
    """sha256 of an SAE's five tensors (as float32, so any dtype works) and its latent ids."""
    digest = hashlib.sha256()
    for name in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"):
        tensor = getattr(sae, name).detach().float().cpu().contiguous()
        digest.update(tensor.numpy().tobytes())
    digest.update(sae.latent_ids.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def manifest_digest(data: dict[str, Any]) -> str:
    """sha256 of a manifest's canonical JSON (sorted keys), ignoring ``manifest_sha256``."""
    body = {k: v for k, v in data.items() if k != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def package_versions() -> dict[str, str]:
    import sklearn
    import transformers

    return {
        "scope_guard": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "scikit_learn": sklearn.__version__,
        "numpy": np.__version__,
    }
