"""Hostile SAE files in each format: every case is a file a download could hold.

Each must end in an ArtifactError naming the file, before anything outside the SAE's folder is
opened and before a declared size is allocated.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from sae_builders import D_MODEL, D_SAE, random_sae
from safetensors.torch import load_file, save_file

from scope_guard.errors import ArtifactError
from scope_guard.sae import (
    JumpReLUSAE,
    load_sae,
    save_gemma_scope_2,
    save_gemma_scope_npz,
    save_saelens,
)

NAMES = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")


def arrays(sae: JumpReLUSAE) -> dict[str, np.ndarray]:
    return {k: getattr(sae, k).numpy().copy() for k in NAMES}


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    """A valid .npy v1 header for ``shape`` with no data behind it."""
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)  # writes the magic too
    return buffer.getvalue()


def write_npz(path: Path, members: dict[str, bytes], *, compression: int = zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def members_of(sae: JumpReLUSAE) -> dict[str, bytes]:
    return {f"{k}.npy": npy_bytes(v) for k, v in arrays(sae).items()}


def refused(source: Path, match: str, name: str | None = None) -> ArtifactError:
    with pytest.raises(ArtifactError, match=match) as err:
        load_sae(source)
    assert (name or source.name) in str(err.value)
    return err.value


# ------------------------------------------------------------------ params.npz
def test_npz_declaring_four_tebibytes_is_refused_before_allocating(tmp_path: Path, sae) -> None:
    members = members_of(sae)
    members["W_enc.npy"] = npy_header((1 << 20, 1 << 20)) + b"\0" * 64  # 4 TiB of float32
    path = write_npz(tmp_path / "params.npz", members)
    refused(path, r"truncated: its header declares shape \(1048576, 1048576\)")


def test_npz_member_shorter_than_its_header_says_is_called_truncated(tmp_path, sae) -> None:
    members = members_of(sae)
    members["b_enc.npy"] = npy_bytes(arrays(sae)["b_enc"])[:-12]
    path = write_npz(tmp_path / "params.npz", members)
    refused(path, r"'b_enc' is truncated.*64 bytes of float32.*holds 52")


def test_npz_with_trailing_bytes_in_a_member_is_refused(tmp_path, sae) -> None:
    members = members_of(sae)
    members["b_dec.npy"] = npy_bytes(arrays(sae)["b_dec"]) + b"\0" * 8
    refused(write_npz(tmp_path / "params.npz", members), "'b_dec' is padded")


def test_npz_zip_bomb_ratio_is_refused(tmp_path, sae) -> None:
    path = write_npz(tmp_path / "params.npz", members_of(sae), compression=zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    # Patch W_enc's declared uncompressed size in the central directory to ~4 GiB.
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("W_enc.npy")
    central = data.find(b"PK\x01\x02")  # the first central-directory entry is W_enc's
    offset = data.find(b"W_enc.npy", central) - 46 + 24  # its uncompressed-size field
    data[offset : offset + 4] = (0xFFFFFFF0).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert info.file_size < 0xFFFFFFF0
    refused(path, "more than deflate can produce|truncated|unreadable")


@pytest.mark.parametrize(
    "array",
    [
        np.array(["abc", "def"]),
        np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]),
        np.zeros(3, dtype="<M8[s]"),
        np.zeros(3, dtype=np.float128) if hasattr(np, "float128") else np.zeros(3, "<c16"),
        np.zeros(3, dtype=np.int64),
        np.zeros(3, dtype=np.complex64),
    ],
    ids=["unicode", "structured", "datetime", "longdouble", "int64", "complex"],
)
def test_npz_array_of_an_unusable_dtype_is_refused(tmp_path, sae, array) -> None:
    members = members_of(sae)
    members["b_enc.npy"] = npy_bytes(array)
    refused(write_npz(tmp_path / "params.npz", members), "dtype")


def test_npz_with_an_object_array_needs_pickle_and_is_refused(tmp_path, sae) -> None:
    members = members_of(sae)
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    members["W_dec.npy"] = buffer.getvalue()
    refused(write_npz(tmp_path / "params.npz", members), "pickle")


def test_npz_with_a_malformed_header_is_refused(tmp_path, sae) -> None:
    members = members_of(sae)
    members["W_enc.npy"] = np.lib.format.magic(1, 0) + b"\x20\x00{'descr': __import__('os')}  \n"
    refused(write_npz(tmp_path / "params.npz", members), "malformed .npy header")


def test_npz_holding_an_array_twice_is_refused(tmp_path, sae) -> None:
    path = tmp_path / "params.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members_of(sae).items():
            archive.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("threshold.npy", npy_bytes(np.full(D_SAE, 1e9, np.float32)))
    refused(path, "twice")


def test_npz_with_bzip2_members_is_refused(tmp_path, sae) -> None:
    path = write_npz(tmp_path / "params.npz", members_of(sae), compression=zipfile.ZIP_BZIP2)
    refused(path, "compression method")


def test_big_endian_npz_loads_with_the_same_values(tmp_path, sae) -> None:
    members = {f"{k}.npy": npy_bytes(v.astype(">f4")) for k, v in arrays(sae).items()}
    loaded = load_sae(write_npz(tmp_path / "params.npz", members))
    assert torch.equal(loaded.W_enc, sae.W_enc)


def test_fortran_order_npz_loads_with_the_same_values(tmp_path, sae) -> None:
    members = {f"{k}.npy": npy_bytes(np.asfortranarray(v)) for k, v in arrays(sae).items()}
    loaded = load_sae(write_npz(tmp_path / "params.npz", members))
    assert torch.equal(loaded.W_dec, sae.W_dec)


def test_npz_that_is_a_single_npy_array(tmp_path, sae) -> None:
    path = tmp_path / "params.npz"
    path.write_bytes(npy_bytes(arrays(sae)["W_enc"]))
    refused(path, "single .npy array")


def test_npz_that_is_a_directory(tmp_path) -> None:
    (tmp_path / "sae" / "params.npz").mkdir(parents=True)
    refused(tmp_path / "sae", "a directory", "params.npz")


def test_npz_that_is_a_fifo_does_not_block(tmp_path) -> None:
    (tmp_path / "sae").mkdir()
    os.mkfifo(tmp_path / "sae" / "params.npz")
    refused(tmp_path / "sae", "a FIFO", "params.npz")


def test_npz_symlinked_out_of_its_folder_is_refused(tmp_path, sae) -> None:
    outside = save_gemma_scope_npz(sae, tmp_path / "elsewhere" / "params.npz")
    (tmp_path / "sae").mkdir()
    (tmp_path / "sae" / "params.npz").symlink_to(outside)
    refused(tmp_path / "sae", "resolves outside its folder", "params.npz")


def test_zero_width_sae_is_an_artifact_error(tmp_path) -> None:
    members = {
        "W_enc.npy": npy_bytes(np.zeros((D_MODEL, 0), np.float32)),
        "W_dec.npy": npy_bytes(np.zeros((0, D_MODEL), np.float32)),
        "b_enc.npy": npy_bytes(np.zeros(0, np.float32)),
        "b_dec.npy": npy_bytes(np.zeros(D_MODEL, np.float32)),
        "threshold.npy": npy_bytes(np.zeros(0, np.float32)),
    }
    refused(write_npz(tmp_path / "params.npz", members), "empty")


# ------------------------------------------------------------------ Gemma Scope 2 folders
def test_gs2_weights_symlinked_out_of_the_folder_are_refused(tmp_path, sae) -> None:
    other = save_gemma_scope_2(sae, tmp_path / "other")
    folder = save_gemma_scope_2(sae, tmp_path / "gs2")
    (folder / "params.safetensors").unlink()
    (folder / "params.safetensors").symlink_to(other / "params.safetensors")
    refused(folder, "resolves outside its folder", "params.safetensors")


def test_gs2_config_symlinked_to_a_system_file_is_refused(tmp_path, sae) -> None:
    folder = save_gemma_scope_2(sae, tmp_path / "gs2")
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to("/etc/passwd")
    refused(folder, "resolves outside its folder", "config.json")


def test_gs2_config_that_is_a_fifo_does_not_block(tmp_path, sae) -> None:
    folder = save_gemma_scope_2(sae, tmp_path / "gs2")
    (folder / "config.json").unlink()
    os.mkfifo(folder / "config.json")
    refused(folder, "a FIFO", "config.json")


def test_gs2_dangling_config_symlink_is_refused(tmp_path, sae) -> None:
    folder = save_gemma_scope_2(sae, tmp_path / "gs2")
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to(folder / "nowhere.json")
    refused(folder, "missing", "config.json")


def test_gs2_float8_weights_are_refused(tmp_path, sae) -> None:
    folder = save_gemma_scope_2(sae, tmp_path / "gs2")
    tensors = load_file(str(folder / "params.safetensors"))
    tensors["w_enc"] = tensors["w_enc"].to(torch.float8_e4m3fn)
    save_file(tensors, str(folder / "params.safetensors"))
    refused(folder, "dtype torch.float8", "params.safetensors")


def test_gs2_config_with_a_non_string_model_name(tmp_path, sae) -> None:
    folder = save_gemma_scope_2(sae, tmp_path / "gs2")
    config = json.loads((folder / "config.json").read_text())
    config["model_name"] = {"$ref": "x"}
    (folder / "config.json").write_text(json.dumps(config))
    refused(folder, "model_name must be a string", "config.json")


def test_gs2_weights_with_a_huge_declared_header(tmp_path, sae) -> None:
    folder = save_gemma_scope_2(sae, tmp_path / "gs2")
    (folder / "params.safetensors").write_bytes((2**62).to_bytes(8, "little") + b"{}")
    refused(folder, "cannot read .* as safetensors", "params.safetensors")


# ------------------------------------------------------------------ SAELens folders
def _saelens(tmp_path: Path, sae: JumpReLUSAE) -> Path:
    return save_saelens(sae, tmp_path / "saelens")


def test_saelens_deeply_nested_cfg_is_an_artifact_error(tmp_path, sae) -> None:
    folder = _saelens(tmp_path, sae)
    text = (folder / "cfg.json").read_text().rstrip()
    deep = "[" * 100_000 + "]" * 100_000
    (folder / "cfg.json").write_text(text[:-1] + f', "x": {deep}}}')
    refused(folder, "nests JSON", "cfg.json")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"architecture": "jumprelu", "architecture": "topk"}', "duplicate key"),
        ('{"d_in": ' + "9" * 5000 + "}", "not valid JSON"),
        ("[]", "must hold a JSON object"),
    ],
    ids=["duplicate-keys", "5000-digits", "list"],
)
def test_saelens_malformed_cfg(tmp_path, sae, text: str, match: str) -> None:
    folder = _saelens(tmp_path, sae)
    (folder / "cfg.json").write_text(text)
    refused(folder, match, "cfg.json")


def test_saelens_cfg_over_the_size_limit_is_refused(tmp_path, sae) -> None:
    folder = _saelens(tmp_path, sae)
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["padding"] = "x" * (17 * 1024 * 1024)
    (folder / "cfg.json").write_text(json.dumps(cfg))
    refused(folder, "more than the", "cfg.json")


def test_saelens_non_utf8_cfg(tmp_path, sae) -> None:
    folder = _saelens(tmp_path, sae)
    (folder / "cfg.json").write_bytes(b'{"architecture": "jumprelu\xff"}')
    refused(folder, "not UTF-8", "cfg.json")


def test_saelens_integer_log_threshold_is_refused(tmp_path, sae) -> None:
    folder = _saelens(tmp_path, sae)
    tensors = load_file(str(folder / "sae_weights.safetensors"))
    del tensors["threshold"]
    tensors["log_threshold"] = torch.zeros(D_SAE, dtype=torch.int32)
    save_file(tensors, str(folder / "sae_weights.safetensors"))
    refused(folder, "'log_threshold' has dtype", "sae_weights.safetensors")


def test_saelens_log_threshold_overflowing_exp_is_refused(tmp_path, sae) -> None:
    folder = _saelens(tmp_path, sae)
    tensors = load_file(str(folder / "sae_weights.safetensors"))
    del tensors["threshold"]
    tensors["log_threshold"] = torch.full((D_SAE,), 1000.0)
    save_file(tensors, str(folder / "sae_weights.safetensors"))
    refused(folder, "non-finite", "sae_weights.safetensors")


def test_saelens_weights_symlinked_out_are_refused(tmp_path, sae) -> None:
    other = save_saelens(random_sae(seed=3), tmp_path / "other")
    folder = _saelens(tmp_path, sae)
    (folder / "sae_weights.safetensors").unlink()
    (folder / "sae_weights.safetensors").symlink_to(other / "sae_weights.safetensors")
    refused(folder, "resolves outside its folder", "sae_weights.safetensors")


@pytest.mark.parametrize("name", NAMES)
def test_saelens_mismatched_widths_are_refused(tmp_path, sae, name: str) -> None:
    folder = _saelens(tmp_path, sae)
    tensors = load_file(str(folder / "sae_weights.safetensors"))
    tensors[name] = tensors[name][..., :-1].contiguous()
    save_file(tensors, str(folder / "sae_weights.safetensors"))
    refused(folder, "shape|entries", "sae_weights.safetensors")


# ------------------------------------------------------------------ load_sae
def test_values_that_overflow_the_requested_dtype_are_refused(tmp_path) -> None:
    sae = random_sae()
    big = JumpReLUSAE(
        sae.W_enc * 1e6, sae.W_dec, sae.b_enc, sae.b_dec, sae.threshold, info=sae.info
    )
    folder = save_saelens(big, tmp_path / "big")
    assert load_sae(folder).W_enc.abs().max() > 1e5  # finite in float32
    with pytest.raises(ArtifactError, match=r"overflow torch\.float16") as err:
        load_sae(folder, dtype=torch.float16)
    assert "big" in str(err.value)


def test_hf_cache_snapshot_symlinks_into_its_blobs_load(tmp_path, sae) -> None:
    repo = tmp_path / "models--google--gemma-scope-x"
    snap = repo / "snapshots" / ("0" * 40) / "layer_3"
    snap.mkdir(parents=True)
    (repo / "blobs").mkdir()
    save_gemma_scope_2(sae, repo / "blobs" / "staging")
    for name, blob in (("params.safetensors", "aa11"), ("config.json", "bb22")):
        (repo / "blobs" / "staging" / name).rename(repo / "blobs" / blob)
        (snap / name).symlink_to(Path("../../../blobs") / blob)
    assert torch.equal(load_sae(snap).W_enc, sae.W_enc)


def test_hf_cache_snapshot_symlink_leaving_its_repo_is_refused(tmp_path, sae) -> None:
    repo = tmp_path / "models--google--gemma-scope-x"
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    outside = save_gemma_scope_npz(sae, tmp_path / "outside" / "params.npz")
    (snap / "params.npz").symlink_to(outside)
    refused(snap, "resolves outside its folder", "params.npz")
