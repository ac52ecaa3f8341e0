"""Sycophancy and deception detectors with the real Gemma 3 270M reader, measured.

For each set of :mod:`benchmarks.behaviours.sets` (fixed-seed subsamples of ``../shared/data``):

1. one reader pass through ``calibrate``'s own extraction, cached in the project's feature cache
   (resumable, with a progress bar): pooled mean+max activations and per-token ones at every
   site (:mod:`benchmarks.behaviours.features`);
2. every candidate (:mod:`benchmarks.behaviours.candidates`: raw activations per site and
   pooling, all sites side by side, the SAE's codes in the same poolings) and the trivial
   baselines (:mod:`benchmarks.behaviours.baselines`) through one nested grouped
   cross-validation (:mod:`benchmarks.behaviours.probes`): every group held out once; per
   outer fold, within each family (all, raw, raw at the SAE's site, SAE), the candidate with
   the best out-of-fold AUROC on that fold's training groups is selected, so each family's
   figure is a held-out one; smaller prefixes of a subsample are scored too where the set
   asks for a learning curve;
3. ``calibrate`` itself (the project's probe, calibration and threshold, ``evaluation="cv"``) at
   the site the sweep chose most often, its bundle written to ``--bundles`` when given, and
   transfer: each deception bundle scored on the other deception sets (``evaluate``).

Results: ``benchmarks/results/behaviours_<set>.json`` and ``behaviours_transfer.json``.

Run from the project root (17 minutes on two shared cores, 6.5 of them reading 3,572 examples):

    nice -n 5 .venv/bin/python -m benchmarks.detect_behaviours --bundles /tmp/behaviour-bundles
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from benchmarks.behaviours.baselines import baselines
from benchmarks.behaviours.candidates import (
    FAMILIES,
    SAE_PART_POOLINGS,
    Sweep,
    build_sweep,
    sae_name,
    sites_of,
)
from benchmarks.behaviours.features import POOLINGS, extract, load_features
from benchmarks.behaviours.probes import GRID, NestedResult, metrics_of, nested_cv, select
from benchmarks.behaviours.sets import SETS, BehaviourSet, curve_rows, load_set
from benchmarks.behaviours.tables import render
from calibration.data import LabeledDataset
from calibration.metrics import Metrics
from scope_guard.risks import Risk
from scope_guard.sites import Site

logger = logging.getLogger("benchmarks.detect_behaviours")

DEFAULT_SAE = "~/.cache/scope_guard/sae/gemma-3-270m-resid_post@9-4096"


def _figures(m: Metrics) -> dict[str, Any]:
    """The headline figures of one evaluation, with their group-bootstrap 95% intervals."""
    out: dict[str, Any] = {"n": m.n, "n_positive": m.n_positive, "n_groups": m.n_groups}
    for name in ("auroc", "f1", "ece", "tpr_at_1_fpr", "precision", "recall"):
        iv = getattr(m, name)
        out[name] = round(iv.value, 4)
        out[f"{name}_ci"] = [round(iv.low, 4), round(iv.high, 4)]
    out["threshold_mean"] = round(m.threshold, 4)
    return out


def _scored(result: NestedResult, name: str, y: np.ndarray, g: np.ndarray, args: Any) -> dict:
    res = result.candidates[name]
    m = metrics_of(y, res.probs, res.thresholds, g, args.n_bootstrap, args.seed)
    return {
        **_figures(m),
        "inner_auroc": [round(a, 4) for a in res.inner_auroc],
        "penalty": res.penalty,
    }


def _selections(
    result: NestedResult, families: dict[str, list[str]], y: np.ndarray, g: np.ndarray, args: Any
) -> dict[str, Any]:
    """Family -> its nested selection's per-fold choices and held-out figures."""
    out = {}
    for family in FAMILIES:
        names = families[family]
        if names:
            chosen = select(result, names)
            m = metrics_of(y, chosen.probs, chosen.thresholds, g, args.n_bootstrap, args.seed)
            out[family] = {"per_fold": chosen.per_fold, **_figures(m)}
    return out


