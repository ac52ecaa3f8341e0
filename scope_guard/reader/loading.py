"""Finding and loading a reader checkpoint: local folder or hub id, only the layers needed.

Only Gemma-family decoders are accepted (Gemma 2 is the target of Gemma Scope, Gemma 3 of Gemma
Scope 2), because the meaning of ``mlp_out`` and ``attn_out`` depends on the layer's modules.
Remote code is never trusted and only safetensors weights are read.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from safetensors import SafetensorError
from torch import nn

from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.hub import hub_cache_dir, offline_mode
from scope_guard.sites import Site, SiteKind

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "LoadedDecoder",
    "decoder_layers",
    "find_decoder",
    "load_decoder",
    "parse_device",
    "parse_dtype",
    "quiet_transformers",
    "refuse_remote_code",
    "resolve_model_dir",
    "site_dim",
    "text_config",
]

logger = logging.getLogger(__name__)

# model_type -> attention implementation. Gemma 2 soft-caps attention logits, which only the
# eager implementation computes; Gemma 3 has no soft-capping and runs on SDPA.
SUPPORTED_MODEL_TYPES: dict[str, str] = {
    "gemma2": "eager",
    "gemma3_text": "sdpa",
    "gemma3": "sdpa",
}
_WEIGHT_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.jinja", "*.txt"]
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


# A torch.dtype given directly: the floating types a decoder can run in.
_TORCH_DTYPES = frozenset({torch.float32, torch.bfloat16, torch.float16, torch.float64})


def parse_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """Resolve a dtype setting; ``"auto"`` is bf16 on GPUs and on CPUs with bf16 instructions.

    Raises:
        ConfigError: an unknown name, or a dtype a decoder cannot run in (integer, bool, fp8).
    """
    if isinstance(dtype, torch.dtype):
        if dtype not in _TORCH_DTYPES:
            valid = ", ".join(sorted(str(d) for d in _TORCH_DTYPES))
            msg = f"a reader cannot run in {dtype}; valid: {valid}"
            raise ConfigError(msg)
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key == "auto":
        if device.type == "cuda":
            return torch.bfloat16
        native_bf16 = torch.backends.mkldnn.is_available() and bool(
            torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
        return torch.bfloat16 if native_bf16 else torch.float32
    if key not in _DTYPES:
        msg = f"unknown dtype {dtype!r}; valid: auto, {', '.join(sorted(_DTYPES))}"
        raise ConfigError(msg)
    return _DTYPES[key]


def parse_device(device: str | torch.device) -> torch.device:
    """Resolve a device setting and check that this torch can use it.

    Raises:
        ConfigError: an unknown device string, or a device this machine or torch build lacks.
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        msg = f"unknown device {device!r}; valid: 'cpu', 'cuda', 'cuda:N', 'mps'"
        raise ConfigError(msg) from exc
    # Checked here because torch only fails at the first .to(device), with an AssertionError
    # ("Torch not compiled with CUDA enabled") or a RuntimeError.
    if parsed.type == "cuda":
        n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n_gpus == 0:
            msg = (
                f"device {str(parsed)!r} requested, but this torch ({torch.__version__}) sees no "
                "CUDA GPU; use device='cpu' or install a CUDA build of torch"
            )
            raise ConfigError(msg)
        if parsed.index is not None and parsed.index >= n_gpus:
            msg = f"device {str(parsed)!r} requested, but only {n_gpus} CUDA GPU(s) are visible"
            raise ConfigError(msg)
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        msg = "device 'mps' requested, but MPS is not available here; use device='cpu'"
        raise ConfigError(msg)
    return parsed


