"""Hostile detector bundles: every file below is one a downloaded bundle could hold.

Each case is a bundle an attacker can write: the manifest's own ``manifest_sha256`` and the
listed file hashes are recomputed after the edit, as anyone can, so the checks under test are
the ones that do not rely on the hashes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from miniature_sae import miniature_sae
from safetensors.torch import load_file, save_file

from detectors.bundle import DetectorBundle
from detectors.bundle_manifest import manifest_digest
from detectors.calibration_map import CalibrationMap
from detectors.feature_blocks import BlockKind, FeatureBlock
from detectors.probe import ProbeDetector
from scope_guard.errors import ArtifactError
from scope_guard.reader import Reader
from scope_guard.sae.jumprelu import JumpReLUSAE
from scope_guard.sites import Site

SITE = Site.parse("resid_post@3")
LATENTS = [7, 2, 40, 13]
TENSORS = "tensors.safetensors"
MANIFEST = "manifest.json"


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader.miniature([SITE])


@pytest.fixture(scope="module")
def sae() -> JumpReLUSAE:
    return miniature_sae(SITE)


@pytest.fixture
def bundle_dir(tmp_path: Path, reader: Reader, sae: JumpReLUSAE) -> Path:
    """A valid bundle at ``tmp_path / "bundle"``; ``tmp_path`` also holds outside files."""
    det = ProbeDetector(
        name="fabrication",
        risk="fabrication",
        blocks=[FeatureBlock(kind=BlockKind.SAE, site=str(SITE), latent_ids=LATENTS)],
        coef=np.array([0.5, -0.25, 0.0, 1.0, 0.1, 0.2, -0.3, 0.0]),
        intercept=-1.0,
        calibration=CalibrationMap(method="sigmoid", a=0.8, b=0.1),
        threshold=0.5,
        saes={SITE: sae.narrow(LATENTS)},
    )
    bundle = DetectorBundle(
        [det],
        reader=DetectorBundle.reader_spec(reader, [det]),
        saes=[DetectorBundle.sae_spec(sae, SITE)],
    )
    return bundle.save(tmp_path / "bundle")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def edit_manifest(folder: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    """Apply ``change`` to the manifest and re-sign it as an attacker would."""
    path = folder / MANIFEST
    data = json.loads(path.read_text())
    change(data)
    data["manifest_sha256"] = manifest_digest(data)
    path.write_text(json.dumps(data))


def edit_tensors(folder: Path, change: Callable[[dict[str, torch.Tensor]], Any]) -> None:
    """Rewrite the tensor file and its listed hash."""
    tensors = load_file(str(folder / TENSORS))
    change(tensors)
    save_file(tensors, str(folder / TENSORS))
    digest = sha(folder / TENSORS)
    edit_manifest(folder, lambda m: m["files"].update({TENSORS: digest}))


def refused(folder: Path, match: str, name: str = MANIFEST) -> ArtifactError:
    """Loading ``folder`` must raise an ArtifactError matching ``match`` and naming ``name``."""
    with pytest.raises(ArtifactError, match=match) as err:
        DetectorBundle.load(folder)
    assert name in str(err.value)
    return err.value


def det0(m: dict[str, Any]) -> dict[str, Any]:
    return m["detectors"][0]


def test_the_fixture_bundle_loads(bundle_dir: Path) -> None:
    assert DetectorBundle.load(bundle_dir)["fabrication"].intercept == -1.0


# ------------------------------------------------------------------ file names and confinement
@pytest.mark.parametrize(
    "name", ["../secret.txt", "ABSOLUTE", "sub/../../secret.txt", "./../secret.txt", "a\\..\\b"]
)
def test_listed_file_outside_the_folder_is_refused_before_opening(
    bundle_dir: Path, name: str
) -> None:
    secret = bundle_dir.parent / "secret.txt"
    secret.write_text("api-key=hunter2\n")
    name = str(secret) if name == "ABSOLUTE" else name
    edit_manifest(bundle_dir, lambda m: m["files"].update({name: sha(secret)}))
    error = refused(bundle_dir, "only relative names|not allowed")
    assert sha(secret)[:12] not in str(error)


def test_etc_hostname_with_its_hash_is_refused(bundle_dir: Path) -> None:
    target = Path("/etc/hostname")
    if not target.is_file():
        pytest.skip("no /etc/hostname here")
    digest = sha(target)
    edit_manifest(bundle_dir, lambda m: m["files"].update({str(target): digest}))
    refused(bundle_dir, "only relative names")


def test_tensor_file_symlinked_out_of_the_folder_is_refused(bundle_dir: Path) -> None:
    outside = bundle_dir.parent / "elsewhere.safetensors"
    (bundle_dir / TENSORS).rename(outside)
    (bundle_dir / TENSORS).symlink_to(outside)  # same bytes, same hash: only the link is wrong
    refused(bundle_dir, "resolves outside its folder", TENSORS)


def test_manifest_symlinked_out_of_the_folder_is_refused(bundle_dir: Path) -> None:
    outside = bundle_dir.parent / "other-manifest.json"
    (bundle_dir / MANIFEST).rename(outside)
    (bundle_dir / MANIFEST).symlink_to(outside)
    refused(bundle_dir, "resolves outside its folder")


def test_a_symlink_inside_the_folder_is_followed(bundle_dir: Path) -> None:
    (bundle_dir / TENSORS).rename(bundle_dir / "real.safetensors")
    (bundle_dir / TENSORS).symlink_to("real.safetensors")
    assert DetectorBundle.load(bundle_dir).detectors


def test_hash_mismatch_names_the_file_but_not_its_actual_hash(bundle_dir: Path) -> None:
    actual = sha(bundle_dir / TENSORS)
    edit_manifest(bundle_dir, lambda m: m["files"].update({TENSORS: "0" * 64}))
    error = refused(bundle_dir, "was altered", TENSORS)
    assert actual[:8] not in str(error)


def test_a_hash_that_is_not_hex_is_refused(bundle_dir: Path) -> None:
    edit_manifest(bundle_dir, lambda m: m["files"].update({TENSORS: "../../x"}))
    refused(bundle_dir, "not 64 hex digits")


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_tensor_file_that_is_not_a_regular_file(bundle_dir: Path, kind: str) -> None:
    (bundle_dir / TENSORS).unlink()
    if kind == "fifo":
        os.mkfifo(bundle_dir / TENSORS)  # opening it would block forever
    else:
        (bundle_dir / TENSORS).mkdir()
    refused(bundle_dir, "missing|expected a regular file", TENSORS)


def test_manifest_that_is_a_fifo_does_not_block(bundle_dir: Path) -> None:
    (bundle_dir / MANIFEST).unlink()
    os.mkfifo(bundle_dir / MANIFEST)
    refused(bundle_dir, "no manifest|a FIFO")


# ------------------------------------------------------------------ JSON shape and bounds
def test_deeply_nested_manifest_is_an_artifact_error(bundle_dir: Path) -> None:
    text = (bundle_dir / MANIFEST).read_text()
    deep = "[" * 100_000 + "]" * 100_000
    (bundle_dir / MANIFEST).write_text(text[:-1] + f', "training": {{"x": {deep}}}}}')
    refused(bundle_dir, "nests JSON")


def test_moderately_nested_training_info_is_refused(bundle_dir: Path) -> None:
    nested: Any = 1
    for _ in range(200):
        nested = {"k": nested}
    edit_manifest(bundle_dir, lambda m: m.update(training={"x": nested}))
    refused(bundle_dir, "nests JSON")


def test_manifest_with_duplicate_keys_is_refused(bundle_dir: Path) -> None:
    text = (bundle_dir / MANIFEST).read_text()
    # JSON parsers disagree on which copy wins; the loader must not pick one silently.
    (bundle_dir / MANIFEST).write_text('{"schema_version": 1, ' + text.lstrip()[1:])
    refused(bundle_dir, "duplicate key")


def test_manifest_over_the_size_limit_is_refused(bundle_dir: Path) -> None:
    edit_manifest(bundle_dir, lambda m: m.update(training={"blob": "x" * (17 * 1024 * 1024)}))
    refused(bundle_dir, "more than the")


@pytest.mark.parametrize(
    "text", ["[1, 2, 3]", '"a string"', "\xff\xfe{}", "{not json", '{"schema_version": 1'], ids=str
)
def test_manifest_that_is_not_a_json_object(bundle_dir: Path, text: str) -> None:
    (bundle_dir / MANIFEST).write_bytes(text.encode("latin-1"))
    refused(bundle_dir, "JSON|UTF-8")


def test_a_5000_digit_number_is_an_artifact_error(bundle_dir: Path) -> None:
    text = (bundle_dir / MANIFEST).read_text()
    (bundle_dir / MANIFEST).write_text(text[:-1] + ', "huge": ' + "9" * 5000 + "}")
    refused(bundle_dir, "not valid JSON")


# ------------------------------------------------------------------ non-finite numbers
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("field", ["intercept", "threshold"])
def test_non_finite_intercept_or_threshold_is_refused(
    bundle_dir: Path, field: str, value: float
) -> None:
    edit_manifest(bundle_dir, lambda m: det0(m).update({field: value}))
    refused(bundle_dir, "finite|inf|nan")


def test_json_number_overflowing_to_inf_is_refused(bundle_dir: Path) -> None:
    edit_manifest(bundle_dir, lambda m: det0(m).update(intercept="PLACEHOLDER"))
    path = bundle_dir / MANIFEST
    data = json.loads(path.read_text().replace('"PLACEHOLDER"', "1e999"))
    data["manifest_sha256"] = manifest_digest(data)
    path.write_text(json.dumps(data).replace("Infinity", "1e999"))
    refused(bundle_dir, "finite")


@pytest.mark.parametrize(
    "calibration",
    [
        {"method": "sigmoid", "a": float("nan"), "b": 0.0},
        {"method": "isotonic", "x": [0.0, float("nan")], "y": [0.1, 0.9]},
        {"method": "temperature", "temperature": float("inf")},
    ],
)
def test_non_finite_calibration_map_is_refused(bundle_dir: Path, calibration: dict) -> None:
    edit_manifest(bundle_dir, lambda m: det0(m).update(calibration=calibration))
    refused(bundle_dir, "finite")


@pytest.mark.parametrize("name", ["coef", "resid_post@3.W_enc", "resid_post@3.b_enc"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_tensor_values_are_refused(bundle_dir: Path, name: str, value: float) -> None:
    def poison(t: dict[str, torch.Tensor]) -> None:
        t[f"fabrication.{name}"] = t[f"fabrication.{name}"].clone()
        t[f"fabrication.{name}"].view(-1)[0] = value

    edit_tensors(bundle_dir, poison)
    refused(bundle_dir, "non-finite", name)


@pytest.mark.parametrize("name", ["W_dec", "b_dec", "threshold"])
def test_non_finite_sae_rows_kept_for_decoding_are_refused(bundle_dir: Path, name: str) -> None:
    def poison(t: dict[str, torch.Tensor]) -> None:
        key = f"fabrication.resid_post@3.{name}"
        t[key] = torch.full_like(t[key], float("nan"))

    edit_tensors(bundle_dir, poison)
    refused(bundle_dir, "non-finite", name)


# ------------------------------------------------------------------ tensor dtypes and shapes
def test_bfloat16_coefficients_load_as_their_values(bundle_dir: Path) -> None:
    original = load_file(str(bundle_dir / TENSORS))["fabrication.coef"]
    edit_tensors(bundle_dir, lambda t: t.update({"fabrication.coef": original.bfloat16()}))
    coef = DetectorBundle.load(bundle_dir)["fabrication"].coef
    np.testing.assert_array_equal(coef, original.bfloat16().double().numpy())


@pytest.mark.parametrize(
    "dtype", [torch.int32, torch.bool, torch.complex64, torch.float8_e4m3fn], ids=str
)
def test_coefficients_of_a_non_float_dtype_are_refused(bundle_dir: Path, dtype) -> None:
    edit_tensors(bundle_dir, lambda t: t.update({"fabrication.coef": torch.zeros(8, dtype=dtype)}))
    refused(bundle_dir, "dtype", "fabrication.coef")


def test_float64_coefficients_are_accepted(bundle_dir: Path) -> None:
    edit_tensors(
        bundle_dir, lambda t: t.update({"fabrication.coef": t["fabrication.coef"].double()})
    )
    assert DetectorBundle.load(bundle_dir)["fabrication"].coef.dtype == np.float64


def test_coefficients_of_the_wrong_rank_are_refused(bundle_dir: Path) -> None:
    edit_tensors(bundle_dir, lambda t: t.update({"fabrication.coef": t["fabrication.coef"][None]}))
    refused(bundle_dir, "2-D", "fabrication.coef")


def test_sae_tensor_of_the_wrong_shape_is_refused(bundle_dir: Path) -> None:
    edit_tensors(
        bundle_dir, lambda t: t.update({"fabrication.resid_post@3.W_enc": torch.zeros(64, 5)})
    )
    refused(bundle_dir, "shape", "bundle")


def test_sae_tensor_in_float8_is_refused(bundle_dir: Path) -> None:
    key = "fabrication.resid_post@3.W_enc"
    edit_tensors(bundle_dir, lambda t: t.update({key: t[key].to(torch.float8_e4m3fn)}))
    refused(bundle_dir, "dtype", key)


def test_tensor_file_with_a_huge_declared_header(bundle_dir: Path) -> None:
    path = bundle_dir / TENSORS
    path.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    digest = sha(path)
    edit_manifest(bundle_dir, lambda m: m["files"].update({TENSORS: digest}))
    refused(bundle_dir, "not a valid safetensors", TENSORS)


# ------------------------------------------------------------------ manifest values
@pytest.mark.parametrize("latent", [2**70, 48, -1])
def test_latent_ids_outside_the_sae_are_refused(bundle_dir: Path, latent: int) -> None:
    edit_manifest(bundle_dir, lambda m: det0(m)["blocks"][0].update(latent_ids=[7, 2, 40, latent]))
    refused(bundle_dir, "latent ids|outside|>= 0|int64|valid")


@pytest.mark.parametrize("value", [0, -48])
def test_non_positive_sae_width_is_refused(bundle_dir: Path, value: int) -> None:
    edit_manifest(bundle_dir, lambda m: m["saes"][0].update(d_sae=value))
    refused(bundle_dir, "greater than 0")


def test_unknown_risk_is_an_artifact_error(bundle_dir: Path) -> None:
    edit_manifest(bundle_dir, lambda m: det0(m).update(risk="world-domination"))
    refused(bundle_dir, "inconsistent", "bundle")


def test_two_detectors_with_one_name_are_an_artifact_error(bundle_dir: Path) -> None:
    edit_manifest(bundle_dir, lambda m: m["detectors"].append(m["detectors"][0]))
    refused(bundle_dir, "two detectors", "bundle")


def test_unknown_prompt_mode_is_refused_at_load(bundle_dir: Path) -> None:
    edit_manifest(bundle_dir, lambda m: m.update(training={"prompt_mode": "rm -rf"}))
    refused(bundle_dir, "prompt_mode")


def test_fingerprint_layer_outside_the_reader_spec_is_refused(bundle_dir: Path) -> None:
    edit_manifest(bundle_dir, lambda m: m["reader"].update(fingerprint_layer=10**6))
    refused(bundle_dir, "not a layer of")


def test_fingerprint_layer_deeper_than_the_reader_loads(bundle_dir: Path, reader: Reader) -> None:
    edit_manifest(bundle_dir, lambda m: m["reader"].update(fingerprint_layer=40, n_layers=99))
    with pytest.raises(ArtifactError, match="up to layer 40"):
        DetectorBundle.load(bundle_dir, reader=reader)
