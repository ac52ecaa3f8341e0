"""Which reader feature blocks earn their place beside grounding on RAGTruth: a grouped-CV study.

Blocks (all from one early-stopped pass of the real Gemma 3 270M, see ``extract_ragtruth``):

- ``grounding``: the weight-free grounding detector's features;
- ``lookback``: mean lookback ratio per layer and head over the response (Chuang et al., 2024);
- ``raw@L``: a logistic probe on the mean- and max-pooled residual at layer L, stacked as its
  cross-fitted score;
- ``tokens@L``: a per-token probe trained on RAGTruth's spans at layer L, aggregated to the
  response (max, top-5 mean, share above 0.5, mean), cross-fitted inside each training side;
- ``surprisal`` (with ``--surprisal``): the reader's per-token surprisal and entropy pooled
  (:mod:`detectors.surprisal_pooling`: mean, max, top-5 mean, shares above 2/5/10 nats, mean
  entropy); it joins as "surprisal", "grounding + surprisal", "all + surprisal" and
  "grounding + tokens + surprisal", and "all" stays without it, for a like-for-like gain.

``--groups N --seed S`` studies a fixed seeded sample of N source groups (see
``extract_ragtruth``).

Every source group is held out once (5 grouped folds). Inside a training side, stacked inputs
come from inner grouped folds, so the combiner meets the same kind of scores on held-out rows.
Each combination's held-out scores are calibrated (Platt) and thresholded (best F1) on the other
folds' held-out scores, never on their own. Reported: AUROC, F1, ECE, TPR at 1% FPR with group
bootstrap intervals; AUROC per task; AUROC within (generator, task) strata (a reader can learn
who wrote an answer, and generators differ in hallucination rate); span F1 of the token probe
(character level, micro over responses).

    .venv/bin/python -m benchmarks.fabrication.ablation \\
        --out benchmarks/results/fabrication_ragtruth_ablation.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.fabrication.extract_ragtruth import DEFAULT_CACHE, DEFAULT_SITES, extract_all
from calibration.calibrators import fit_calibration_map
from calibration.metrics import compute_metrics
from calibration.splits import as_group_codes, group_folds
from calibration.thresholds import threshold_for_f1
from calibration.token_probe import (
    char_f1,
    cross_fit_aggregates,
    predicted_spans,
    token_labels,
)
from detectors.feature_blocks import surprisal_block
from scope_guard.risks import Risk

logger = logging.getLogger("benchmarks.fabrication.ablation")

FAB = Risk.FABRICATION


def _logistic_cv(groups: np.ndarray) -> Any:
    """A standardized L2 logistic regression with C chosen by grouped inner CV (log loss)."""
    folds = list(GroupKFold(n_splits=3).split(np.zeros(len(groups)), groups=groups))
    return make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(
            Cs=[0.01, 0.1, 1.0],
            l1_ratios=(0.0,),
            cv=folds,
            scoring="neg_log_loss",
            max_iter=500,
            tol=1e-3,
            use_legacy_attributes=False,
        ),
    )


def _combiner(kind: str, groups: np.ndarray) -> Any:
    if kind == "logistic":
        return _logistic_cv(groups)
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_iter=200,
        max_leaf_nodes=8,
        min_samples_leaf=30,
        l2_regularization=1.0,
        random_state=0,
    )


def _stacked_probe(
    x: np.ndarray, y: np.ndarray, g: np.ndarray, train: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted scores of a pooled-feature probe for train rows, and test-row scores.

    C is chosen by grouped CV on the training rows (log loss) for the full fit; the inner fits
    that score the training rows reuse it.
    """
    full = _logistic_cv(g[train]).fit(x[train], y[train])
    c = float(full[-1].C_)

    def model() -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))

    inner = np.zeros(train.size)
    for a, b in group_folds(y[train], g[train], n_splits=3, random_state=1):
        inner[b] = model().fit(x[train[a]], y[train[a]]).decision_function(x[train[b]])
    return inner[:, None], full.decision_function(x[test])[:, None]


def _pooled_sae_codes(sae_dir: Path, feats: Any) -> tuple[str, np.ndarray, dict[str, Any]]:
    """Mean- and max-pooled codes of an SAE over each response's cached token activations at
    the SAE's site (what :func:`scope_guard.features.encode_reading` computes from a reading)."""
    import torch

    from scope_guard.features import Pooling, pool_codes
    from scope_guard.sae import load_sae

    sae = load_sae(sae_dir)
    site = sae.info.site
    if site not in feats.tokens:
        raise SystemExit(f"the SAE reads {site}; extracted token sites: {list(feats.tokens)}")
    rows = []
    with torch.inference_mode():
        for acts in feats.tokens[site]:
            codes = sae.encode(torch.from_numpy(acts)).float()
            rows.append(pool_codes(codes, Pooling.MEAN_MAX).numpy())
    from detectors.bundle_manifest import sae_fingerprint

    info = {
        "path": str(sae_dir),
        "site": str(site),
        "width": sae.n_latents,
        "fingerprint": sae_fingerprint(sae),
    }
    layer = site.layer if site is not None else "?"
    return f"sae@{layer}", np.stack(rows).astype(np.float64), info


