"""The demo's detector bundle: calibrated once on the built-in training examples, then cached.

With the stand-in reader the SAE probes are fitted on a random-weight model (meaningless by
design, shown for the workflow); the grounding features in the fabrication detector are real.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from scope_guard.cli.console import note

if TYPE_CHECKING:
    from scope_guard.reader import Reader
    from scope_guard.sae import JumpReLUSAE
    from scope_guard.sites import Site

__all__ = ["build_demo_bundle"]


def build_demo_bundle(
    folder: Path, reader: Reader, saes: dict[Site, JumpReLUSAE], *, rebuild: bool = False
) -> Path:
    """Calibrate fabrication (SAE + grounding; grounding only with the stand-in reader) and
    sycophancy (SAE) detectors for the demo."""
    from calibration import CalibrationSettings, calibrate
    from calibration.data import LabeledDataset, LabeledExample
    from detectors.bundle import DetectorBundle
    from detectors.grounding import GroundingDetector
    from scope_guard.demo_data import demo_training_examples

    marker = folder / "manifest.json"
    if marker.is_file() and not rebuild:
        spec = json.loads(marker.read_text(encoding="utf-8")).get("reader") or {}
        layer = spec.get("fingerprint_layer")
        if isinstance(layer, int) and spec.get("fingerprint") == reader.fingerprint_upto(layer):
            return folder
    note("calibrating the demo detectors on built-in examples (once; cached) ...")
    examples = tuple(LabeledExample.model_validate(r) for r in demo_training_examples())
    dataset = LabeledDataset(examples, source="scope-guard demo", format="jsonl")
    detectors = []
    # With the stand-in, fabrication rests on the (real) grounding features alone: random-model
    # SAE codes would only dilute them. Sycophancy has no other signal than the reader.
    fabrication_saes = {} if reader.is_stand_in else saes
    plan = (
        ("fabrication", fabrication_saes, GroundingDetector()),
        ("sycophancy", saes, None),
    )
    for risk, risk_saes, grounding in plan:
        settings = CalibrationSettings(risk=risk, n_bootstrap=100, n_splits=3)
        result = calibrate(
            dataset, settings, reader=reader, saes=risk_saes, grounding=grounding, progress=False
        )
        detectors.extend(result.bundle.detectors.values())
    bundle = DetectorBundle(
        detectors,
        reader=DetectorBundle.reader_spec(reader, detectors),
        saes=[DetectorBundle.sae_spec(sae, site) for site, sae in saes.items()],
        training={"source": "scope-guard demo examples", "n": len(dataset)},
    )
    return bundle.save(folder)
