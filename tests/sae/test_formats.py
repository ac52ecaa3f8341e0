from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sae_builders import D_MODEL, D_SAE, random_inputs, random_sae
from safetensors.torch import save_file

from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.sae import (
    JumpReLUSAE,
    SAEFormat,
    detect_format,
    load_sae,
    read_sae,
    save_gemma_scope_2,
    save_gemma_scope_npz,
    save_saelens,
)
from scope_guard.sites import Site, SiteKind


def npz_arrays(sae: JumpReLUSAE) -> dict[str, np.ndarray]:
    return {
        k: getattr(sae, k).numpy().copy() for k in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")
    }


@pytest.fixture
def written(tmp_path: Path, sae: JumpReLUSAE) -> dict[SAEFormat, Path]:
    return {
        SAEFormat.GEMMA_SCOPE: save_gemma_scope_npz(sae, tmp_path / "gs1"),
        SAEFormat.GEMMA_SCOPE_2: save_gemma_scope_2(sae, tmp_path / "gs2", l0=5.0),
        SAEFormat.SAELENS: save_saelens(sae, tmp_path / "saelens"),
    }


def test_three_formats_give_identical_encodings(
    sae: JumpReLUSAE, inputs: torch.Tensor, written: dict[SAEFormat, Path]
) -> None:
    expected = sae.encode(inputs)
    for fmt, path in written.items():
        assert detect_format(path)[0] is fmt
        loaded = load_sae(path, expected_d_model=D_MODEL)
        for name in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"):
            assert torch.equal(getattr(loaded, name), getattr(sae, name)), (fmt, name)
        assert torch.equal(loaded.encode(inputs), expected), fmt
        assert (
            loaded.info.site == Site(layer=3, kind=SiteKind.RESID_POST)
            or fmt is SAEFormat.GEMMA_SCOPE
        )


def test_folder_and_file_forms_are_accepted(written: dict[SAEFormat, Path]) -> None:
    npz_file = written[SAEFormat.GEMMA_SCOPE]
    assert npz_file.name == "params.npz"
    assert detect_format(npz_file.parent) == (SAEFormat.GEMMA_SCOPE, npz_file)
    gs2 = written[SAEFormat.GEMMA_SCOPE_2]
    assert detect_format(gs2 / "params.safetensors") == (SAEFormat.GEMMA_SCOPE_2, gs2)


def test_gemma_scope_2_config_fields(written: dict[SAEFormat, Path]) -> None:
    cfg = json.loads((written[SAEFormat.GEMMA_SCOPE_2] / "config.json").read_text())
    assert cfg["hf_hook_point_in"] == "model.layers.3.output"
    assert cfg["architecture"] == "jump_relu"
    assert cfg["width"] == D_SAE
    loaded = read_sae(written[SAEFormat.GEMMA_SCOPE_2])
    assert loaded.info.site == Site(layer=3, kind=SiteKind.RESID_POST)
    assert loaded.info.model_name == "tiny-gemma"


@pytest.mark.parametrize(
    ("kind", "hook"),
    [
        (SiteKind.MLP_OUT, "model.layers.5.post_feedforward_layernorm.output"),
        (SiteKind.ATTN_OUT, "model.layers.5.self_attn.o_proj.input"),
    ],
)
def test_gemma_scope_2_hook_points_round_trip(tmp_path: Path, kind: SiteKind, hook: str) -> None:
    sae = random_sae(site=Site(layer=5, kind=kind))
    folder = save_gemma_scope_2(sae, tmp_path / "gs2")
    assert json.loads((folder / "config.json").read_text())["hf_hook_point_in"] == hook
    assert load_sae(folder).info.site == Site(layer=5, kind=kind)


def test_gemma_scope_2_transposed_w_enc_is_oriented_by_bias_shapes(
    tmp_path: Path, sae: JumpReLUSAE, inputs: torch.Tensor
) -> None:
    folder = save_gemma_scope_2(sae, tmp_path / "gs2")
    tensors = {
        "w_enc": sae.W_enc.T.contiguous(),
        "w_dec": sae.W_dec,
        "b_enc": sae.b_enc,
        "b_dec": sae.b_dec,
        "threshold": sae.threshold,
    }
    save_file(tensors, str(folder / "params.safetensors"))
    assert torch.equal(load_sae(folder).encode(inputs), sae.encode(inputs))


