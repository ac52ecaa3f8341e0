"""The grounding benchmark's metrics against hand computations, and one run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from benchmarks.grounding.metrics import best_threshold, grouped_cv, span_counts, span_cv, span_f1
from benchmarks.grounding.run import main


def test_span_counts_by_hand() -> None:
    claims = [(0.2, [(0, 10)]), (0.9, [(20, 30)]), (0.1, [(8, 14)])]
    gold = [(5, 12), (25, 27)]
    # Flagged at 0.5: characters 0..13 (14 chars); gold: 5..11 and 25..26 (9 chars); overlap 7.
    assert span_counts(claims, gold, 0.5) == (7, 14, 9)
    # Nothing flagged below every support.
    assert span_counts(claims, gold, 0.05) == (0, 0, 9)
    f1, p, r = span_f1([(7, 14, 9), (0, 0, 1)])
    assert p == pytest.approx(0.5)
    assert r == pytest.approx(0.7)
    assert f1 == pytest.approx(2 * 0.5 * 0.7 / 1.2)


def test_best_threshold_maximises_f1() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    score = y * 0.3 + rng.random(300)
    t = best_threshold(y, score)
    grid = np.unique(np.quantile(score, np.linspace(0, 1, 101)))
    best = max(f1_score(y, (score >= g).astype(int)) for g in grid)
    assert f1_score(y, (score >= t).astype(int)) == pytest.approx(best)


def test_grouped_cv_is_out_of_fold() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat([f"g{i}" for i in range(60)], 5)
    y = np.repeat(rng.integers(0, 2, 60), 5)
    signal = y + rng.normal(scale=0.5, size=len(y))
    noise = rng.normal(size=(len(y), 20))
    prob, pred = grouped_cv(np.column_stack([signal, noise]), y, groups, n_splits=5, seed=0)
    assert set(np.unique(pred)) <= {0, 1}
    assert roc_auc_score(y, prob) > 0.9
    # Pure noise scored out of fold carries nothing; in-sample it would look separable.
    prob, _ = grouped_cv(noise, y, groups, n_splits=5, seed=0)
    assert abs(roc_auc_score(y, prob) - 0.5) < 0.12


def test_span_cv_thresholds_come_from_the_grid() -> None:
    claims = [[(0.1 + 0.01 * i, [(0, 5)])] for i in range(20)]
    gold = [[(0, 5)] if i % 2 else [] for i in range(20)]
    y = np.array([i % 2 for i in range(20)])
    groups = np.array([f"g{i}" for i in range(20)])
    counts, thresholds = span_cv(claims, gold, y, groups, n_splits=4, seed=0)
    assert len(counts) == 20
    assert len(thresholds) == 4
    assert all(0.05 <= t < 1.0 for t in thresholds)


def _ragtruth_row(i: int) -> dict[str, object]:
    context = (
        f"Acme Corp opened {10 + i} stores in Ohio in 2019. The stores sell garden tools and "
        f"seeds. Store number {i} is run by Dana Ruiz."
    )
    if i % 2:
        response = f"Acme Corp opened {10 + i} stores in Ohio in 2019. They sell garden tools."
        labels: list[dict[str, object]] = []
    else:
        invented = f"The stores were closed in 2023 by Mayor Blake Tran after {i + 3} lawsuits."
        response = f"Acme Corp opened {10 + i} stores in Ohio. {invented}"
        start = response.index(invented)
        labels = [{"start": start, "end": start + len(invented), "label_type": "Baseless"}]
    return {
        "id": str(i),
        "task_type": "QA" if i % 3 else "Summary",
        "query": "What did Acme do?",
        "context": context,
        "response": response,
        "labels": labels,
        "hallucinated": bool(labels),
    }


def test_benchmark_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "rt.jsonl"
    data.write_text("\n".join(json.dumps(_ragtruth_row(i)) for i in range(40)), encoding="utf-8")
    out = tmp_path / "report.json"
    assert main(["--data", str(data), "--format", "ragtruth", "--json", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["rows"] == 40
    overall = report["by_task"]["overall"]
    # Inventions with new names, numbers and years are easy: the probe must separate them.
    assert overall["probe"]["auroc"] > 0.9
    assert overall["span"]["f1"] > 0.5
    assert "| overall | 40 |" in capsys.readouterr().out
