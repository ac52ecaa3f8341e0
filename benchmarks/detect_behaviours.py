"""Sycophancy and deception detectors with the real Gemma 3 270M reader, measured.

For each set of :mod:`benchmarks.behaviours.sets` (fixed-seed subsamples of ``../shared/data``):

1. one reader pass, cached in the project's feature cache (resumable, with a progress bar):
   pooled activations at every site (mean, max, last token) and per-token ones at the SAE site;
2. a sweep of linear probes (site x pooling) under nested grouped cross-validation: every group
   held out once, the candidate chosen per outer fold on its training groups only
   (:mod:`benchmarks.behaviours.probes`); the SAE probe (when the SAE exists) beside the raw
   probe at its site; the trivial baselines (:mod:`benchmarks.behaviours.baselines`);
3. ``calibrate`` itself (the project's probe, calibration and threshold, ``evaluation="cv"``) at
   the site the sweep chose most often, its bundle written to ``--bundles`` when given, and
   transfer: each deception bundle scored on the other deception sets (``evaluate``).

Results: ``benchmarks/results/behaviours_<set>.json`` and ``behaviours_transfer.json``.

Run from the project root (about 45 minutes on two shared cores, most of it the reader):

    nice -n 5 .venv/bin/python -m benchmarks.detect_behaviours --bundles /tmp/behaviour-bundles
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from benchmarks.behaviours.baselines import baselines
from benchmarks.behaviours.features import cached_features, extract, token_activations
from benchmarks.behaviours.probes import GRID, NestedResult, metrics_of, nested_cv
from benchmarks.behaviours.sets import SETS, BehaviourSet, load_set
from benchmarks.behaviours.tables import render
from calibration.data import LabeledDataset
from calibration.metrics import Metrics
from scope_guard.risks import Risk
from scope_guard.sites import Site

logger = logging.getLogger("benchmarks.detect_behaviours")

DEFAULT_SAE = "~/.cache/scope_guard/sae/gemma-3-270m-resid_post@9-4096"
POOLINGS = ("mean", "last")


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


def _sae_codes(sae: Any, tokens: list[np.ndarray]) -> np.ndarray:
    """Mean-pooled SAE codes of each example's response tokens, ``(n, n_latents)``."""
    import torch

    rows = []
    with torch.inference_mode():
        for acts in tokens:
            if acts.shape[0] == 0:
                rows.append(np.zeros(sae.n_latents))
                continue
            codes = sae.encode(torch.from_numpy(acts)).float()
            rows.append(codes.mean(dim=0).numpy())
    return np.stack(rows).astype(np.float64)


def evaluate_set(
    spec: BehaviourSet,
    data: LabeledDataset,
    reader: Any,
    sae: Any,
    sae_site: Site,
    args: Any,
) -> dict[str, Any]:
    """Sweep, selection, SAE and baselines of one set; a JSON-ready dict."""
    y, groups = data.y(spec.risk), data.groups()
    cache = args.cache_dir
    candidates = {
        f"{site}/{pooling}": cached_features(reader, data, site, pooling, cache)
        for site in reader.sites
        for pooling in POOLINGS
    }
    extra: dict[str, np.ndarray] = dict(baselines(data))
    if sae is not None:
        extra["sae"] = _sae_codes(sae, token_activations(reader, data, sae_site, cache))
    total = (len(candidates) + len(extra)) * args.outer_folds
    bar = tqdm(total=total, desc=f"probes {spec.name}", disable=args.no_progress)
    sweep = nested_cv(
        candidates,
        y,
        groups,
        n_outer=args.outer_folds,
        n_inner=args.inner_folds,
        seed=args.seed,
        progress=bar,
    )
    others = nested_cv(
        extra,
        y,
        groups,
        n_outer=args.outer_folds,
        n_inner=args.inner_folds,
        seed=args.seed,
        progress=bar,
    )
    bar.close()
    selected_metrics = metrics_of(
        y, sweep.selected_probs, sweep.selected_thresholds, groups, args.n_bootstrap, args.seed
    )
    out: dict[str, Any] = {
        "set": spec.name,
        "format": spec.format,
        "risk": str(spec.risk),
        "n_examples": len(data),
        "n_groups": len(np.unique(groups)),
        "positive_rate": round(float(y.mean()), 4),
        "sweep": {name: _scored(sweep, name, y, groups, args) for name in candidates},
        "selected": {"per_fold": sweep.selected, **_figures(selected_metrics)},
        "baselines": {
            name: _scored(others, name, y, groups, args) for name in extra if name != "sae"
        },
    }
    if sae is not None:
        raw = out["sweep"][f"{sae_site}/mean"]
        sae_fig = _scored(others, "sae", y, groups, args)
        out["sae_probe"] = {
            "site": str(sae_site),
            "n_latents": int(sae.n_latents),
            "pooling": "mean",
            **sae_fig,
            "raw_auroc_same_site": raw["auroc"],
            "gap_raw_minus_sae": round(raw["auroc"] - sae_fig["auroc"], 4),
        }
    return out


def _most_selected_site(per_fold: list[str]) -> Site:
    return Site.parse(Counter(name.split("/")[0] for name in per_fold).most_common(1)[0][0])


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
    specs = [s for s in SETS if s.name in wanted]
    if args.tables:
        print(render(Path(args.results), [s.name for s in specs]))
        return 0
    import torch
    from threadpoolctl import threadpool_limits

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
        token_site=sae_site,
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
    }
    bundles: dict[str, Any] = {}
    for name, (spec, data, n_units) in loaded.items():
        out = evaluate_set(spec, data, reader, sae, sae_site, args)
        out["subsample"] = {"units_total": n_units, "units_drawn": spec.units, "kept": spec.keep}
        site = _most_selected_site(out["selected"]["per_fold"])
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

    specs = [s for s in SETS if s.risk is Risk.DECEPTION]
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
