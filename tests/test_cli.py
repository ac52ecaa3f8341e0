"""The command line: features on the stand-in pair, bench on the tiny shape."""

from __future__ import annotations

import json

import pytest

from scope_guard.cli.main import main

PROMPT = "Context: The Eiffel Tower was completed in 1889. Question: when?"
RESPONSE = "It was completed in 1889."


def test_features_miniature_json(capsys):
    assert (
        main(
            [
                "features",
                "--miniature",
                "--prompt",
                PROMPT,
                "--response",
                RESPONSE,
                "--top-k",
                "3",
                "--json",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert payload["stand_in"] is True
    assert "stand-in" in payload["reader"]
    assert "random weights" in captured.err
    assert payload["site"] == "resid_post@3"
    assert "".join(t["token"] for t in payload["tokens"]) == RESPONSE
    assert all(len(t["top"]) <= 3 for t in payload["tokens"])
    assert 1 <= len(payload["overall"]) <= 3
    maxima = [o["max"] for o in payload["overall"]]
    assert maxima == sorted(maxima, reverse=True)
    assert all(o["url"] is None for o in payload["overall"])  # no Neuronpedia page for a stand-in


def test_features_text_output_labels_stand_in(capsys):
    assert main(["features", "--miniature", "--prompt", PROMPT, "--response", RESPONSE]) == 0
    text = capsys.readouterr().out
    assert "STAND-IN" in text
    assert "per token" in text
    assert "overall" in text


def test_features_errors_are_reported_not_raised(capsys, tmp_path):
    code = main(
        [
            "features",
            "--model",
            str(tmp_path),
            "--sae",
            str(tmp_path),
            "--prompt",
            "p",
            "--response",
            "r",
        ]
    )
    assert code == 2
    assert "ArtifactError" in capsys.readouterr().err
    assert (
        main(["features", "--miniature", "--prompt", "p", "--response", "r", "--top-k", "0"]) == 2
    )


def test_features_needs_sae_with_model(capsys, tmp_path):
    assert main(["features", "--model", str(tmp_path), "--prompt", "p", "--response", "r"]) == 2
    assert "--sae is required" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_tiny_json(capsys):
    assert (
        main(
            [
                "bench",
                "--shape",
                "tiny",
                "--tokens",
                "64",
                "--repeats",
                "1",
                "--dtype",
                "float32",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert set(report["results"]) == {"floor", "scope_guard", "scope_guard_narrow", "naive"}
    for result in report["results"].values():
        assert result["n_tokens"] == pytest.approx(64, abs=4)
        assert result["tokens_per_s"] > 0
        assert result["peak_rss_bytes"] > 0
    assert report["results"]["scope_guard_narrow"]["n_latents"] == 256
    assert set(report["ratios"]) >= {"scope_guard_narrow_vs_floor", "scope_guard_narrow_vs_naive"}


def test_help_for_every_command(capsys):
    for command in ("features", "bench"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
    assert "--json" in capsys.readouterr().out