def test_save_saelens_round_trip_keeps_dtype_and_metadata(
    tmp_path: Path, inputs: torch.Tensor
) -> None:
    sae = random_sae(site=Site(layer=2, kind=SiteKind.ATTN_OUT), dtype=torch.float64)
    folder = save_saelens(sae, tmp_path / "sl")
    cfg = json.loads((folder / "cfg.json").read_text())
    assert (cfg["architecture"], cfg["d_in"], cfg["d_sae"], cfg["dtype"]) == (
        "jumprelu",
        8,
        16,
        "float64",
    )
    assert cfg["metadata"]["hook_name"] == "blocks.2.attn.hook_z"
    assert cfg["apply_b_dec_to_input"] is False
    loaded = load_sae(folder, dtype=torch.float64)
    assert loaded.info.site == Site(layer=2, kind=SiteKind.ATTN_OUT)
    assert torch.equal(loaded.encode(inputs), sae.encode(inputs))


def test_saelens_pre_v6_flat_cfg_is_read(tmp_path: Path, sae: JumpReLUSAE) -> None:
    folder = save_saelens(sae, tmp_path / "sl")
    cfg = {
        "architecture": "jumprelu",
        "d_in": D_MODEL,
        "d_sae": D_SAE,
        "dtype": "float32",
        "hook_name": "blocks.7.hook_mlp_out",
        "hook_layer": 7,
        "model_name": "gemma-2-2b",
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))
    info = read_sae(folder).info
    assert info.site == Site(layer=7, kind=SiteKind.MLP_OUT)
    assert info.model_name == "gemma-2-2b"


def test_writers_refuse_narrowed_sae(tmp_path: Path, sae: JumpReLUSAE) -> None:
    with pytest.raises(ConfigError, match="narrowed"):
        save_saelens(sae.narrow([0, 1]), tmp_path / "x")


# --------------------------------------------------------------------------- malformed artifacts
def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez(path, **arrays)
    return path


def test_missing_tensor_is_named(tmp_path: Path, sae: JumpReLUSAE) -> None:
    arrays = npz_arrays(sae)
    del arrays["threshold"]
    path = write_npz(tmp_path / "params.npz", arrays)
    with pytest.raises(ArtifactError, match=r"missing tensor\(s\) \['threshold'\]") as err:
        load_sae(path)
    assert str(path) in str(err.value)


def test_misnamed_tensor_lists_found_and_expected(tmp_path: Path, sae: JumpReLUSAE) -> None:
    arrays = npz_arrays(sae)
    arrays["w_enc"] = arrays.pop("W_enc")
    with pytest.raises(ArtifactError, match=r"\['W_enc'\]; found \[.*'w_enc'.*\]; expected"):
        load_sae(write_npz(tmp_path / "params.npz", arrays))


def test_gemma_scope_2_uppercase_keys_are_misnamed(tmp_path: Path, sae: JumpReLUSAE) -> None:
    folder = save_gemma_scope_2(sae, tmp_path / "gs2")
    save_file(
        {k: v.contiguous() for k, v in sae.state_dict().items() if k != "latent_ids"},
        str(folder / "params.safetensors"),
    )
    with pytest.raises(ArtifactError, match=r"missing tensor\(s\) \['w_enc', 'w_dec'\]"):
        load_sae(folder)


@pytest.mark.parametrize(
    ("name", "shape", "match"),
    [
        ("W_dec", (D_SAE, D_MODEL + 1), "'W_dec' has shape"),
        ("W_enc", (D_MODEL, D_SAE - 1), "'W_enc' has shape"),
        ("threshold", (D_SAE + 2,), "'threshold' has 18 entries"),
        ("b_dec", (D_MODEL, 1), "'b_dec' is 2-D"),
    ],
)
def test_shape_mismatch_between_tensors(
    tmp_path: Path, sae: JumpReLUSAE, name: str, shape: tuple[int, ...], match: str
) -> None:
    arrays = npz_arrays(sae)
    arrays[name] = np.zeros(shape, dtype=np.float32)
    with pytest.raises(ArtifactError, match=match):
        load_sae(write_npz(tmp_path / "params.npz", arrays))


