"""``scope-guard train-sae`` on the miniature reader, and its argument parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scope_guard.cli.main import main
from scope_guard.cli.train_sae_cmd import parse_duration, parse_tokens
from scope_guard.errors import ConfigError
from scope_guard.reader.miniature import _corpus
from scope_guard.sae import load_sae


@pytest.mark.parametrize(
    ("text", "value"), [("2M", 2_000_000), ("500k", 500_000), ("1.5m", 1_500_000), ("64", 64)]
)
def test_parse_tokens(text: str, value: int) -> None:
    assert parse_tokens(text) == value


@pytest.mark.parametrize("text", ["", "2X", "-5", "0", "lots"])
def test_parse_tokens_refuses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_tokens(text)


@pytest.mark.parametrize(("text", "value"), [("30m", 1800.0), ("90s", 90.0), ("1.5h", 5400.0)])
def test_parse_duration(text: str, value: float) -> None:
    assert parse_duration(text) == value


def test_parse_duration_refuses() -> None:
    with pytest.raises(ConfigError):
        parse_duration("soon")


def test_train_sae_command_writes_a_loadable_sae(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "docs"
    data.mkdir()
    for i in range(12):
        (data / f"{i}.txt").write_text(" ".join(_corpus(4, i)), encoding="utf-8")
    out = tmp_path / "sae"
    args = [
        "train-sae",
        "--model",
        "miniature",
        "--site",
        "resid_post@2",
        "--width",
        "64",
        "--data",
        str(data),
        "--tokens",
        "1500",
        "--batch-size",
        "64",
        "--out",
        str(out),
        "--context-size",
        "32",
        "--eval-tokens",
        "200",
        "--explain-tokens",
        "200",
        "--dtype",
        "float32",
        "--lr",
        "5e-3",
        "--json",
    ]
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["out"] == str(out)
    assert payload["tokens_trained"] >= 1500
    assert payload["delta_ce"] is not None
    assert load_sae(out).info.d_sae == 64
    # a second run into the same folder must not silently start over
    assert main(args) == 2
    assert "already holds a training checkpoint" in capsys.readouterr().err


def test_train_sae_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["train-sae", "--model", "miniature", "--out", str(tmp_path / "o"), "--dtype", "float32"]
    assert main([*base, "--site", "resid_post@2", "--width", "64", "--data", str(empty)]) == 2
    assert "no text" in capsys.readouterr().err
    assert main([*base, "--site", "resid_post@2", "--width", "8", "--data", str(empty)]) == 2
    assert (
        main(
            [
                *base,
                "--site",
                "resid_post@2",
                "--width",
                "64",
                "--data",
                str(empty),
                "--tokens",
                "many",
            ]
        )
        == 2
    )
    assert "token count" in capsys.readouterr().err


def test_help_lists_the_budget_and_resume_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train-sae", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--tokens", "--time-budget", "--resume", "--target-l0", "--width", "--site"):
        assert option in text
