"""The demo's detector bundle: calibrated once on the built-in training examples, then cached.

With the real reader the probes read its activations: SAE probes when an SAE is given, else
raw-activation probes at the demo's site, over the grounding features for fabrication. With
the stand-in reader the probes are fitted on a random-weight model (meaningless by design,
shown for the workflow); the grounding features in the fabrication detector are real.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from scope_guard.cli.console import note

if TYPE_CHECKING:
    from scope_guard.reader import Reader
    from scope_guard.sae import JumpReLUSAE
    from scope_guard.sites import Site

__all__ = ["build_demo_bundle"]


def build_demo_bundle(
    folder: Path,
    reader: Reader,
    saes: dict[Site, JumpReLUSAE],
    *,
    raw_sites: Sequence[Site] = (),
    rebuild: bool = False,
) -> Path:
    """Calibrate fabrication (reader features + grounding; grounding only with the stand-in
    reader) and sycophancy (reader features) detectors for the demo. The reader features are
    the SAE codes of ``saes``, or without SAEs the raw activations at ``raw_sites``."""
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
    fabrication_raw = () if reader.is_stand_in else raw_sites
    plan = (
        ("fabrication", fabrication_saes, fabrication_raw, GroundingDetector()),
        ("sycophancy", saes, raw_sites, None),
    )
    for risk, risk_saes, risk_raw, grounding in plan:
        settings = CalibrationSettings(risk=risk, n_bootstrap=100, n_splits=3)
        result = calibrate(
            dataset,
            settings,
            reader=reader,
            saes=risk_saes,
            raw_sites=risk_raw,
            grounding=grounding,
            # Shared by both risks: the sycophancy rows' activations are read once, not twice.
            cache_dir=folder.parent / "features",
            progress=False,
        )
        detectors.extend(result.bundle.detectors.values())
    bundle = DetectorBundle(
        detectors,
        reader=DetectorBundle.reader_spec(reader, detectors),
        saes=[DetectorBundle.sae_spec(sae, site) for site, sae in saes.items()],
        training={"source": "scope-guard demo examples", "n": len(dataset)},
    )
    return bundle.save(folder)
