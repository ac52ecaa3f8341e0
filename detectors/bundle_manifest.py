"""The manifest of a detector bundle: every fact about its detectors except their tensors."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

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
    "package_versions",
    "sae_fingerprint",
    "sha256_file",
]

SCHEMA_VERSION = 1


class ReaderSpec(BaseModel):
    """The reader a bundle was fitted with; ``fingerprint`` must match at load."""

    model_config = ConfigDict(frozen=True)
    name: str
    source: str | None = None
    max_tokens: int | None = None
    model_type: str
    n_layers: int
    d_model: int
    fingerprint: str
    is_stand_in: bool = False


class SAESpec(BaseModel):
    """An SAE a bundle's features came from (its narrowed tensors travel in the bundle)."""

    model_config = ConfigDict(frozen=True)
    site: str
    source: str
    d_model: int
    d_sae: int
    fingerprint: str
    neuronpedia_id: str | None = None
    model_name: str | None = None


class DetectorSpec(BaseModel):
    """Everything of a probe detector but its tensors."""

    model_config = ConfigDict(frozen=True)
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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sae_fingerprint(sae: JumpReLUSAE) -> str:
    """sha256 of an SAE's five tensors (float32 bytes) and its latent ids."""
    digest = hashlib.sha256()
    for name in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold", "latent_ids"):
        digest.update(getattr(sae, name).detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


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