def _cross_calibrated(
    scores: np.ndarray, y: np.ndarray, fold_of: np.ndarray, g: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and thresholds of each fold from a map and threshold fitted on the others."""
    probs = np.zeros_like(scores)
    thresholds = np.zeros_like(scores)
    for k in np.unique(fold_of):
        here, rest = fold_of == k, fold_of != k
        cmap = fit_calibration_map(scores[rest], y[rest], "sigmoid", groups=g[rest])
        probs[here] = cmap.apply(scores[here])
        thresholds[here] = threshold_for_f1(cmap.apply(scores[rest]), y[rest])
    return probs, thresholds


def _within_strata_auroc(y: np.ndarray, s: np.ndarray, strata: np.ndarray) -> dict[str, Any]:
    aucs, sizes = [], []
    for value in np.unique(strata):
        m = strata == value
        if 0 < y[m].sum() < m.sum():
            aucs.append(roc_auc_score(y[m], s[m]))
            sizes.append(int(m.sum()))
    weights = np.asarray(sizes) / np.sum(sizes)
    return {
        "auroc_within_strata": float(np.dot(weights, aucs)),
        "n_strata": len(aucs),
        "n_rows_in_strata": int(np.sum(sizes)),
    }


def _summary(
    y: np.ndarray,
    scores: np.ndarray,
    fold_of: np.ndarray,
    g: np.ndarray,
    task: np.ndarray,
    strata: np.ndarray,
) -> dict[str, Any]:
    probs, thresholds = _cross_calibrated(scores, y, fold_of, g)
    m = compute_metrics(y, probs, thresholds, groups=g, n_bootstrap=300)
    out: dict[str, Any] = {
        "auroc": m.auroc.value,
        "auroc_ci": [m.auroc.low, m.auroc.high],
        "f1": m.f1.value,
        "f1_ci": [m.f1.low, m.f1.high],
        "ece": m.ece.value,
        "tpr_at_1_fpr": m.tpr_at_1_fpr.value,
        "precision": m.precision.value,
        "recall": m.recall.value,
    }
    out["per_task_auroc"] = {
        str(t): float(roc_auc_score(y[task == t], scores[task == t])) for t in np.unique(task)
    }
    out.update(_within_strata_auroc(y, scores, strata))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data/ragtruth/ragtruth_dev.jsonl")
    )
    parser.add_argument("--sites", nargs="+", default=list(DEFAULT_SITES))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--sae", type=Path, default=None, help="an SAE folder at one of the sites: a pooled block"
    )
    parser.add_argument(
        "--combiner",
        choices=["logistic", "boosting"],
        default="logistic",
        help="the model over the blocks: L2 logistic regression (C by grouped CV) or gradient "
        "boosted trees (interactions between blocks)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="only the N shortest rows (a quick check)"
    )
    parser.add_argument("--surprisal", action="store_true", help="add the reader's surprisal block")
    parser.add_argument(
        "--groups", type=int, default=None, help="only N source groups, drawn with --seed"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from benchmarks.fabrication.extract_ragtruth import load_inputs

    t0 = time.perf_counter()
    dataset, reader = load_inputs(
        args.data,
        tuple(args.sites),
        args.max_tokens,
        4,
        surprisal=args.surprisal,
        groups=args.groups,
        seed=args.seed,
    )
    if args.limit is not None:
        from calibration.data import prompt_of

        order = sorted(
            range(len(dataset)), key=lambda i: len(prompt_of(dataset[i])) + len(dataset[i].response)
        )
        dataset = dataset.subset(sorted(order[: args.limit]))
    feats = extract_all(
        dataset, reader, tuple(args.sites), args.cache, 4, progress=True, surprisal=args.surprisal
    )
    sites = list(feats.tokens)
    y = dataset.y(FAB).astype(int)
    g = as_group_codes(dataset.groups(), len(dataset))
    task = dataset.field("task_type").astype(str)
    model = dataset.field("model").astype(str)
    strata = np.char.add(np.char.add(model, "|"), task)
    assert feats.token_offsets is not None
    assert feats.lookback is not None
    labels = [
        token_labels(off, ex.spans, FAB)
        for off, ex in zip(feats.token_offsets, dataset, strict=True)
    ]
    folds = group_folds(y, g, n_splits=5, random_state=0)
    fold_of = np.zeros(len(y), dtype=int)
    for k, (_, test) in enumerate(folds):
        fold_of[test] = k

    pooled = {f"raw@{s.layer}": feats.raw[s] for s in sites}
    sae_info = None
    if args.sae is not None:
        sae_name, codes, sae_info = _pooled_sae_codes(args.sae, feats)
        pooled[sae_name] = codes
    names = [
        "grounding",
        "lookback",
        *pooled,
        *(f"tokens@{s.layer}" for s in sites),
    ]
    combos: dict[str, list[str]] = {n: [n] for n in names}
    combos["all"] = names
    for n in names:
        combos[f"all - {n}"] = [m for m in names if m != n]
    combos["grounding + tokens"] = ["grounding", *(f"tokens@{s.layer}" for s in sites)]
    combos["grounding + lookback"] = ["grounding", "lookback"]
    fixed = {"grounding": feats.grounding, "lookback": feats.lookback}
    if args.surprisal:
        fixed["surprisal"] = feats.matrix([surprisal_block()])
        combos["surprisal"] = ["surprisal"]
        combos["grounding + surprisal"] = ["grounding", "surprisal"]
        combos["all + surprisal"] = [*names, "surprisal"]
        combos["grounding + tokens + surprisal"] = [*combos["grounding + tokens"], "surprisal"]
    scores = {c: np.zeros(len(y)) for c in combos}
    token_scores: dict[str, list[np.ndarray | None]] = {
        f"tokens@{s.layer}": [None] * len(y) for s in sites
    }
    for k, (train, test) in enumerate(folds):
        logger.info("fold %d: %d train, %d test", k, train.size, test.size)
        blocks_train = {name: x[train] for name, x in fixed.items()}
        blocks_test = {name: x[test] for name, x in fixed.items()}
        for name, x in pooled.items():
            blocks_train[name], blocks_test[name] = _stacked_probe(x, y, g, train, test)
            logger.info("  %s stacked", name)
        for s in sites:
            acts = feats.tokens[s]
            a, b, probe = cross_fit_aggregates(acts, labels, y, g, train, test)
            logger.info("  tokens@%d fitted", s.layer)
            blocks_train[f"tokens@{s.layer}"], blocks_test[f"tokens@{s.layer}"] = a, b
            for i in test:
                token_scores[f"tokens@{s.layer}"][i] = probe.token_scores(acts[i])
        for combo, members in combos.items():
            xa = np.hstack([blocks_train[m] for m in members])
            xb = np.hstack([blocks_test[m] for m in members])
            fitted = _combiner(args.combiner, g[train]).fit(xa, y[train])
            scores[combo][test] = fitted.decision_function(xb)
        logger.info("  %d combinations fitted", len(combos))
    results = {c: _summary(y, scores[c], fold_of, g, task, strata) for c in combos}
    for combo, r in results.items():
        logger.info(
            "%-28s AUROC %.3f  F1 %.3f  ECE %.3f  strata %.3f  %s",
            combo,
            r["auroc"],
            r["f1"],
            r["ece"],
            r["auroc_within_strata"],
            {t: round(v, 3) for t, v in r["per_task_auroc"].items()},
        )

    # Span localization: each fold's threshold chosen on the other folds' held-out token scores.
    gold = [[(sp.start, sp.end) for sp in ex.spans if sp.risk is FAB] for ex in dataset]
    spans_out: dict[str, Any] = {}
    offsets = feats.token_offsets
    grid = np.linspace(0.05, 0.95, 19)
    for name, per_row in token_scores.items():
        rows = [np.asarray(v) for v in per_row]
        chosen = {}
        predicted: list[list[tuple[int, int]]] = [[] for _ in rows]
        for k in range(len(folds)):
            rest = np.flatnonzero(fold_of != k)

            def span_f1(t: float, rest: np.ndarray = rest, rows: list[np.ndarray] = rows) -> float:
                found = [predicted_spans(offsets[i], rows[i], t) for i in rest]
                return char_f1(found, [gold[i] for i in rest])[2]

            best = max(grid, key=span_f1)
            chosen[k] = float(best)
            for i in np.flatnonzero(fold_of == k):
                predicted[i] = predicted_spans(offsets[i], rows[i], best)
        precision, recall, f1 = char_f1(predicted, gold)
        spans_out[name] = {
            "char_precision": precision,
            "char_recall": recall,
            "char_f1": f1,
            "thresholds": chosen,
        }
        logger.info("span %s: char P %.3f R %.3f F1 %.3f", name, precision, recall, f1)

    record = {
        "date": time.strftime("%Y-%m-%d"),
        "rows": len(y),
        "positives": int(y.sum()),
        "groups": int(np.unique(g).size),
        "sites": [str(s) for s in sites],
        "lookback_shape": feats.lookback_shape,
        "reader": reader.info.name,
        "sae": sae_info,
        "folds": 5,
        "blocks": [*names, *(["surprisal"] if args.surprisal else [])],
        "sampled_groups": args.groups,
        "seed": args.seed if args.groups is not None else None,
        "surprisal_columns": surprisal_block().column_names() if args.surprisal else None,
        "combiner": args.combiner,
        "results": results,
        "spans": spans_out,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