def _sae_figures(
    sae: Any, sae_site: Site, sweep: Sweep, scored: dict[str, Any], selected: dict[str, Any]
) -> dict[str, Any]:
    """The SAE candidates beside the raw ones at the same site and pooling, and the gaps.

    Where a gap comes from: a probe on the SAE's reconstruction reads what the codes hold
    through their decoder (mean-pooled, a 640-wide linear map of the mean-pooled codes); a
    probe on its error reads what the SAE leaves out.
    """
    poolings = {}
    for pooling in POOLINGS:
        s_fig, r_fig = scored[sae_name(sae_site, pooling)], scored[f"{sae_site}/{pooling}"]
        poolings[pooling] = {
            "sae_auroc": s_fig["auroc"],
            "raw_auroc": r_fig["auroc"],
            "gap_raw_minus_sae": round(r_fig["auroc"] - s_fig["auroc"], 4),
        }
    for pooling in SAE_PART_POOLINGS:
        for part in ("reconstruction", "error"):
            poolings[pooling][f"{part}_auroc"] = scored[sae_name(sae_site, pooling, part)]["auroc"]
    sae_sel, raw_sel = selected["sae"], selected["raw_at_sae_site"]
    return {
        "site": str(sae_site),
        "n_latents": int(sae.n_latents),
        "per_pooling": poolings,
        "selected_auroc": sae_sel["auroc"],
        "raw_selected_auroc_same_site": raw_sel["auroc"],
        "gap_raw_minus_sae": round(raw_sel["auroc"] - sae_sel["auroc"], 4),
        "within_0_02": bool(raw_sel["auroc"] - sae_sel["auroc"] <= 0.02),
    }


def _curve(
    spec: BehaviourSet,
    data: LabeledDataset,
    sweep: Sweep,
    baseline_feats: dict[str, np.ndarray],
    args: Any,
) -> list[dict[str, Any]]:
    """The families' selections on smaller prefixes of the subsample (``spec.curve``)."""
    points = []
    for keep, rows in curve_rows(spec, data, Path(args.data_root), args.seed).items():
        part = data.subset(rows)
        y, g = part.y(spec.risk), part.groups()
        feats = {name: X[rows] for name, X in {**sweep.features, **baseline_feats}.items()}
        result = nested_cv(
            feats, y, g, n_outer=args.outer_folds, n_inner=args.inner_folds, seed=args.seed
        )
        points.append(
            {
                "units": keep,
                "n_examples": len(part),
                "n_groups": len(np.unique(g)),
                "selected": _selections(result, sweep.families, y, g, args),
                "baselines": {
                    name: _scored(result, name, y, g, args)["auroc"] for name in baseline_feats
                },
            }
        )
    return points


def evaluate_set(
    spec: BehaviourSet,
    data: LabeledDataset,
    reader: Any,
    sae: Any,
    sae_site: Site,
    args: Any,
) -> dict[str, Any]:
    """Sweep, family selections, SAE gaps, baselines and learning curve of one set."""
    y, groups = data.y(spec.risk), data.groups()
    features = load_features(reader, data, args.cache_dir)
    sweep = build_sweep(features, list(reader.sites), sae, sae_site)
    baseline_feats = {f"baseline:{k}": v for k, v in baselines(data).items()}
    everything = {**sweep.features, **baseline_feats}
    bar = tqdm(
        total=len(everything) * args.outer_folds,
        desc=f"probes {spec.name}",
        disable=args.no_progress,
    )
    result = nested_cv(
        everything,
        y,
        groups,
        n_outer=args.outer_folds,
        n_inner=args.inner_folds,
        seed=args.seed,
        progress=bar,
    )
    bar.close()
    scored = {name: _scored(result, name, y, groups, args) for name in everything}
    selected = _selections(result, sweep.families, y, groups, args)
    out: dict[str, Any] = {
        "set": spec.name,
        "format": spec.format,
        "risk": str(spec.risk),
        "n_examples": len(data),
        "n_groups": len(np.unique(groups)),
        "positive_rate": round(float(y.mean()), 4),
        "families": {family: sweep.families[family] for family in FAMILIES},
        "selected": selected,
        "sweep": {name: scored[name] for name in sweep.families["raw"]},
        "sae_sweep": {name: scored[name] for name in sweep.families["sae"]},
        "sae_parts": {name: scored[name] for name in sweep.families["sae_parts"]},
        "baselines": {name.split(":", 1)[1]: scored[name] for name in baseline_feats},
    }
    if sae is not None:
        out["sae_probe"] = _sae_figures(sae, sae_site, sweep, scored, selected)
    if spec.curve:
        out["learning_curve"] = _curve(spec, data, sweep, baseline_feats, args)
    return out


