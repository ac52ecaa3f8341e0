"""Calibrate detectors on your own labeled data, read the report, and use the bundle.

Runs offline in about a minute: it writes a small labeled JSONL file (made-up data in the
project's own format), calibrates

  1. a grounding-only fabrication detector (no model weights at all), and
  2. an SAE probe beside a raw-activation baseline, on the built-in miniature stand-in reader
     (random weights: shown for the workflow, its SAE scores mean nothing),

evaluates the first bundle on the whole file, and scores one new answer with it.

    python examples/calibrate_detectors.py [--out DIR]

With real weights, point ``reader`` at a Gemma 2 checkpoint and ``saes`` at Gemma Scope SAEs
(for example ``gemma-scope-2b-pt-res/layer_20/width_16k/canonical``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from calibration import CalibrationSettings, calibrate, evaluate, load_dataset, write_report
from calibration.adapters.jsonl import write_jsonl
from calibration.data import LabeledExample
from detectors.bundle import DetectorBundle
from detectors.grounding import GroundingDetector
from scope_guard import Reader, load_sae
from scope_guard.demo_data import demo_training_examples
from scope_guard.stand_in import miniature_sae_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="sg-calib-")))
    args = parser.parse_args()
    out: Path = args.out

    # 1. Labeled data in the project's JSONL format (any adapter works: --format ragtruth, ...).
    rows = [r for r in demo_training_examples(n_sources=40) if "fabrication" in r["labels"]]
    data_file = write_jsonl((LabeledExample.model_validate(r) for r in rows), out / "data.jsonl")
    dataset = load_dataset(data_file, "jsonl")
    print(f"{len(dataset)} labeled examples, balance: {dataset.class_balance()['fabrication']}")

    # 2. Grounding-only: no reader, no weights.
    settings = CalibrationSettings(risk="fabrication", n_bootstrap=200, n_splits=3)
    result = calibrate(dataset, settings, grounding=GroundingDetector(), progress=False)
    bundle_dir = result.bundle.save(out / "grounding-bundle")
    paths = write_report(result.report, out / "grounding-report")
    (ev,) = result.report.evaluations
    print(
        f"grounding-only, held-out groups: AUROC {ev.metrics.auroc.value:.3f} "
        f"[{ev.metrics.auroc.low:.3f}, {ev.metrics.auroc.high:.3f}], "
        f"ECE {ev.metrics.ece.value:.3f}, threshold {ev.metrics.threshold:.3f}"
    )
    print(f"  bundle: {bundle_dir}\n  report: {paths.html}")

    # 3. SAE probe beside the raw-activation baseline, on the stand-in reader.
    reader = Reader.miniature(["resid_post@3"])
    sae = load_sae(miniature_sae_path())
    small = dataset.subset(range(96))
    result = calibrate(small, settings, reader=reader, saes={"resid_post@3": sae}, progress=False)
    for ev in result.report.evaluations:
        print(
            f"{ev.detector:16s} ({ev.kind}): AUROC {ev.metrics.auroc.value:.3f}, "
            f"{ev.n_selected} nonzero weights  [stand-in reader: meaningless]"
        )

    # 4. Evaluate a saved bundle on data (here: the whole file) and score one new answer.
    bundle = DetectorBundle.load(bundle_dir)
    report = evaluate(
        bundle, dataset, grounding=GroundingDetector(), n_bootstrap=100, progress=False
    )
    print(
        f"bundle on all {report.evaluations[0].metrics.n} rows: "
        f"AUROC {report.evaluations[0].metrics.auroc.value:.3f}"
    )
    detector = bundle["fabrication"]
    check = GroundingDetector().check(
        "The museum of Brisk was designed by Piet Rook in 1921 for 40 million dollars.",
        ["The museum of Brisk was designed by Ada Brenner and opened in 1950."],
    )
    score = detector.score(grounding=check)
    print(f"new answer: P(fabrication) = {score.probability:.2f}, flagged = {score.flagged}")


if __name__ == "__main__":
    main()
