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
from calibration.data import LabeledDataset, LabeledExample, prompt_of
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


@pytest.mark.filterwarnings("error")
def test_ridge_on_constant_features_scores_zero() -> None:
    y = np.tile([0, 1], 10)
    ridge = _Ridge(np.ones((20, 5)), y)
    assert ridge.scores(np.random.default_rng(0).normal(size=(4, 5))).tolist() == [[0.0] * 6] * 4


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
    from benchmarks.behaviours.features import extract, load_features, pool
    from calibration.extract import extract_features
    from scope_guard.reader import Reader
    from scope_guard.sites import Site

    sites = [Site.parse("resid_post@1"), Site.parse("resid_post@2")]
    reader = Reader.miniature(sites)
    data = LabeledDataset(
        [_example(i, f"answer number {i} " * (1 + i % 3), i % 2, f"prompt {i}") for i in range(6)]
    )
    cache = tmp_path / "features"
    assert extract(reader, [data, data], cache_dir=cache, progress=False) == 6
    assert extract(reader, [data], cache_dir=cache, progress=False) == 0
    # calibrate's extraction finds the pooled mean+max and the per-token activations cached.
    feats = extract_features(
        data, reader=reader, raw_sites=sites, token_sites=sites, cache_dir=cache, progress=False
    )
    assert feats.n_computed == 0
    loaded = load_features(reader, data, cache)
    readings = [reader.read(prompt_of(ex), ex.response) for ex in data]
    for site in sites:
        np.testing.assert_allclose(feats.raw[site], pool(loaded, site, "mean_max"), rtol=1e-6)
        expected = [r.activation(site).float().numpy() for r in readings]
        for acts, exp in zip(loaded.tokens[site], expected, strict=True):
            assert acts.shape == exp.shape
            np.testing.assert_allclose(acts, exp, rtol=1e-6)
        np.testing.assert_allclose(pool(loaded, site, "last"), np.stack([e[-1] for e in expected]))
        mean = pool(loaded, site, "mean")
        assert mean.shape == (6, reader.site_dim(site))
        np.testing.assert_allclose(mean, np.stack([e.mean(0) for e in expected]), rtol=1e-5)


def test_extract_in_parts_reads_each_example_once(tmp_path: Path) -> None:
    from benchmarks.behaviours.features import extract
    from scope_guard.reader import Reader

    reader = Reader.miniature(["resid_post@1"])
    data = LabeledDataset([_example(i, f"reply {i}", i % 2, f"prompt {i}") for i in range(8)])
    cache = tmp_path / "features"
    first = extract(reader, [data], cache_dir=cache, progress=False, part=(0, 2))
    second = extract(reader, [data], cache_dir=cache, progress=False, part=(1, 2))
    assert first + second == 8
    assert 0 < first < 8
    assert extract(reader, [data], cache_dir=cache, progress=False) == 0


def test_pool_tokens_by_hand() -> None:
    from benchmarks.behaviours.features import pool_tokens

    tokens = [np.array([[1.0, 2.0], [3.0, 0.0]]), np.zeros((0, 2))]
    assert pool_tokens(tokens, "mean").tolist() == [[2.0, 1.0], [0.0, 0.0]]
    assert pool_tokens(tokens, "last").tolist() == [[3.0, 0.0], [0.0, 0.0]]
    assert pool_tokens(tokens, "mean_max").tolist() == [[2.0, 1.0, 3.0, 2.0], [0.0] * 4]
    assert pool_tokens(tokens, "mean+last").tolist() == [[2.0, 1.0, 3.0, 0.0], [0.0] * 4]
    with pytest.raises(ValueError, match="unknown pooling 'median'"):
        pool_tokens(tokens, "median")