def _most_selected_site(per_fold: list[str]) -> Site:
    """The site the raw selection read most often (an all-sites pick counts for each site)."""
    return Counter(site for name in per_fold for site in sites_of(name)).most_common(1)[0][0]


def calibrate_set(
    spec: BehaviourSet, data: LabeledDataset, reader: Any, site: Site, args: Any
) -> tuple[Any, dict[str, Any]]:
    """``calibrate`` (evaluation cv) on raw activations at ``site``; the bundle and figures."""
    from calibration.pipeline import CalibrationSettings, calibrate

    settings = CalibrationSettings(
        risk=spec.risk,
        penalty="l2",
        C=args.C,
        nested_c=False,
        evaluation="cv",
        n_outer=args.outer_folds,
        n_splits=args.inner_folds,
        random_state=args.seed,
        n_bootstrap=args.n_bootstrap,
    )
    started = time.perf_counter()
    result = calibrate(
        data,
        settings,
        reader=reader,
        raw_sites=[site],
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
    )
    evaluation = result.report.evaluations[0]
    figures = {
        "site": str(site),
        "pooling": "mean_max",
        "penalty": "l2",
        "C": args.C if args.C is not None else "grouped CV",
        "C_final": bundle_c(result.bundle),
        "seconds": round(time.perf_counter() - started, 1),
        **_figures(evaluation.metrics),
    }
    return result.bundle, figures


def bundle_c(bundle: Any) -> float | None:
    """The C of the bundle's (first) detector, fitted on all rows."""
    for detector in bundle.detectors.values():
        return float(detector.info["C"])
    return None


def _smaller(spec: BehaviourSet, keep: int | None) -> BehaviourSet:
    """``spec`` cut to at most ``keep`` units (a prefix of its subsample), without a curve."""
    if keep is None:
        return spec
    if spec.units is None:
        return replace(spec, units=keep, curve=())
    return replace(spec, keep=min(spec.keep or spec.units, keep), curve=())


def _open_sae(path: str | None, site: Site, reader: Any) -> Any:
    if not path:
        return None
    folder = Path(path).expanduser()
    if not folder.exists():
        logger.warning("no SAE at %s: the SAE probe is left out", folder)
        return None
    from scope_guard.errors import ArtifactError
    from scope_guard.sae.loading import load_sae

    try:
        return load_sae(folder, expected_d_model=reader.site_dim(site))
    except ArtifactError as exc:  # e.g. still being trained: only a checkpoint there yet
        logger.warning("no usable SAE at %s (%s): the SAE probe is left out", folder, exc)
        return None


