"""``scope-guard calibrate``: fit calibrated detectors on labeled data and save a bundle."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scope_guard.cli.console import emit_json, note, out
from scope_guard.cli.inputs import add_reader_arguments, open_reader, open_saes
from scope_guard.cli.ray_flags import add_ray_arguments, ray_options
from scope_guard.cli.report_output import print_summary, report_payload
from scope_guard.errors import ConfigError
from scope_guard.sites import Site

if TYPE_CHECKING:
    from calibration.data import LabeledDataset
    from calibration.ray_options import RayOptions
    from scope_guard.reader import Reader
    from scope_guard.sae import JumpReLUSAE

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "calibrate",
        help="fit calibrated detectors on labeled data and save a bundle",
        description=(
            "Holds out whole groups (source documents) for evaluation, cross-fits the probe on "
            "the rest, calibrates on the out-of-fold scores, picks the threshold, and writes a "
            "bundle plus a report. With --sae, an SAE probe and a raw-activation baseline are "
            "fitted on the same rows; with --grounding-only, no model weights are needed."
        ),
    )
    p.add_argument("data", help="labeled data: a file or folder in --format")
    p.add_argument("--format", default="jsonl", help="jsonl, ragtruth, halueval-qa, summedits, ...")
    p.add_argument("--risk", required=True, help="fabrication, sycophancy or deception")
    p.add_argument(
        "--out",
        required=True,
        help="bundle folder to write: new, empty, or an earlier bundle (which is replaced)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty --out that is not a bundle (files of the same names are "
        "replaced; nothing else is removed)",
    )
    p.add_argument("--report", help="report folder (default: OUT/report)")
    add_reader_arguments(p)
    p.add_argument("--sae", action="append", default=[], help="[SITE=]SOURCE; repeatable")
    p.add_argument(
        "--raw-site",
        action="append",
        default=[],
        help="without --sae: fit a raw-activation probe at this site (resid_post@9); repeatable",
    )
    p.add_argument(
        "--token-site",
        action="append",
        default=[],
        help="a token-level probe at this site, trained on the data's labeled spans; repeatable",
    )
    p.add_argument(
        "--lookback",
        action="store_true",
        help="add the lookback ratios of every head up to the deepest site (attention to the "
        "context against the answer so far)",
    )
    p.add_argument(
        "--surprisal",
        action="store_true",
        help="add the reader's surprisal and next-token entropy of each response token, pooled "
        "(runs every layer and the LM head: about 2.5x the reader's time)",
    )
    p.add_argument(
        "--grounding-only", action="store_true", help="no reader: grounding features only"
    )
    p.add_argument(
        "--grounding",
        choices=["auto", "yes", "no"],
        default="auto",
        help="add grounding features (auto: for fabrication)",
    )
    p.add_argument("--penalty", choices=["l1", "l2"], default="l1")
    p.add_argument("--C", type=float, default=None, help="fixed C (default: chosen by group CV)")
    p.add_argument(
        "--no-nested-c",
        dest="nested_c",
        action="store_false",
        help="cross-fitted probes reuse the final probe's C instead of choosing their own "
        "(about 5x faster to fit; C is then chosen on rows whose out-of-fold scores fit the "
        "calibration map)",
    )
    p.add_argument(
        "--calibration", choices=["auto", "sigmoid", "isotonic", "temperature"], default="auto"
    )
    p.add_argument("--threshold-rule", choices=["f1", "fpr", "precision"], default="f1")
    p.add_argument("--target", type=float, help="target FPR or precision of the threshold rule")
    p.add_argument("--test-size", type=float, default=0.25, help="fraction of groups held out")
    p.add_argument(
        "--evaluation",
        choices=["holdout", "cv"],
        default="holdout",
        help="holdout: report on held-out groups; cv: every group held out once (outer "
        "grouped folds), bundle fitted on all rows",
    )
    p.add_argument("--outer-folds", type=int, default=5, help="outer folds of --evaluation cv")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--breakdown", help="meta field for per-value metrics (default: auto)")
    p.add_argument(
        "--examples",
        type=int,
        default=3,
        help="held-out responses the report shows with their per-token risk (their text is "
        "copied into the report; 0: none)",
    )
    p.add_argument("--limit", type=int, help="use only the first N examples")
    p.add_argument("--cache-dir", help="feature cache (default: ~/.cache/scope_guard/features)")
    add_ray_arguments(p)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from calibration.adapters import load_dataset
    from calibration.pipeline import CalibrationSettings, calibrate
    from calibration.report import write_report
    from scope_guard.reader.miniature import default_cache_root
    from scope_guard.risks import Risk

    risk = Risk.parse(args.risk)
    settings = CalibrationSettings(
        risk=risk,
        penalty=args.penalty,
        C=args.C,
        nested_c=args.nested_c,
        calibration=args.calibration,
        threshold_rule=args.threshold_rule,
        threshold_target=args.target,
        test_size=args.test_size,
        n_splits=args.folds,
        random_state=args.seed,
        n_bootstrap=args.bootstrap,
        breakdown=args.breakdown,
        evaluation=args.evaluation,
        n_outer=args.outer_folds,
        examples=args.examples,
    )
    reader_blocks = bool(args.token_site or args.lookback or args.surprisal)
    if args.grounding_only and (args.reader or args.sae or args.raw_site or reader_blocks):
        msg = (
            "--grounding-only excludes --reader, --sae, --raw-site, --token-site, --lookback "
            "and --surprisal"
        )
        raise ConfigError(msg)
    if args.sae and args.raw_site:
        msg = "--raw-site is for a reader without an SAE; with --sae the raw baseline is fitted"
        raise ConfigError(msg)
    if not args.grounding_only and not args.reader:
        msg = "give --reader (and --sae), or --grounding-only"
        raise ConfigError(msg)
    on_ray = ray_options(args)
    if on_ray is not None and args.grounding_only:
        msg = "--ray runs the reader: --grounding-only reads with none"
        raise ConfigError(msg)
    _check_out(Path(args.out), overwrite=args.overwrite)
    use_grounding = (
        args.grounding_only
        or args.grounding == "yes"
        or (args.grounding == "auto" and risk is Risk.FABRICATION)
    )
    dataset = load_dataset(args.data, args.format, limit=args.limit)
    note(f"loaded {len(dataset)} examples from {args.data} ({args.format})")
    reader, saes = None, {}
    raw_sites = [Site.parse(s) for s in args.raw_site]
    token_sites = [Site.parse(s) for s in args.token_site]
    if not args.grounding_only:
        with_sae = args.sae or not (raw_sites or reader_blocks)
        saes = open_saes(args.sae, reader_source=args.reader) if with_sae and not raw_sites else {}
        sites = list(dict.fromkeys([*(list(saes) or raw_sites), *token_sites]))
        if not sites:  # a reader needs a site (lookback reads up to the deepest one)
            flags = [f for f in ("--lookback", "--surprisal") if getattr(args, f[2:])]
            what = " and ".join(flags) if flags else "the reader"
            verb = "need" if len(flags) > 1 else "needs"
            msg = f"{what} {verb} a site to read: give --token-site, --raw-site or --sae"
            raise ConfigError(msg)
        reader = open_reader(
            args.reader,
            sites,
            dtype=args.dtype,
            device=args.device,
            max_tokens=args.max_tokens,
            batch_size=args.batch_size,
            lookback=args.lookback,
            surprisal=args.surprisal,
        )
        for site, sae in saes.items():
            if sae.d_model != reader.site_dim(site):
                width = reader.site_dim(site)
                msg = f"SAE at {site} reads width {sae.d_model}; the reader gives {width}"
                raise ConfigError(msg)
    grounding = None
    if use_grounding:
        from detectors.grounding import GroundingDetector

        grounding = GroundingDetector()
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_root() / "features"
    if on_ray is not None and reader is not None:
        _extract_on_ray(
            dataset.with_label(risk), reader, saes, raw_sites, token_sites, cache, on_ray, args
        )
    result = calibrate(
        dataset,
        settings,
        reader=reader,
        saes=saes,
        raw_sites=raw_sites,
        grounding=grounding,
        cache_dir=cache,
        progress=not args.no_progress,
        lookback=args.lookback,
        token_sites=token_sites,
        surprisal=args.surprisal,
    )
    bundle_dir = result.bundle.save(args.out)
    paths = write_report(result.report, args.report or Path(args.out) / "report")
    if args.json:
        emit_json(
            report_payload(result.report, bundle=str(bundle_dir), report_html=str(paths.html))
        )
        return 0
    print_summary(result.report)
    out(f"\nbundle: {bundle_dir}")
    out(f"report: {paths.markdown} and {paths.html}")
    return 0


def _extract_on_ray(
    dataset: LabeledDataset,
    reader: Reader,
    saes: dict[Site, JumpReLUSAE],
    raw_sites: list[Site],
    token_sites: list[Site],
    cache: Path,
    options: RayOptions,
    args: argparse.Namespace,
) -> None:
    """Fill the feature cache with the rows ``calibrate`` will read, on a Ray actor pool; the
    pipeline then finds them cached (same namespaces, same arguments as its own extraction)."""
    from calibration.extract import extract_features
    from calibration.ray_extract import RayRunner
    from calibration.ray_options import ray_session

    with ray_session(options):
        got = extract_features(
            dataset,
            reader=reader,
            saes=saes,
            raw_sites=list(saes) or list(dict.fromkeys(raw_sites)),
            cache_dir=cache,
            progress=not args.no_progress,
            runner=RayRunner(options),
            token_sites=token_sites,
            lookback=args.lookback,
            surprisal=args.surprisal,
        )
    note(
        f"ray: {got.n_computed} of {len(dataset)} rows read by a pool of {options.actors} actor(s)"
    )


def _check_out(folder: Path, *, overwrite: bool) -> None:
    """Refuse, before any work, an ``--out`` that would mix the bundle into unrelated files."""
    from detectors.bundle import MANIFEST

    if folder.exists() and not folder.is_dir():
        msg = f"--out {folder} is a file, not a folder"
        raise ConfigError(msg)
    if not folder.is_dir() or overwrite or (folder / MANIFEST).is_file():
        return
    if next(folder.iterdir(), None) is not None:
        msg = (
            f"--out {folder} is a non-empty folder and not a bundle (no {MANIFEST}): "
            "choose a new or empty folder, or pass --overwrite to write into it anyway"
        )
        raise ConfigError(msg)
