"""Grounding benchmark: quality and throughput of the grounding detector on a labeled file.

Usage (from the project root)::

    python -m benchmarks.grounding.run \\
        --data ../shared/data/ragtruth/ragtruth_dev.jsonl --format ragtruth
    python -m benchmarks.grounding.run --data ../shared/data/summedits --format summedits

Reports per task and overall: AUROC of the heuristic risk; AUROC, F1, precision and recall of a
logistic regression over the grounding features under grouped 5-fold CV (group = source
document; F1 threshold chosen inside the training folds); character-level span F1 of the claims
flagged unsupported (RAGTruth); throughput in responses/s with ``--threads`` CPU threads and the
passage cache off (every response pays for its own context).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import date
from functools import partial

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.grounding.datasets import FORMATS, load
from benchmarks.grounding.metrics import binary_scores, grouped_cv, span_cv, span_f1
from detectors.grounding import FEATURE_NAMES, ClaimResult, GroundingConfig, GroundingDetector


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", required=True, help="labeled file or folder (never copied)")
    ap.add_argument("--format", required=True, choices=sorted(FORMATS))
    ap.add_argument("--limit", type=int, default=0, help="use only the first N rows (0 = all)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (BLAS, OpenMP, faiss)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--span-mode",
        choices=["phrase", "items", "claim"],
        default="phrase",
        help="flag the phrases of an unsupported claim that hold unsupported items, the whole "
        "claim when it has none (phrase, default); only such phrases (items); or the whole claim",
    )
    ap.add_argument(
        "--span-gate",
        action="store_true",
        help="flag claims only in responses the out-of-fold probe flags "
        "(default: in every response)",
    )
    ap.add_argument(
        "--sentence-transformer",
        metavar="PATH",
        help="embed with the sentence-transformers model in this local folder (optional extra, "
        "needs the sentence-transformers package) instead of the default TF-IDF embedder",
    )
    ap.add_argument("--json", dest="json_path", help="also write all figures to this JSON file")
    ap.add_argument("--features-out", help="write features, labels, groups, tasks to this .npz")
    return ap.parse_args(argv)


def _sentence_transformer(path: str | None) -> Callable[[list[str]], object] | None:
    """``None`` (the default embedder) or the ``encode`` of a local sentence-transformers model."""
    if path is None:
        return None
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        msg = "--sentence-transformer needs the sentence-transformers package (pip install it)"
        raise SystemExit(msg) from err
    model = SentenceTransformer(path, device="cpu", local_files_only=True)
    return partial(model.encode, batch_size=64, normalize_embeddings=True)


def _claim_spans(claim: ClaimResult, mode: str) -> list[tuple[int, int]]:
    """The spans to flag for ``claim`` when it is unsupported, under ``--span-mode``."""
    if mode == "claim":
        return [(claim.start, claim.end)]
    if mode == "items":
        return list(claim.unsupported_spans)
    return list(claim.unsupported_spans) or [(claim.start, claim.end)]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints a markdown report and returns the exit status."""
    args = _parse(argv)
    examples = load(args.data, args.format)
    if args.limit:
        examples = examples[: args.limit]
    faiss.omp_set_num_threads(args.threads)
    detector = GroundingDetector(
        embedder=_sentence_transformer(args.sentence_transformer),
        config=GroundingConfig(cache_size=0),
    )
    results = []
    with threadpool_limits(limits=args.threads):
        detector.check("warm up.", ["warm up."])
        t0 = time.perf_counter()
        for ex in examples:
            results.append(detector.check(ex.response, ex.contexts, question=ex.question))
        elapsed = time.perf_counter() - t0
    X = np.array([r.features for r in results], dtype=np.float64)
    y = np.array([ex.label for ex in examples], dtype=np.int64)
    groups = np.array([ex.group for ex in examples])
    tasks = np.array([ex.task for ex in examples])
    risk = np.array([r.risk for r in results])
    if args.features_out:
        np.savez(
            args.features_out,
            X=X,
            y=y,
            groups=groups,
            tasks=tasks,
            risk=risk,
            names=np.array(FEATURE_NAMES),
        )
    prob, pred = grouped_cv(X, y, groups, n_splits=args.folds, seed=args.seed)
    has_spans = all(ex.spans is not None for ex in examples)
    span_counts: dict[int, tuple[int, int, int]] = {}
    thresholds: list[float] = []
    if has_spans:
        claims = [
            [
                (
                    c.support,
                    _claim_spans(c, args.span_mode),
                )
                for c in r.claims
            ]
            for r in results
        ]
        gold = [list(ex.spans or []) for ex in examples]
        gate = pred.astype(bool) if args.span_gate else None
        span_counts, thresholds = span_cv(
            claims, gold, y, groups, gate=gate, n_splits=args.folds, seed=args.seed
        )
    report: dict[str, object] = {
        "date": date.today().isoformat(),
        "machine": (
            f"{platform.machine()}, {args.threads} CPU threads, Python {platform.python_version()}"
        ),
        "command": "python -m benchmarks.grounding.run "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "rows": len(examples),
        "embedder": repr(detector.embedder),
        "responses_per_s": len(examples) / elapsed,
        "span_thresholds": thresholds,
        "by_task": {},
    }
    print(f"# grounding benchmark: {args.format}, {len(examples)} rows")
    print(
        f"throughput: {len(examples) / elapsed:.1f} responses/s "
        f"({args.threads} threads, cache off)\n"
    )
    header = "| task | n | pos | heuristic AUROC | probe AUROC | F1 | precision | recall |"
    if has_spans:
        header += " span F1 | span P | span R |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for task in [*sorted(set(tasks)), "overall"]:
        mask = np.ones(len(y), bool) if task == "overall" else tasks == task
        h = binary_scores(y[mask], risk[mask])
        p = binary_scores(y[mask], prob[mask], pred[mask])
        row = (
            f"| {task} | {p.n} | {p.positives} | {h.auroc:.3f} | {p.auroc:.3f} | {p.f1:.3f} "
            f"| {p.precision:.3f} | {p.recall:.3f} |"
        )
        entry = {
            "n": p.n,
            "positives": p.positives,
            "heuristic_auroc": h.auroc,
            "probe": p._asdict(),
        }
        if has_spans:
            sf, sp, sr = span_f1([span_counts[int(i)] for i in np.flatnonzero(mask)])
            row += f" {sf:.3f} | {sp:.3f} | {sr:.3f} |"
            entry["span"] = {"f1": sf, "precision": sp, "recall": sr}
        report["by_task"][task] = entry  # type: ignore[index]
        print(row)
    if thresholds:
        print(f"\nspan thresholds chosen on training folds: {thresholds}")
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