def _write(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s", path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from scope_guard.reader.miniature import default_cache_root

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-root", default="../shared/data")
    p.add_argument("--reader", default="gemma-3-270m")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--layers", default="6,9,12", help="resid_post layers to read, comma-separated")
    p.add_argument("--sae", default=DEFAULT_SAE, help="SAE folder ('' for none)")
    p.add_argument("--sae-site", default="resid_post@9")
    p.add_argument("--sets", default=",".join(s.name for s in SETS))
    p.add_argument(
        "--keep",
        type=int,
        default=None,
        help="keep at most KEEP units of each set, no learning curve (a quick check of the "
        "pipeline: its figures are not the benchmark's)",
    )
    p.add_argument("--cache-dir", default=str(default_cache_root() / "features-behaviours"))
    p.add_argument("--results", default="benchmarks/results")
    p.add_argument("--bundles", help="write each set's calibrated bundle to BUNDLES/<set>")
    p.add_argument(
        "--C",
        type=float,
        default=None,
        help="calibrate's fixed C (L2); default: chosen by grouped CV on each training side "
        "(the cross-fitted probes reuse it: nested_c=False)",
    )
    p.add_argument("--outer-folds", type=int, default=5)
    p.add_argument("--inner-folds", type=int, default=3)
    p.add_argument("--n-bootstrap", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch and BLAS threads (default 1: on two cores shared with other jobs, two "
        "threads made the reader 2.8x and the probes 8x slower)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-transfer", action="store_true", help="leave out the transfer table")
    p.add_argument(
        "--tables", action="store_true", help="only print the Markdown tables of --results"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    wanted = set(args.sets.split(","))
    specs = [_smaller(s, args.keep) for s in SETS if s.name in wanted]
    if args.tables:
        print(render(Path(args.results), [s.name for s in specs]))
        return 0
    import torch
    from threadpoolctl import threadpool_limits

    from detectors.bundle_manifest import sae_fingerprint
    from scope_guard.reader import Reader

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    root = Path(args.data_root)
    loaded = {}
    for spec in specs:
        data, n_units = load_set(spec, root, args.seed)
        loaded[spec.name] = (spec, data, n_units)
    sites = [Site.parse(f"resid_post@{int(x)}") for x in args.layers.split(",")]
    sae_site = Site.parse(args.sae_site)
    reader = Reader.from_pretrained(args.reader, sites, dtype=args.dtype)
    started = time.perf_counter()
    n_read = extract(
        reader,
        [d for _, d, _ in loaded.values()],
        cache_dir=args.cache_dir,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    read_s = time.perf_counter() - started
    sae = _open_sae(args.sae, sae_site, reader)
    common = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "command": "python -m benchmarks.detect_behaviours " + " ".join(argv or sys.argv[1:]),
        "reader": reader.info.name,
        "dtype": reader.info.dtype,
        "sites": [str(s) for s in sites],
        "seed": args.seed,
        "outer_folds": args.outer_folds,
        "inner_folds": args.inner_folds,
        "ridge_penalties": list(GRID),
        "n_read_this_run": n_read,
        "read_seconds_this_run": round(read_s, 1),
        "sae_folder": str(Path(args.sae).expanduser()) if sae is not None else None,
        "sae_fingerprint": sae_fingerprint(sae) if sae is not None else None,
    }
    bundles: dict[str, Any] = {}
    for name, (spec, data, n_units) in loaded.items():
        out = evaluate_set(spec, data, reader, sae, sae_site, args)
        out["subsample"] = {"units_total": n_units, "units_drawn": spec.units, "kept": spec.keep}
        site = _most_selected_site(out["selected"]["raw"]["per_fold"])
        bundle, out["calibrate"] = calibrate_set(spec, data, reader, site, args)
        bundles[name] = bundle
        if args.bundles:
            bundle.save(Path(args.bundles) / name)
        _write(Path(args.results) / f"behaviours_{name}.json", {**common, **out})
    if args.no_transfer:
        return 0
    _write(
        Path(args.results) / "behaviours_transfer.json",
        {**common, **_transfer(bundles, reader, root, args)},
    )
    return 0


def _transfer(bundles: dict[str, Any], reader: Any, root: Path, args: Any) -> dict[str, Any]:
    """Each deception set's calibrated bundle scored on every other deception set.

    ``bundles`` holds this run's bundles; with ``--bundles``, those of earlier runs found there
    join them, so sets run one at a time still meet in one transfer table.
    """
    from calibration.evaluation import evaluate
    from detectors.bundle import DetectorBundle

    specs = [_smaller(s, args.keep) for s in SETS if s.risk is Risk.DECEPTION]
    found = dict(bundles)
    if args.bundles:
        for spec in specs:
            folder = Path(args.bundles) / spec.name
            if spec.name not in found and folder.is_dir():
                found[spec.name] = DetectorBundle.load(folder)
    pairs = []
    for source in specs:
        if source.name not in found:
            continue
        for target in specs:
            if target.name == source.name:
                continue
            data, _ = load_set(target, root, args.seed)
            report = evaluate(
                found[source.name],
                data,
                reader=reader,
                cache_dir=args.cache_dir,
                n_bootstrap=args.n_bootstrap,
                random_state=args.seed,
                progress=False,
            )
            metrics = report.evaluations[0].metrics
            pairs.append({"fitted_on": source.name, "scored_on": target.name, **_figures(metrics)})
    return {"transfer": pairs}


if __name__ == "__main__":
    sys.exit(main())
