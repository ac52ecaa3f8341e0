"""The behaviour benchmark's parts on synthetic data: the nested sweep, baselines, subsamples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier

from benchmarks.behaviours.baselines import baselines
from benchmarks.behaviours.probes import GRID, _Ridge, nested_cv
from benchmarks.behaviours.sets import BehaviourSet, load_set
from calibration.data import LabeledDataset, LabeledExample
from scope_guard.risks import Risk


def _planted(n: int = 240, d: int = 12, signal: float = 2.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    groups = np.repeat(np.arange(n // 2), 2)
    X = rng.normal(size=(n, d))
    X[:, 0] += signal * (2 * y - 1)
    return X, y, groups


def _sklearn_scores(X: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """The same problem by sklearn: standardized features, +-1 labels, balanced weights."""
    Z = (X - X.mean(0)) / X.std(0)
    pos = y == 1
    w = np.where(pos, 0.5 / pos.mean(), 0.5 / (~pos).mean())
    ref = RidgeClassifier(alpha=alpha, fit_intercept=False, solver="cholesky")
    return Z @ ref.fit(Z, 2 * y - 1, sample_weight=w).coef_.ravel()


@pytest.mark.parametrize(("n", "d"), [(80, 6), (20, 46)])  # primal, then dual (d > n)
def test_ridge_matches_sklearn(n: int, d: int) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(n, d)), np.tile([0, 1, 1, 0], n // 4)
    X[:, 0] += y
    ridge = _Ridge(X, y)
    assert ridge.dual == (d > n)
    scores = ridge.scores(X)
    assert scores.shape == (n, len(GRID))
    for j in (1, 3):
        expected = _sklearn_scores(X, y, GRID[j] * ridge.scale)
        np.testing.assert_allclose(scores[:, j], expected, rtol=1e-5, atol=1e-8)


def test_nested_cv_selects_the_informative_candidate_and_scores_every_row() -> None:
    X, y, groups = _planted()
    noise = np.random.default_rng(5).normal(size=X.shape)
    result = nested_cv({"signal": X, "noise": noise}, y, groups, n_outer=4, n_inner=3)
    assert result.selected == ["signal"] * 4
    assert not np.isnan(result.selected_probs).any()
    assert ((result.selected_probs >= 0) & (result.selected_probs <= 1)).all()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, result.candidates["signal"].probs) > 0.9
    assert 0.3 < roc_auc_score(y, result.candidates["noise"].probs) < 0.7
    np.testing.assert_array_equal(result.selected_probs, result.candidates["signal"].probs)


def test_nested_cv_never_lets_a_group_see_itself() -> None:
    # Each group's two rows carry the same random label and identical features: a probe that
    # saw a group in training would score it perfectly; held out whole, there is nothing to learn.
    rng = np.random.default_rng(3)
    n_groups = 100
    labels = rng.integers(0, 2, n_groups)
    X = np.repeat(rng.normal(size=(n_groups, 30)), 2, axis=0)
    y, groups = np.repeat(labels, 2), np.repeat(np.arange(n_groups), 2)
    result = nested_cv({"memorize": X}, y, groups, n_outer=5, n_inner=3)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, result.candidates["memorize"].probs) < 0.7


def _example(i: int, response: str, label: int, prompt: str | None = None, group: str = ""):
    return LabeledExample(
        id=f"x:{i}",
        question="Q?",
        prompt=prompt,
        response=response,
        labels={Risk.SYCOPHANCY: label},
        group=group or f"g{i // 2}",
    )


def test_baselines_length_letter_and_prompt() -> None:
    rows = [
        _example(0, "(A) yes", 1, "short prompt"),
        _example(1, "(B) no, not at all", 0, "a much longer prompt with a goal"),
        _example(2, "(B) no", 1, "short prompt"),
        _example(3, "(A) yes indeed", 0, "a much longer prompt with a goal"),
    ]
    feats = baselines(LabeledDataset(rows))
    assert set(feats) == {"length", "letter", "prompt_length", "prompt_words"}
    assert feats["letter"].ravel().tolist() == [0.0, 1.0, 1.0, 0.0]
    assert feats["length"][1, 0] > feats["length"][0, 0]
    # One prompt per group: no prompt baselines (the prompt cannot tell a pair apart).
    same = [_example(i, f"({'AB'[i % 2]}) x", i % 2, "p") for i in range(4)]
    assert set(baselines(LabeledDataset(same))) == {"length", "letter"}


def test_load_set_subsamples_whole_units_and_a_smaller_keep_is_a_prefix(tmp_path: Path) -> None:
    rows = [
        {
            "question": f"I am user {i}. I like things. Which?\n (A) More\n (B) Less\n\nAnswer:",
            "answer_matching_behavior": " (A)",
            "answer_not_matching_behavior": " (B)",
        }
        for i in range(30)
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    big = BehaviourSet("s", "anthropic-sycophancy", "s.jsonl", Risk.SYCOPHANCY, units=20)
    small = BehaviourSet("s", "anthropic-sycophancy", "s.jsonl", Risk.SYCOPHANCY, 20, keep=8)
    data, n_units = load_set(big, tmp_path)
    part, _ = load_set(small, tmp_path)
    assert n_units == 30
    assert len(data) == 40
    assert len(part) == 16
    assert {e.id for e in part} <= {e.id for e in data}
    items = [e.id.rsplit(":", 1)[0] for e in part]
    assert all(items.count(i) == 2 for i in items)


@pytest.mark.parametrize("seed", [0, 1])
def test_load_set_is_deterministic(tmp_path: Path, seed: int) -> None:
    rows = [
        {"question": f"Q{i}?", "answer": f"yes {i}", "false_answer": f"no {i}"} for i in range(12)
    ]
    table = {c: {str(i): r[c] for i, r in enumerate(rows)} for c in rows[0]}
    (tmp_path / "questions_1000_all.json").write_text(json.dumps(table), encoding="utf-8")
    spec = BehaviourSet("q", "ai-liar", "questions_1000_all.json", Risk.DECEPTION, units=5)
    a, _ = load_set(spec, tmp_path, seed)
    b, _ = load_set(spec, tmp_path, seed)
    assert [e.id for e in a] == [e.id for e in b]
    assert len(a) == 10


def test_one_pass_feeds_calibrate_cache_and_the_other_poolings(tmp_path: Path) -> None:
    from benchmarks.behaviours.features import cached_features, extract, token_activations
    from calibration.extract import extract_features
    from scope_guard.reader import Reader
    from scope_guard.sites import Site

    sites = [Site.parse("resid_post@1"), Site.parse("resid_post@2")]
    reader = Reader.miniature(sites)
    data = LabeledDataset(
        [_example(i, f"answer number {i} " * (1 + i % 3), i % 2, f"prompt {i}") for i in range(6)]
    )
    cache = tmp_path / "features"
    assert extract(reader, [data, data], cache_dir=cache, token_site=sites[1], progress=False) == 6
    assert extract(reader, [data], cache_dir=cache, token_site=sites[1], progress=False) == 0
    # calibrate's extraction finds the pooled mean+max in the cache: nothing is read again.
    feats = extract_features(data, reader=reader, raw_sites=sites, cache_dir=cache, progress=False)
    assert feats.n_computed == 0
    for site in sites:
        np.testing.assert_allclose(
            feats.raw[site], cached_features(reader, data, site, "mean_max", cache), rtol=1e-6
        )
    tokens = token_activations(reader, data, sites[1], cache)
    readings = [
        reader.read(prompt, ex.response)
        for ex, prompt in zip(data, [e.prompt for e in data], strict=True)
    ]
    for acts, reading in zip(tokens, readings, strict=True):
        expected = reading.activation(sites[1]).float().numpy()
        assert acts.shape == expected.shape
        np.testing.assert_allclose(acts, expected, rtol=1e-6)
    last = cached_features(reader, data, sites[1], "last", cache)
    np.testing.assert_allclose(last, np.stack([t[-1] for t in tokens]), rtol=1e-2, atol=1e-2)
    mean = cached_features(reader, data, sites[1], "mean", cache)
    assert mean.shape == (6, reader.site_dim(sites[1]))