def resolve_model_dir(
    model: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    revision: str | None = None,
) -> Path:
    """Return a local folder holding the model: ``model`` itself, or its HF-cache snapshot.

    Raises:
        ArtifactError: if the folder does not exist, or the hub id is not available (offline or
            not downloaded); the message names the id, the cache folder and how to get it.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            msg = (
                f"{path} has no config.json: not a Hugging Face model folder (nor a folder "
                "holding one .gguf file)"
            )
            raise ArtifactError(msg)
        return path
    text = str(model)
    if path.exists() or text.count("/") != 1 or text.startswith((".", "/", "~")):
        msg = (
            f"model {text!r} is neither a model folder, a .gguf file, a built-in reader "
            "('gemma-3-270m') nor a hub id like 'google/gemma-2-2b'"
        )
        raise ArtifactError(msg)

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = offline_mode() if local_files_only is None else local_files_only
    cache = hub_cache_dir(cache_dir)
    try:
        folder = snapshot_download(
            text,
            revision=revision,
            cache_dir=cache,
            local_files_only=offline,
            allow_patterns=_WEIGHT_PATTERNS,
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        mode = "offline (HF_HUB_OFFLINE or local_files_only)" if offline else "online"
        msg = (
            f"model {text!r} is not available ({mode}): {type(exc).__name__}. Looked in the HF "
            f"cache at {cache}. To get the weights: accept the Gemma license on "
            f"https://huggingface.co/{text}, run `hf auth login`, then `hf download {text}` "
            "(or pass the path of a local folder with config.json and *.safetensors)."
        )
        raise ArtifactError(msg) from exc
    return Path(folder)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' warnings and progress bars for the duration (restored after)."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()


def text_config(config: Any) -> Any:
    """The decoder's config (a multimodal Gemma 3 config holds it as ``text_config``)."""
    return config.text_config if getattr(config, "model_type", "") == "gemma3" else config


def site_dim(config: Any, site: Site) -> int:
    """Width of a site's activation: ``d_model``, or ``n_heads * head_dim`` for ``attn_out``."""
    cfg = text_config(config)
    if site.kind is SiteKind.ATTN_OUT:
        return int(cfg.num_attention_heads * cfg.head_dim)
    return int(cfg.hidden_size)


def find_decoder(model: nn.Module) -> nn.Module:
    """The module holding the decoder ``layers``: the model itself, ``.model`` or the language
    model of a multimodal wrapper. Never the LM head."""
    for candidate in (
        model,
        getattr(model, "model", None),
        getattr(model, "language_model", None),
        getattr(getattr(model, "model", None), "language_model", None),
    ):
        if isinstance(candidate, nn.Module) and isinstance(
            getattr(candidate, "layers", None), nn.ModuleList
        ):
            return candidate
    msg = f"cannot find decoder layers in {type(model).__name__}"
    raise ConfigError(msg)


def decoder_layers(decoder: nn.Module) -> nn.ModuleList:
    return cast(nn.ModuleList, decoder.layers)  # find_decoder checked the type


@dataclass(frozen=True)
class LoadedDecoder:
    """A decoder loaded for reading.

    Attributes:
        decoder: The module with ``layers`` (no LM head), on its device, in eval mode.
        tokenizer: The checkpoint's tokenizer.
        config: The full model config (not truncated).
        n_layers: Layers of the full model; fewer may be loaded.
        model_type: ``config.model_type``.
        causal_lm: The whole causal LM the decoder belongs to (every layer, the final norm and
            the LM head), when it was loaded with ``whole=True``; ``None`` otherwise.
    """

    decoder: nn.Module
    tokenizer: Any
    config: Any
    n_layers: int
    model_type: str
    causal_lm: nn.Module | None = None