def test_select_within_a_family_chooses_on_training_groups_only() -> None:
    from benchmarks.behaviours.probes import select

    X, y, groups = _planted(signal=1.0)
    rng = np.random.default_rng(7)
    strong = X.copy()
    strong[:, 0] += 2.0 * (2 * y - 1)
    cands = {"weak": X, "noise": rng.normal(size=X.shape), "strong": strong}
    result = nested_cv(cands, y, groups, n_outer=4, n_inner=3)
    assert result.selected == ["strong"] * 4
    family = select(result, ["noise", "weak"])
    assert family.per_fold == ["weak"] * 4
    np.testing.assert_array_equal(family.probs, result.candidates["weak"].probs)
    whole = select(result, list(cands))
    assert whole.per_fold == result.selected
    np.testing.assert_array_equal(whole.probs, result.selected_probs)
    # The choice follows the training-side AUROC: make "noise" win it in fold 0 only.
    result.candidates["noise"].inner_auroc[0] = 1.0
    rigged = select(result, ["noise", "weak"])
    assert rigged.per_fold == ["noise", "weak", "weak", "weak"]
    test0 = result.test_folds[0]
    np.testing.assert_array_equal(rigged.probs[test0], result.candidates["noise"].probs[test0])
    with pytest.raises(KeyError, match="missing"):
        select(result, ["missing"])


def _tiny_sae(d_model: int, n_latents: int = 24):
    import torch

    from scope_guard.sae import JumpReLUSAE, SAEInfo
    from scope_guard.sites import Site

    g = torch.Generator().manual_seed(0)
    return JumpReLUSAE(
        torch.randn(d_model, n_latents, generator=g) * 0.5,
        torch.randn(n_latents, d_model, generator=g),
        torch.zeros(n_latents),
        torch.zeros(d_model),
        torch.full((n_latents,), 0.1),
        info=SAEInfo(
            d_model=d_model, d_sae=n_latents, site=Site.parse("resid_post@2"), source="test"
        ),
    )


def test_sweep_candidates_families_and_names() -> None:
    from benchmarks.behaviours.candidates import build_sweep, joined_name, sites_of
    from benchmarks.behaviours.features import SetFeatures
    from scope_guard.sites import Site

    sites = [Site.parse("resid_post@1"), Site.parse("resid_post@2")]
    rng = np.random.default_rng(0)
    tokens = {s: [rng.normal(size=(k, 4)).astype(np.float32) for k in (1, 3, 2)] for s in sites}
    mean_max = {
        s: np.stack([np.concatenate([t.mean(0), t.max(0)]) for t in tokens[s]]) for s in sites
    }
    feats = SetFeatures(mean_max, tokens)
    sweep = build_sweep(feats, sites, _tiny_sae(4), sites[1])
    assert joined_name(sites) == "resid_post@1+2"
    assert sites_of("resid_post@1+2/mean") == sites
    assert sites_of("resid_post@2/last") == [sites[1]]
    assert sweep.families["raw_at_sae_site"] == [
        f"resid_post@2/{p}" for p in ("mean", "last", "mean_max", "mean+last")
    ]
    assert sweep.families["sae"] == [
        f"sae:resid_post@2/{p}" for p in ("mean", "last", "mean_max", "mean+last")
    ]
    assert sweep.families["all"] == sweep.families["raw"] + sweep.families["sae"]
    both = sweep.features["resid_post@1+2/mean+last"]
    assert both.shape == (3, 16)
    np.testing.assert_allclose(both[:, 8:12], sweep.features["resid_post@2/mean"])
    np.testing.assert_allclose(sweep.features["resid_post@1/last"][1], tokens[sites[0]][1][-1])
    assert sweep.features["sae:resid_post@2/mean_max"].shape == (3, 48)
    assert (sweep.features["sae:resid_post@2/mean"] >= 0).all()
    # The reconstruction and the error add up to the activations, pooled alike.
    assert sweep.families["sae_parts"] == [
        f"sae-{part}:resid_post@2/{p}"
        for part in ("reconstruction", "error")
        for p in ("mean", "mean_max")
    ]
    whole = sweep.features["sae-reconstruction:resid_post@2/mean"]
    whole = whole + sweep.features["sae-error:resid_post@2/mean"]
    np.testing.assert_allclose(whole, sweep.features["resid_post@2/mean"], rtol=1e-5, atol=1e-6)
    assert not set(sweep.families["sae_parts"]) & set(sweep.families["all"])
    no_sae = build_sweep(feats, sites)
    assert no_sae.families["sae"] == []
    assert no_sae.families["all"] == no_sae.families["raw"]


