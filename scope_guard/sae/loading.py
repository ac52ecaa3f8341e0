"""``load_sae``: one entry point for local SAE files and registry ids resolved through the HF cache.

A registry id (``gemma-scope-2b-pt-res/layer_20/width_16k/canonical``) is resolved with
:func:`~scope_guard.sae.registry.resolve_sae_id` and its files fetched with
``huggingface_hub.hf_hub_download``, which reuses the standard Hugging Face cache. Offline mode
(``HF_HUB_OFFLINE=1``, read at call time) or ``local_files_only=True`` never touches the
network; a file that is not cached then raises an :class:`~scope_guard.errors.ArtifactError`
that says how to get it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)

from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.hub import hub_cache_dir, offline_mode
from scope_guard.sae.formats import LoadedParams, read_sae
from scope_guard.sae.jumprelu import JumpReLUSAE, SAEInfo
from scope_guard.sae.registry import (
    SAERegistryEntry,
    is_registry_id,
    resolve_sae_id,
)

__all__ = ["load_sae"]

logger = logging.getLogger(__name__)


def _download(
    entry: SAERegistryEntry, filename: str, cache_dir: str | Path | None, local_files_only: bool
) -> Path:
    where = hub_cache_dir(cache_dir)
    how = (
        f"download it with `hf download {entry.repo_id} {filename}` (older clients: "
        f"`huggingface-cli download {entry.repo_id} {filename}`), after accepting the license "
        f"on https://huggingface.co/{entry.repo_id} and setting HF_TOKEN if the repo is gated"
    )
    try:
        path = hf_hub_download(
            entry.repo_id, filename, cache_dir=cache_dir, local_files_only=local_files_only
        )
    except LocalEntryNotFoundError as exc:
        mode = "offline (HF_HUB_OFFLINE / local_files_only)" if local_files_only else "unreachable"
        msg = (
            f"{filename} of {entry.repo_id} is not in the Hugging Face cache at {where} and the "
            f"hub is {mode}; {how}"
        )
        raise ArtifactError(msg) from exc
    except GatedRepoError as exc:
        msg = f"{entry.repo_id} is gated: cannot fetch {filename} into {where}; {how}"
        raise ArtifactError(msg) from exc
    except (RepositoryNotFoundError, EntryNotFoundError) as exc:
        msg = f"{filename} was not found in {entry.repo_id} (cache {where}): {exc}"
        raise ArtifactError(msg) from exc
    except (HfHubHTTPError, OSError) as exc:
        msg = f"cannot fetch {filename} of {entry.repo_id} into {where}: {exc}; {how}"
        raise ArtifactError(msg) from exc
    logger.info("resolved %s/%s to %s", entry.repo_id, filename, path)
    return Path(str(path))


def load_sae(
    source: str | Path | SAERegistryEntry,
    *,
    expected_d_model: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    local_files_only: bool | None = None,
) -> JumpReLUSAE:
    """Load a JumpReLU SAE from a local path or a registry id.

    Args:
        source: A Gemma Scope 1 ``params.npz`` (or its folder), a Gemma Scope 2 folder, a
            SAELens folder, a registry id, or a resolved registry entry.
        expected_d_model: When given, the SAE must read activations of this width (the site's
            width in the reader).
        dtype: Dtype to compute in (weights are cast once, after checks in their stored dtype).
        device: Device for the weights.
        cache_dir: Hugging Face cache folder (default: the standard one, ``HF_HUB_CACHE``).
        local_files_only: Never touch the network. ``None`` follows ``HF_HUB_OFFLINE``.

    Returns:
        The SAE in eval mode, ``info.source`` set to the registry id or the path.

    Raises:
        ArtifactError: if the files are missing, unreachable or malformed.
        ConfigError: if a registry id is invalid, or names an SAE whose ``d_model`` is not
            ``expected_d_model`` (checked before anything is downloaded).
    """
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        msg = f"dtype must be a floating torch dtype, got {dtype!r}"
        raise ConfigError(msg)
    if isinstance(source, SAERegistryEntry):
        loaded = _load_entry(source, expected_d_model, cache_dir, local_files_only)
    elif isinstance(source, str) and not Path(source).exists() and is_registry_id(source):
        entry = resolve_sae_id(source)
        loaded = _load_entry(entry, expected_d_model, cache_dir, local_files_only)
    else:
        loaded = read_sae(Path(source), expected_d_model=expected_d_model, source=str(source))
    t = {k: v.to(device=device, dtype=dtype) for k, v in loaded.tensors.items()}
    for name, tensor in t.items():
        # Finite in the stored dtype can overflow in a narrower one (float32 1e5 -> float16 inf).
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            msg = (
                f"{source}: tensor {name!r} has {bad} values that overflow {dtype} (NaN or "
                "inf after the cast); load it in a wider dtype"
            )
            raise ArtifactError(msg)
    sae = JumpReLUSAE(
        t["W_enc"], t["W_dec"], t["b_enc"], t["b_dec"], t["threshold"], info=loaded.info
    )
    return sae.eval()


def _load_entry(
    entry: SAERegistryEntry,
    expected_d_model: int | None,
    cache_dir: str | Path | None,
    local_files_only: bool | None,
) -> LoadedParams:
    if expected_d_model is not None and expected_d_model != entry.d_model:
        # Refuse before downloading: the id alone says the SAE reads another model's width.
        msg = (
            f"{entry.sae_id} reads {entry.site} of {entry.model} (d_model={entry.d_model}) but "
            f"the reader's site has d_model={expected_d_model}; pick an SAE trained on the "
            "reader's model"
        )
        raise ConfigError(msg)
    offline = offline_mode() if local_files_only is None else local_files_only
    weights = _download(entry, entry.path_in_repo, cache_dir, offline)
    if entry.config_path_in_repo is not None:
        _download(entry, entry.config_path_in_repo, cache_dir, offline)
    loaded = read_sae(weights, expected_d_model=expected_d_model, source=entry.sae_id)
    _check_against_entry(loaded.info, entry, weights)
    info = SAEInfo(
        d_model=loaded.info.d_model,
        d_sae=loaded.info.d_sae,
        site=loaded.info.site or entry.site,
        source=entry.sae_id,
        neuronpedia_id=loaded.info.neuronpedia_id or entry.neuronpedia_id,
        model_name=loaded.info.model_name or entry.model,
    )
    return loaded._replace(info=info)


def _check_against_entry(info: SAEInfo, entry: SAERegistryEntry, where: Path) -> None:
    """The downloaded tensors must match what the registry says the SAE is."""
    if info.d_model != entry.d_model or info.d_sae != entry.d_sae:
        msg = (
            f"{where}: tensors have d_model={info.d_model}, d_sae={info.d_sae} but the registry "
            f"says {entry.sae_id} has d_model={entry.d_model}, d_sae={entry.d_sae}"
        )
        raise ArtifactError(msg)
    if info.site is not None and info.site != entry.site:
        msg = f"{where}: its config says site {info.site} but the registry says {entry.site}"
        raise ArtifactError(msg)