def load_decoder(
    folder: Path,
    *,
    deepest_layer: int,
    dtype: torch.dtype,
    device: torch.device,
    whole: bool = False,
) -> LoadedDecoder:
    """Load the tokenizer and the decoder's first ``deepest_layer + 1`` layers from ``folder``.

    The checkpoint's later layers and LM head are never materialised: the config is cut to the
    layers needed before the weights are loaded. With ``whole=True`` the whole causal LM is
    loaded instead (every layer, the final norm, the LM head), for the reader's surprisal;
    ``deepest_layer`` is then only checked.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    refuse_remote_code(folder)
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
        full_config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        msg = f"cannot read the model config in {folder}: {exc}"
        raise ArtifactError(msg) from exc
    model_type = getattr(config, "model_type", "")
    if model_type not in SUPPORTED_MODEL_TYPES:
        msg = (
            f"unsupported reader model_type {model_type!r} in {folder}; supported: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} "
            "(Gemma 2 for Gemma Scope, Gemma 3 for Gemma Scope 2)"
        )
        raise ConfigError(msg)
    cfg = text_config(config)
    tokenizer = _load_tokenizer(folder, vocab_size=int(cfg.vocab_size))
    n_layers = int(cfg.num_hidden_layers)
    if deepest_layer >= n_layers:
        msg = f"layer {deepest_layer} requested, but the model in {folder} has {n_layers} layers"
        raise ConfigError(msg)
    if not whole:
        cfg.num_hidden_layers = deepest_layer + 1
        if getattr(cfg, "layer_types", None) is not None:
            cfg.layer_types = list(cfg.layer_types)[: deepest_layer + 1]
    auto: Any = AutoModelForCausalLM if whole else AutoModel  # both return (model, info) here

    try:
        with quiet_transformers():  # the skipped layers and LM head are expected "unused weights"
            model, loading_info = auto.from_pretrained(
                folder,
                config=config,
                dtype=dtype,
                attn_implementation=SUPPORTED_MODEL_TYPES[model_type],
                use_safetensors=True,
                output_loading_info=True,
                trust_remote_code=False,
            )
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        # SafetensorError (a torn or corrupt file) derives from Exception only.
        msg = f"cannot load the model weights in {folder}: {exc}"
        raise ArtifactError(msg) from exc
    # A weight the checkpoint lacks would otherwise be left at its random initialisation.
    missing = sorted(
        str(k)
        for k in (*loading_info.get("missing_keys", ()), *loading_info.get("mismatched_keys", ()))
    )
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        msg = f"the checkpoint in {folder} lacks {len(missing)} weights of the layers read: {shown}"
        raise ArtifactError(msg)
    if not whole:
        decoder = find_decoder(model).to(device).eval()
        return LoadedDecoder(decoder, tokenizer, full_config, n_layers, model_type)
    causal_lm = cast(nn.Module, model).to(device).eval()
    return LoadedDecoder(
        find_decoder(causal_lm), tokenizer, full_config, n_layers, model_type, causal_lm
    )


# Files in which transformers looks for ``auto_map`` (custom classes shipped as code).
_CODE_MAP_FILES = ("config.json", "tokenizer_config.json", "processor_config.json")
_MAX_CONFIG_BYTES = 16 << 20


def refuse_remote_code(folder: Path) -> None:
    """Refuse a folder that asks for custom code (``auto_map``) or ships ``.py`` files.

    ``trust_remote_code=False`` is passed everywhere too; this check comes first so that no
    version of transformers ever gets to ask "run the custom code? [y/N]" on a terminal.

    Raises:
        ArtifactError: the folder maps classes to code, ships Python files, or has a config
            that is not a readable JSON object.
    """
    shipped = sorted(p.name for p in folder.glob("*.py"))
    if shipped:
        msg = (
            f"{folder} ships Python code ({', '.join(shipped[:3])}); scope-guard never runs a "
            "checkpoint's code: use a folder with only config, weights and tokenizer files"
        )
        raise ArtifactError(msg)
    for name in _CODE_MAP_FILES:
        path = folder / name
        if not path.exists():
            continue
        if not path.is_file() or path.stat().st_size > _MAX_CONFIG_BYTES:
            msg = f"{path} is not a regular JSON file of at most {_MAX_CONFIG_BYTES >> 20} MiB"
            raise ArtifactError(msg)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            msg = f"cannot read {path}: {type(exc).__name__}: {exc}"
            raise ArtifactError(msg) from exc
        if not isinstance(data, dict):
            msg = f"{path} is not a JSON object"
            raise ArtifactError(msg)
        if "auto_map" in data:
            msg = (
                f"{path} maps classes to custom code (auto_map); scope-guard never runs a "
                "checkpoint's code (trust_remote_code is always off)"
            )
            raise ArtifactError(msg)


def _load_tokenizer(folder: Path, *, vocab_size: int) -> Any:
    """The checkpoint's own tokenizer, refused when it is missing or not this model's."""
    from transformers import AutoTokenizer

    # Without tokenizer files transformers 5 builds an empty 5-token tokenizer from the
    # config alone: every word becomes <unk> and BOS goes missing, silently.
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        msg = (
            f"{folder} has no tokenizer ({' or '.join(_TOKENIZER_FILES)}); copy the "
            "checkpoint's tokenizer files next to its config.json"
        )
        raise ArtifactError(msg)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        msg = f"cannot read the tokenizer in {folder}: {exc}"
        raise ArtifactError(msg) from exc
    # Sizes need not match exactly: Gemma 3 pads its embedding (262,208 rows for 262,145
    # tokens), and the 1B model's tokenizer has one token beyond its 262,144 rows. A tokenizer
    # off by a factor of two belongs to another model.
    size = len(tokenizer)
    if not vocab_size // 2 <= size <= 2 * vocab_size:
        msg = (
            f"the tokenizer in {folder} has {size} tokens, but the model's embedding has "
            f"{vocab_size} rows: it is not this model's tokenizer"
        )
        raise ArtifactError(msg)
    return tokenizer