def test_d_model_mismatch_with_expected(written: dict[SAEFormat, Path]) -> None:
    for path in written.values():
        with pytest.raises(ArtifactError, match="d_model=8 but the model site has d_model=2304"):
            load_sae(path, expected_d_model=2304)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_refused(tmp_path: Path, sae: JumpReLUSAE, bad: float) -> None:
    arrays = npz_arrays(sae)
    arrays["b_enc"][3] = bad
    with pytest.raises(ArtifactError, match="'b_enc' has 1 non-finite"):
        load_sae(write_npz(tmp_path / "params.npz", arrays))


def test_unknown_layout_names_path_and_layouts(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\x00")
    with pytest.raises(ArtifactError, match="unknown SAE layout") as err:
        load_sae(tmp_path)
    text = str(err.value)
    assert str(tmp_path) in text
    assert "params.npz" in text
    assert "sae_weights.safetensors" in text
    with pytest.raises(ArtifactError, match="does not exist"):
        load_sae(tmp_path / "nowhere")
    with pytest.raises(ArtifactError, match="cannot read an SAE from the file"):
        load_sae(tmp_path / "weights.bin")


def test_incomplete_saelens_folder(tmp_path: Path, sae: JumpReLUSAE) -> None:
    folder = save_saelens(sae, tmp_path / "sl")
    (folder / "sae_weights.safetensors").unlink()
    with pytest.raises(ArtifactError, match=r"'sae_weights\.safetensors' is missing"):
        load_sae(folder)


def test_pickle_npz_refused(tmp_path: Path, sae: JumpReLUSAE) -> None:
    arrays: dict[str, np.ndarray] = npz_arrays(sae)
    arrays["W_enc"] = np.array([{"payload": 1}], dtype=object)
    path = tmp_path / "params.npz"
    np.savez(path, **arrays)  # object arrays are pickled by numpy
    with pytest.raises(ArtifactError, match="'W_enc' cannot be read without pickle"):
        load_sae(path)


def test_corrupt_files_refused(tmp_path: Path, sae: JumpReLUSAE) -> None:
    (tmp_path / "params.npz").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="cannot read"):
        load_sae(tmp_path / "params.npz")
    folder = save_gemma_scope_2(sae, tmp_path / "gs2")
    (folder / "params.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(ArtifactError, match="as safetensors"):
        load_sae(folder)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"architecture": "standard"}, "architecture 'standard'"),
        ({"apply_b_dec_to_input": True}, "apply_b_dec_to_input"),
        ({"d_sae": 32}, "declares d_sae=32"),
    ],
)
def test_saelens_cfg_checks(tmp_path: Path, sae: JumpReLUSAE, change: dict, match: str) -> None:
    folder = save_saelens(sae, tmp_path / "sl")
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg.update(change)
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ArtifactError, match=match):
        load_sae(folder)


def test_gemma_scope_2_transcoder_refused(tmp_path: Path, sae: JumpReLUSAE) -> None:
    folder = save_gemma_scope_2(sae, tmp_path / "gs2")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["hf_hook_point_out"] = "model.layers.3.post_feedforward_layernorm.output"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ArtifactError, match="transcoder"):
        load_sae(folder)


def test_load_casts_dtype_after_checks(written: dict[SAEFormat, Path]) -> None:
    sae16 = load_sae(written[SAEFormat.GEMMA_SCOPE], dtype=torch.bfloat16)
    assert sae16.dtype == torch.bfloat16
    assert sae16.encode(random_inputs(4)).dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="floating"):
        load_sae(written[SAEFormat.GEMMA_SCOPE], dtype=torch.int64)
