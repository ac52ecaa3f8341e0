"""Readers for the three on-disk SAE formats, with the checks that make loading safe.

Accepted layouts:

- **Gemma Scope 1**: ``params.npz`` (the file, or a folder holding it) with float32 arrays
  ``W_enc (d_model, d_sae)``, ``W_dec (d_sae, d_model)``, ``b_enc (d_sae,)``,
  ``b_dec (d_model,)``, ``threshold (d_sae,)``. Read with ``allow_pickle=False``.
- **Gemma Scope 2**: a folder with ``params.safetensors`` (lowercase keys ``w_enc, w_dec, b_enc,
  b_dec, threshold``; ``w_enc`` is ``(d_model, d_sae)``) and ``config.json``
  (``hf_hook_point_in`` such as ``model.layers.22.output``, ``architecture: "jump_relu"``,
  ``width``, ``l0``, ``model_name``, ``affine_connection``, ``hf_hook_point_out``).
- **SAELens**: a folder with ``cfg.json`` + ``sae_weights.safetensors`` (keys ``W_enc, W_dec,
  b_enc, b_dec, threshold``); the cfg names ``architecture: "jumprelu"``, ``d_in``, ``d_sae``,
  ``dtype`` and ``hook_name``/``model_name``/``neuronpedia_id`` (top level in SAELens < 6, under
  ``metadata`` since SAELens 6).

Every file is read only if it is a regular file inside the SAE's folder (symlinks leaving it,
FIFOs and devices are refused before opening; see :mod:`scope_guard.safe_files`), JSON is
bounded, and ``.npz`` sizes are checked before anything is allocated
(:mod:`scope_guard.sae.npz_reader`). Every problem is an
:class:`~scope_guard.errors.ArtifactError` naming the file and the tensor.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.sae.jumprelu import TENSOR_NAMES, SAEInfo
from scope_guard.sae.npz_reader import read_npz
from scope_guard.safe_files import confined_file, confinement_root, read_json_object
from scope_guard.sites import Site

__all__ = [
    "FLOAT_DTYPES",
    "LoadedParams",
    "SAEFormat",
    "check_float_tensor",
    "detect_format",
    "read_sae",
]

logger = logging.getLogger(__name__)

GS1_FILE = "params.npz"
GS2_FILE = "params.safetensors"
GS2_CONFIG = "config.json"
SAELENS_CFG = "cfg.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"

ACCEPTED_LAYOUTS = (
    f"Gemma Scope 1: a '{GS1_FILE}' file or a folder holding one; "
    f"Gemma Scope 2: a folder with '{GS2_FILE}' and '{GS2_CONFIG}'; "
    f"SAELens: a folder with '{SAELENS_CFG}' and '{SAELENS_WEIGHTS}'"
)

#: Dtypes an SAE or bundle tensor may be stored in (float8 and complex are refused).
FLOAT_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})

# File key -> literature name, per format.
_GS1_KEYS = {name: name for name in TENSOR_NAMES}
_GS2_KEYS = {"w_enc": "W_enc", "w_dec": "W_dec", "b_enc": "b_enc", "b_dec": "b_dec"}
_GS2_KEYS["threshold"] = "threshold"


class SAEFormat(StrEnum):
    """The on-disk formats :func:`read_sae` understands."""

    GEMMA_SCOPE = "gemma_scope"
    GEMMA_SCOPE_2 = "gemma_scope_2"
    SAELENS = "saelens"


class LoadedParams(NamedTuple):
    """Checked tensors and metadata read from disk.

    Attributes:
        tensors: The five tensors under their literature names, oriented as
            ``W_enc (d_model, d_sae)``, ``W_dec (d_sae, d_model)``, on CPU.
        info: Metadata (d_model, d_sae, site, source, Neuronpedia id, model name).
        format: Which layout the files were in.
    """

    tensors: dict[str, torch.Tensor]
    info: SAEInfo
    format: SAEFormat


def _present(path: Path) -> bool:
    """Whether anything, even a dangling symlink or a FIFO, is at ``path``."""
    return path.is_symlink() or path.exists()


def detect_format(path: str | Path) -> tuple[SAEFormat, Path]:
    """Tell which layout ``path`` is in.

    Detection looks at names only; :func:`read_sae` then refuses any file that is not a
    regular file inside the SAE's folder.

    Returns:
        The format and the path to read: the ``.npz`` file for Gemma Scope 1, the folder for
        the other two.

    Raises:
        ArtifactError: if ``path`` does not exist or matches none of the accepted layouts.
    """
    path = Path(path)
    if not _present(path):
        msg = f"no SAE at {path}: the path does not exist (accepted layouts: {ACCEPTED_LAYOUTS})"
        raise ArtifactError(msg)
    if not path.is_dir():
        if path.suffix == ".npz":
            return SAEFormat.GEMMA_SCOPE, path
        if path.name in (GS2_FILE, GS2_CONFIG, SAELENS_CFG, SAELENS_WEIGHTS):
            return detect_format(path.parent)
        msg = f"cannot read an SAE from the file {path}; accepted layouts: {ACCEPTED_LAYOUTS}"
        raise ArtifactError(msg)
    if _present(path / GS1_FILE):
        return SAEFormat.GEMMA_SCOPE, path / GS1_FILE
    if _present(path / GS2_FILE):
        return SAEFormat.GEMMA_SCOPE_2, path
    has_cfg, has_weights = _present(path / SAELENS_CFG), _present(path / SAELENS_WEIGHTS)
    if has_cfg and has_weights:
        return SAEFormat.SAELENS, path
    if has_cfg or has_weights:
        missing = SAELENS_WEIGHTS if has_cfg else SAELENS_CFG
        msg = f"incomplete SAELens folder {path}: '{missing}' is missing"
        raise ArtifactError(msg)
    found = sorted(p.name for p in path.iterdir())[:20]
    msg = f"unknown SAE layout in {path} (found {found}); accepted layouts: {ACCEPTED_LAYOUTS}"
    raise ArtifactError(msg)


def read_sae(
    path: str | Path, *, expected_d_model: int | None = None, source: str | None = None
) -> LoadedParams:
    """Read and check an SAE in any accepted layout.

    Args:
        path: A file or folder in one of the accepted layouts.
        expected_d_model: When given, the SAE's ``d_model`` must equal it.
        source: What to record as ``info.source`` (defaults to the path).

    Raises:
        ArtifactError: on an unknown layout, a missing/misnamed tensor, inconsistent shapes, a
            ``d_model`` mismatch, non-finite values, or an unsupported configuration.
    """
    fmt, target = detect_format(path)
    # Every file must stay inside the SAE's folder (or, in the HF cache, its repo's blobs).
    root = confinement_root(target.parent if fmt is SAEFormat.GEMMA_SCOPE else target)
    meta: dict[str, Any]
    if fmt is SAEFormat.GEMMA_SCOPE:
        weights_file = target
        real = confined_file(weights_file, root=root, what="SAE file")
        raw = _pick(read_npz(real, set(_GS1_KEYS)), _GS1_KEYS, target)
        meta = {}
    elif fmt is SAEFormat.GEMMA_SCOPE_2:
        weights_file = target / GS2_FILE
        raw = _pick(_read_safetensors(weights_file, root), _GS2_KEYS, weights_file)
        meta = _gs2_meta(target / GS2_CONFIG, root)
    else:
        weights_file = target / SAELENS_WEIGHTS
        arrays = _read_safetensors(weights_file, root)
        if "threshold" not in arrays and "log_threshold" in arrays:
            log_threshold = arrays.pop("log_threshold")
            check_float_tensor(log_threshold, name="log_threshold", where=weights_file)
            arrays["threshold"] = torch.exp(log_threshold)
        raw = _pick(arrays, _GS1_KEYS, weights_file)
        meta = _saelens_meta(target / SAELENS_CFG, root)
    tensors = check_tensors(raw, where=weights_file, expected_d_model=expected_d_model)
    d_model, d_sae = tensors["W_enc"].shape
    for key, value in (("d_model", d_model), ("d_sae", d_sae)):
        declared = meta.pop(key, None)
        if declared is not None and (isinstance(declared, bool) or not isinstance(declared, int)):
            msg = f"{target}: the config's {key} must be an integer, got {declared!r}"
            raise ArtifactError(msg)
        if declared is not None and declared != value:
            msg = f"{target}: the config declares {key}={declared} but the tensors have {value}"
            raise ArtifactError(msg)
    info = SAEInfo(
        d_model=int(d_model),
        d_sae=int(d_sae),
        site=meta.get("site"),
        source=source if source is not None else str(path),
        neuronpedia_id=meta.get("neuronpedia_id"),
        model_name=meta.get("model_name"),
    )
    logger.info("read %s SAE from %s: d_model=%d, d_sae=%d", fmt.value, target, d_model, d_sae)
    return LoadedParams(tensors=tensors, info=info, format=fmt)


def check_float_tensor(
    tensor: torch.Tensor,
    *,
    name: str,
    where: Path | str,
    ndim: int | None = None,
    allow_empty: bool = False,
) -> None:
    """Refuse a tensor that is not a finite, non-empty float16/bfloat16/float32/float64 array.

    Args:
        tensor: The tensor as read.
        name: Its name in the file (for the message).
        where: The file (for the message).
        ndim: The rank it must have, when fixed.
        allow_empty: Accept a tensor with no elements.

    Raises:
        ArtifactError: naming the tensor and the file.
    """
    if tensor.dtype not in FLOAT_DTYPES:
        msg = (
            f"{where}: tensor {name!r} has dtype {tensor.dtype}, expected one of "
            "float16, bfloat16, float32, float64"
        )
        raise ArtifactError(msg)
    if ndim is not None and tensor.ndim != ndim:
        msg = (
            f"{where}: tensor {name!r} is {tensor.ndim}-D {tuple(tensor.shape)}, expected {ndim}-D"
        )
        raise ArtifactError(msg)
    if tensor.numel() == 0 and not allow_empty:
        msg = f"{where}: tensor {name!r} is empty (shape {tuple(tensor.shape)})"
        raise ArtifactError(msg)
    bad = int((~torch.isfinite(tensor)).sum())
    if bad:
        msg = f"{where}: tensor {name!r} has {bad} non-finite values (NaN or inf)"
        raise ArtifactError(msg)


def check_tensors(
    raw: dict[str, torch.Tensor], *, where: Path, expected_d_model: int | None = None
) -> dict[str, torch.Tensor]:
    """Check the five tensors against each other; orient the two matrices.

    ``d_sae`` is read from ``b_enc`` and ``d_model`` from ``b_dec``; a matrix stored transposed
    is transposed back only when the biases prove it (``d_model != d_sae``), and that is logged.

    Raises:
        ArtifactError: naming the tensor and ``where`` on any inconsistency: a dtype other than
            float16/bfloat16/float32/float64, a wrong rank, an empty tensor, non-finite values,
            or shapes that disagree.
    """
    for name, tensor in raw.items():
        check_float_tensor(tensor, name=name, where=where, ndim=2 if name.startswith("W_") else 1)
    d_sae, d_model = raw["b_enc"].shape[0], raw["b_dec"].shape[0]
    out = dict(raw)
    if raw["threshold"].shape[0] != d_sae:
        msg = (
            f"{where}: 'threshold' has {raw['threshold'].shape[0]} entries but 'b_enc' has {d_sae}"
        )
        raise ArtifactError(msg)
    for name, shape in (("W_enc", (d_model, d_sae)), ("W_dec", (d_sae, d_model))):
        got = tuple(raw[name].shape)
        if got == shape:
            continue
        if got == shape[::-1] and d_model != d_sae:
            logger.info("%s: %r is stored as %s; transposing to %s", where, name, got, shape)
            out[name] = raw[name].T.contiguous()
            continue
        msg = (
            f"{where}: tensor {name!r} has shape {got}, expected {shape} "
            f"(d_model={d_model} from 'b_dec', d_sae={d_sae} from 'b_enc')"
        )
        raise ArtifactError(msg)
    if expected_d_model is not None and d_model != expected_d_model:
        msg = (
            f"{where}: the SAE reads d_model={d_model} but the model site has "
            f"d_model={expected_d_model}"
        )
        raise ArtifactError(msg)
    return out


# ---------------------------------------------------------------------------- file readers
def _read_safetensors(path: Path, root: Path) -> dict[str, torch.Tensor]:
    real = confined_file(path, root=root, what="SAE weights")
    try:
        return load_file(str(real), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        msg = f"cannot read {path} as safetensors: {exc}"
        raise ArtifactError(msg) from exc


def _pick(
    arrays: dict[str, torch.Tensor], keys: dict[str, str], where: Path
) -> dict[str, torch.Tensor]:
    missing = [k for k in keys if k not in arrays]
    if missing:
        msg = (
            f"{where}: missing tensor(s) {missing}; found {sorted(arrays)}; expected {sorted(keys)}"
        )
        raise ArtifactError(msg)
    return {name: arrays[key] for key, name in keys.items()}


def _parse_site(spec: Any, where: Path) -> Site | None:
    if not spec:
        return None
    try:
        return Site.parse(str(spec))
    except ConfigError:
        logger.warning(
            "%s: hook point %r is not a site scope-guard knows; site left unset", where, spec
        )
        return None


def _text_field(cfg: dict[str, Any], name: str, where: Path) -> str | None:
    value = cfg.get(name)
    if value is not None and not isinstance(value, str):
        msg = f"{where}: {name} must be a string, got {type(value).__name__}"
        raise ArtifactError(msg)
    return value


def _gs2_meta(config: Path, root: Path) -> dict[str, Any]:
    if not _present(config):
        logger.warning("%s is missing: the SAE's site is unknown", config)
        return {}
    cfg = read_json_object(config, root=root, what="SAE config")
    arch = cfg.get("architecture", "jump_relu")
    if arch not in ("jump_relu", "jumprelu"):
        msg = f"{config}: architecture {arch!r} is not supported; only 'jump_relu'"
        raise ArtifactError(msg)
    hook_in, hook_out = cfg.get("hf_hook_point_in"), cfg.get("hf_hook_point_out")
    if cfg.get("affine_connection") or (hook_out is not None and hook_out != hook_in):
        msg = f"{config}: this is a transcoder ({hook_in} -> {hook_out}), not an SAE; unsupported"
        raise ArtifactError(msg)
    meta: dict[str, Any] = {
        "site": _parse_site(hook_in, config),
        "model_name": _text_field(cfg, "model_name", config),
    }
    if isinstance(cfg.get("width"), int):
        meta["d_sae"] = cfg["width"]
    return meta


def _saelens_meta(cfg_path: Path, root: Path) -> dict[str, Any]:
    cfg = read_json_object(cfg_path, root=root, what="SAELens config")
    metadata = cfg.get("metadata")
    extra: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
    arch = cfg.get("architecture")
    if arch != "jumprelu":
        msg = f"{cfg_path}: architecture {arch!r} is not supported; only 'jumprelu'"
        raise ArtifactError(msg)
    if cfg.get("apply_b_dec_to_input"):
        msg = f"{cfg_path}: apply_b_dec_to_input=true is not supported (Gemma Scope SAEs use false)"
        raise ArtifactError(msg)
    if cfg.get("normalize_activations") not in (None, "none"):
        msg = f"{cfg_path}: normalize_activations={cfg['normalize_activations']!r} is not supported"
        raise ArtifactError(msg)

    def field(name: str) -> Any:
        return _text_field(extra if name in extra else cfg, name, cfg_path)

    return {
        "site": _parse_site(field("hook_name"), cfg_path),
        "model_name": field("model_name"),
        "neuronpedia_id": field("neuronpedia_id"),
        "d_model": cfg.get("d_in"),
        "d_sae": cfg.get("d_sae"),
    }
