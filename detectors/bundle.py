"""Detector bundles: one folder holding one or more probe detectors, safe to share.

Layout::

    bundle/
      manifest.json        everything but tensors: reader and SAE identities, feature layouts,
                           probe intercepts, calibration maps, thresholds, metrics, training-data
                           hash, package versions, creation time, and the sha256 of every file
      tensors.safetensors  probe coefficients and, per SAE block, the SAE narrowed to the
                           detector's latents (so scoring needs the reader, not the full SAE)

No pickle anywhere. Loading verifies every file hash and the schema, and refuses with an
:class:`~scope_guard.errors.ArtifactError` that says what differs: an altered file, another
reader (by weight and tokenizer fingerprints), another SAE, or another grounding feature set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from detectors.bundle_manifest import (
    SCHEMA_VERSION,
    BundleManifest,
    DetectorSpec,
    ReaderSpec,
    SAESpec,
    manifest_digest,
    package_versions,
    sae_fingerprint,
    sha256_file,
)
from detectors.feature_blocks import BlockKind
from detectors.probe import ProbeDetector
from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.risks import Risk
from scope_guard.sae.jumprelu import JumpReLUSAE, SAEInfo
from scope_guard.sites import Site

if TYPE_CHECKING:
    from scope_guard.reader import Reader

__all__ = ["BundleManifest", "DetectorBundle", "DetectorSpec", "ReaderSpec", "SAESpec"]

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TENSORS = "tensors.safetensors"


def _tensor_key(detector: str, *parts: str) -> str:
    return ".".join((detector, *parts))


class DetectorBundle:
    """Probe detectors plus the manifest that says what they were made with.

    Args:
        detectors: The detectors (unique names).
        reader: The reader they read with, or ``None`` for grounding-only bundles.
        saes: The SAEs their SAE blocks came from.
        training: Free description of the training data (hash, format, size, split).
    """

    def __init__(
        self,
        detectors: Iterable[ProbeDetector],
        *,
        reader: ReaderSpec | None = None,
        saes: Iterable[SAESpec] = (),
        training: Mapping[str, Any] | None = None,
        created: str | None = None,
        versions: Mapping[str, str] | None = None,
    ) -> None:
        self.detectors: dict[str, ProbeDetector] = {}
        for det in detectors:
            if det.name in self.detectors:
                msg = f"two detectors named {det.name!r} in one bundle"
                raise ConfigError(msg)
            self.detectors[det.name] = det
        if any(d.needs_reader for d in self.detectors.values()) and reader is None:
            msg = "detectors with SAE or raw blocks need the bundle's reader spec"
            raise ConfigError(msg)
        self.reader = reader
        self.saes = list(saes)
        self.training = dict(training or {})
        self.created = created or datetime.now(UTC).isoformat(timespec="seconds")
        self.versions = dict(versions or package_versions())

    def __getitem__(self, name: str) -> ProbeDetector:
        if name not in self.detectors:
            msg = f"no detector {name!r} in this bundle; it has: {', '.join(self.detectors)}"
            raise ConfigError(msg)
        return self.detectors[name]

    @staticmethod
    def reader_spec(reader: Reader, detectors: Iterable[ProbeDetector]) -> ReaderSpec | None:
        """The reader's identity as far as ``detectors`` use it (``None`` if none reads it)."""
        layers = [s.layer for d in detectors for s in d.sites]
        if not layers:
            return None
        info = reader.info
        template = reader.tokenizer.chat_template if reader.encoder.uses_chat_template else None
        return ReaderSpec(
            name=info.name,
            source=reader.source,
            max_tokens=info.max_tokens,
            model_type=info.model_type,
            n_layers=info.n_layers,
            d_model=info.d_model,
            fingerprint=reader.fingerprint_upto(max(layers)),
            fingerprint_layer=max(layers),
            tokenizer=reader.tokenizer_fingerprint,
            dtype=info.dtype,
            chat_template=hashlib.sha256(str(template).encode()).hexdigest() if template else None,
            is_stand_in=info.is_stand_in,
        )

    @staticmethod
    def sae_spec(sae: JumpReLUSAE, site: Site) -> SAESpec:
        return SAESpec(
            site=str(site),
            source=str(sae.info.source),
            d_model=sae.d_model,
            d_sae=sae.info.d_sae,
            fingerprint=sae_fingerprint(sae),
            neuronpedia_id=sae.info.neuronpedia_id,
            model_name=sae.info.model_name,
        )

    # ------------------------------------------------------------------ save
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the bundle folder (created if missing; existing bundle files are replaced)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, torch.Tensor] = {}
        specs = []
        for det in self.detectors.values():
            tensors[_tensor_key(det.name, "coef")] = torch.from_numpy(det.coef.copy())
            for site, sae in det.saes.items():
                for name in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"):
                    key = _tensor_key(det.name, str(site), name)
                    tensors[key] = getattr(sae, name).detach().float().cpu().contiguous()
            specs.append(
                DetectorSpec(
                    name=det.name,
                    risk=str(det.risk),
                    blocks=list(det.blocks),
                    intercept=float(det.intercept),
                    calibration=det.calibration,
                    threshold=float(det.threshold),
                    threshold_rule=str(det.info.get("threshold_rule", "f1")),
                    threshold_target=det.info.get("threshold_target"),
                    info={k: v for k, v in det.info.items() if not k.startswith("threshold_")},
                )
            )
        save_file(tensors, str(folder / TENSORS), metadata={"format": "scope-guard-bundle"})
        manifest = BundleManifest(
            created=self.created,
            versions=self.versions,
            reader=self.reader,
            saes=self.saes,
            detectors=specs,
            training=self.training,
            files={TENSORS: sha256_file(folder / TENSORS)},
        )
        data = manifest.model_dump(mode="json")
        data["manifest_sha256"] = manifest_digest(data)
        (folder / MANIFEST).write_text(json.dumps(data, indent=2), encoding="utf-8")
        logger.info("saved bundle with %d detector(s) to %s", len(specs), folder)
        return folder

    # ------------------------------------------------------------------ load
    @classmethod
    def load(cls, path: str | os.PathLike[str], *, reader: Reader | None = None) -> DetectorBundle:
        """Load and verify a bundle; with ``reader``, also check it is the bundle's reader.

        Raises:
            ArtifactError: missing or altered files, an unknown schema, or another reader.
        """
        folder = Path(path)
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            msg = f"{folder} is not a detector bundle: no {MANIFEST}"
            raise ArtifactError(msg)
        try:
            raw = json.loads(manifest_path.read_text(encoding="utf-8"))
            manifest = BundleManifest.model_validate(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as exc:
            msg = f"{manifest_path} is not a valid bundle manifest: {exc}"
            raise ArtifactError(msg) from exc
        if manifest.manifest_sha256 != manifest_digest(raw):
            msg = (
                f"bundle manifest {manifest_path} was altered after it was written (its "
                "content no longer matches manifest_sha256)"
            )
            raise ArtifactError(msg)
        if manifest.schema_version != SCHEMA_VERSION:
            msg = (
                f"bundle schema {manifest.schema_version} at {folder}; this scope-guard reads "
                f"schema {SCHEMA_VERSION}"
            )
            raise ArtifactError(msg)
        for name, expected in manifest.files.items():
            file = folder / name
            if not file.is_file():
                msg = f"bundle file {file} is missing"
                raise ArtifactError(msg)
            actual = sha256_file(file)
            if actual != expected:
                msg = (
                    f"bundle file {file} was altered: sha256 {actual[:12]}..., the manifest "
                    f"says {expected[:12]}..."
                )
                raise ArtifactError(msg)
        if TENSORS not in manifest.files:
            msg = f"bundle manifest at {folder} does not list {TENSORS}"
            raise ArtifactError(msg)
        tensors = load_file(str(folder / TENSORS))
        bundle = cls(
            (cls._detector(spec, tensors, manifest) for spec in manifest.detectors),
            reader=manifest.reader,
            saes=manifest.saes,
            training=manifest.training,
            created=manifest.created,
            versions=manifest.versions,
        )
        if reader is not None:
            bundle.check_reader(reader)
        return bundle

    @staticmethod
    def _detector(
        spec: DetectorSpec, tensors: Mapping[str, torch.Tensor], manifest: BundleManifest
    ) -> ProbeDetector:
        def get(*parts: str) -> torch.Tensor:
            key = _tensor_key(spec.name, *parts)
            if key not in tensors:
                msg = f"bundle tensors lack {key!r} (detector {spec.name!r})"
                raise ArtifactError(msg)
            return tensors[key]

        sae_specs = {s.site: s for s in manifest.saes}
        saes: dict[Site, JumpReLUSAE] = {}
        neuronpedia: dict[str, str | None] = {}
        for block in spec.blocks:
            if block.kind is not BlockKind.SAE:
                continue
            site = block.parsed_site
            sae_spec = sae_specs.get(str(site))
            if sae_spec is None:
                msg = f"detector {spec.name!r} reads an SAE at {site} the manifest does not list"
                raise ArtifactError(msg)
            sae_info = SAEInfo(
                d_model=sae_spec.d_model,
                d_sae=sae_spec.d_sae,
                site=site,
                source=sae_spec.source,
                neuronpedia_id=sae_spec.neuronpedia_id,
                model_name=sae_spec.model_name,
            )
            parts = {
                n: get(str(site), n) for n in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")
            }
            saes[site] = JumpReLUSAE(
                **parts, info=sae_info, latent_ids=torch.tensor(block.latent_ids, dtype=torch.long)
            )
            neuronpedia[str(site)] = sae_spec.neuronpedia_id
        info = dict(spec.info)
        info.update(threshold_rule=spec.threshold_rule, threshold_target=spec.threshold_target)
        return ProbeDetector(
            name=spec.name,
            risk=Risk.parse(spec.risk),
            blocks=spec.blocks,
            coef=get("coef").numpy(),
            intercept=spec.intercept,
            calibration=spec.calibration,
            threshold=spec.threshold,
            saes=saes,
            neuronpedia_ids=neuronpedia,
            info=info,
        )

    def check_reader(self, reader: Reader) -> None:
        """Refuse a reader other than the one the bundle was fitted with: other weights (up to
        the deepest layer read), another tokenizer, another chat template, or missing sites.

        A smaller ``max_tokens`` than at fitting, or another dtype, only logs a warning: the
        first changes only exchanges longer than the new limit, the second shifts scores
        slightly; both are a deployment's choice (memory, speed), not another reader.
        """
        spec = self.reader
        if spec is None:
            return
        missing = {s for d in self.detectors.values() for s in d.sites} - set(reader.sites)
        if missing:
            msg = f"the reader does not capture {sorted(map(str, missing))}, which the bundle reads"
            raise ArtifactError(msg)
        actual = reader.fingerprint_upto(spec.fingerprint_layer)
        if actual != spec.fingerprint:
            msg = (
                f"bundle was fitted with reader {spec.name!r} (fingerprint {spec.fingerprint[:12]}"
                f" up to layer {spec.fingerprint_layer}, {spec.model_type}, {spec.n_layers} "
                f"layers, d_model {spec.d_model}); got {reader.name!r} (fingerprint "
                f"{actual[:12]}, {reader.info.model_type}, {reader.n_layers} layers, "
                f"d_model {reader.d_model})"
            )
            raise ArtifactError(msg)
        if reader.tokenizer_fingerprint != spec.tokenizer:
            msg = (
                f"the reader's tokenizer (fingerprint {reader.tokenizer_fingerprint[:12]}, "
                f"{len(reader.tokenizer)} tokens) is not the one the bundle was fitted with "
                f"(fingerprint {spec.tokenizer[:12]}): its vocabulary, merges, normalization or "
                "special tokens differ, so the same text gives other token ids"
            )
            raise ArtifactError(msg)
        template = reader.tokenizer.chat_template if reader.encoder.uses_chat_template else None
        digest = hashlib.sha256(str(template).encode()).hexdigest() if template else None
        if digest != spec.chat_template:
            msg = (
                "the reader renders exchanges with another chat template than the bundle was "
                "fitted with (or uses none where the bundle used one)"
            )
            raise ArtifactError(msg)
        if spec.max_tokens is not None and reader.max_tokens < spec.max_tokens:
            logger.warning(
                "bundle was fitted reading up to %d tokens per exchange; this reader cuts at %d "
                "(longer exchanges lose prompt context the detectors saw)",
                spec.max_tokens,
                reader.max_tokens,
            )
        if spec.dtype and reader.info.dtype != spec.dtype:
            logger.warning(
                "bundle was fitted with a %s reader; this one is %s (scores shift slightly)",
                spec.dtype,
                reader.info.dtype,
            )

    def check_sae(self, sae: JumpReLUSAE, site: Site | str) -> None:
        """Refuse an SAE other than the one the bundle's features came from."""
        key = str(Site.parse(site))
        spec = next((s for s in self.saes if s.site == key), None)
        if spec is None:
            msg = f"the bundle reads no SAE at {key}"
            raise ArtifactError(msg)
        actual = sae_fingerprint(sae)
        if actual != spec.fingerprint:
            msg = (
                f"SAE at {key} differs from the bundle's ({spec.source}): fingerprint "
                f"{actual[:12]} != {spec.fingerprint[:12]}"
            )
            raise ArtifactError(msg)

    @property
    def sites(self) -> tuple[Site, ...]:
        """Every site any detector reads."""
        return tuple(sorted({s for d in self.detectors.values() for s in d.sites}))
