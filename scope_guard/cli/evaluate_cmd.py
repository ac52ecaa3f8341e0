"""``scope-guard evaluate``: score a bundle's detectors on labeled data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scope_guard.cli.console import emit_json, note, out
from scope_guard.cli.inputs import open_bundle_reader
from scope_guard.cli.report_output import print_summary, report_payload

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a bundle's detectors on labeled data",
        description="Scores every detector of a bundle on the rows labeled for its risk and "
        "reports AUROC, AUPRC, F1, ECE, Brier and TPR at 1%/5% FPR with bootstrap intervals.",
    )
    p.add_argument("data", help="labeled data: a file or folder in --format")
    p.add_argument("--bundle", required=True, help="a bundle folder written by calibrate")
    p.add_argument("--format", default="jsonl")
    p.add_argument("--reader", help="override the reader's location (default: the bundle's)")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--report", help="write the Markdown/HTML report to this folder")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--breakdown", help="meta field for per-value metrics (default: auto)")
    p.add_argument("--limit", type=int)
    p.add_argument("--cache-dir")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from calibration.adapters import load_dataset
    from calibration.evaluation import evaluate
    from detectors.bundle import DetectorBundle
    from scope_guard.reader.miniature import default_cache_root

    bundle = DetectorBundle.load(args.bundle)
    reader = open_bundle_reader(bundle, args)
    if reader is not None:
        bundle.check_reader(reader)
    grounding = None
    if any(d.needs_grounding for d in bundle.detectors.values()):
        from detectors.grounding import GroundingDetector

        grounding = GroundingDetector()
    dataset = load_dataset(args.data, args.format, limit=args.limit)
    note(f"loaded {len(dataset)} examples from {args.data} ({args.format})")
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_root() / "features"
    report = evaluate(
        bundle,
        dataset,
        reader=reader,
        grounding=grounding,
        cache_dir=cache,
        n_bootstrap=args.bootstrap,
        breakdown=args.breakdown,
        progress=not args.no_progress,
    )
    html = None
    if args.report:
        from calibration.report import write_report

        html = str(write_report(report, args.report).html)
    if args.json:
        emit_json(report_payload(report, bundle=str(args.bundle), report_html=html))
        return 0
    print_summary(report)
    if html:
        out(f"\nreport: {html}")
    return 0