def test_evaluate_set_and_tables_end_to_end(tmp_path: Path) -> None:
    import argparse

    from benchmarks.behaviours.tables import render
    from benchmarks.detect_behaviours import _most_selected_site, evaluate_set
    from scope_guard.reader import Reader
    from scope_guard.sites import Site

    sites = [Site.parse("resid_post@1"), Site.parse("resid_post@2")]
    reader = Reader.miniature(sites)
    views = ["more", "less", "some", "fewer", "many", "no"]
    items = [
        {
            "question": f"I am user {i}. I want {views[i % 6]} things. Which?\n (A) More\n"
            " (B) Less\n\nAnswer:",
            "answer_matching_behavior": " (A)" if i % 3 else " (B)",
            "answer_not_matching_behavior": " (B)" if i % 3 else " (A)",
        }
        for i in range(24)
    ]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items), "utf-8")
    spec = BehaviourSet(
        "tiny", "anthropic-sycophancy", "s.jsonl", Risk.SYCOPHANCY, units=20, curve=(12,)
    )
    data, _ = load_set(spec, tmp_path)
    args = argparse.Namespace(
        cache_dir=tmp_path / "cache",
        outer_folds=3,
        inner_folds=2,
        seed=0,
        n_bootstrap=20,
        no_progress=True,
        data_root=tmp_path,
    )
    sae = _tiny_sae(reader.site_dim(sites[1]))
    out = evaluate_set(spec, data, reader, sae, sites[1], args)
    assert set(out["selected"]) == {"all", "raw", "raw_at_sae_site", "sae"}
    for family, sel in out["selected"].items():
        assert len(sel["per_fold"]) == 3
        assert set(sel["per_fold"]) <= set(out["families"][family])
        assert 0.0 <= sel["auroc"] <= 1.0
    assert len(out["sweep"]) == 2 * 4 + 3
    assert len(out["sae_sweep"]) == 4
    gap = out["sae_probe"]
    assert gap["gap_raw_minus_sae"] == pytest.approx(
        gap["raw_selected_auroc_same_site"] - gap["selected_auroc"], abs=1e-4
    )
    assert set(out["baselines"]) >= {"length", "letter"}
    assert len(out["sae_parts"]) == 4
    assert set(gap["per_pooling"]["mean_max"]) >= {"reconstruction_auroc", "error_auroc"}
    assert _most_selected_site(["resid_post@1+2/mean", "resid_post@2/last"]) == sites[1]
    (point,) = out["learning_curve"]
    assert point["units"] == 12
    assert point["n_examples"] == 24
    assert set(point["selected"]) == set(out["selected"])
    out["subsample"] = {"units_total": 24, "units_drawn": 20, "kept": None}
    (tmp_path / "behaviours_tiny.json").write_text(json.dumps(out), encoding="utf-8")
    text = render(tmp_path, ["tiny"])
    assert "**selected: all candidates**" in text
    assert "ridge SAE resid_post@2/mean_max (24 latents)" in text
    assert "| tiny | mean_max | " in text  # where the gap comes from
    assert "diagnostic: ridge on the SAE's error resid_post@2/mean" in text
    assert "| tiny | 12 | 24 |" in text  # the learning curve
    assert "| tiny | 20 | 40 |" in text


def test_curve_rows_are_the_smaller_prefix(tmp_path: Path) -> None:
    from benchmarks.behaviours.sets import curve_rows

    rows = [
        {
            "question": f"I am user {i}. I like things. Which?\n (A) More\n (B) Less\n\nAnswer:",
            "answer_matching_behavior": " (A)",
            "answer_not_matching_behavior": " (B)",
        }
        for i in range(30)
    ]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    spec = BehaviourSet("s", "anthropic-sycophancy", "s.jsonl", Risk.SYCOPHANCY, 20, curve=(8,))
    data, _ = load_set(spec, tmp_path)
    small, _ = load_set(
        BehaviourSet("s", "anthropic-sycophancy", "s.jsonl", Risk.SYCOPHANCY, 20, 8), tmp_path
    )
    picked = curve_rows(spec, data, tmp_path)[8]
    assert len(picked) == 16
    assert picked == sorted(picked)
    assert {data[i].id for i in picked} == {e.id for e in small}
