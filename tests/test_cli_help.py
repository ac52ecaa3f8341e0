"""Every ``--help`` of every command (sub-commands included) prints, with no stray ``%%``."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from scope_guard.cli.main import build_parser


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and, depth first, every sub-command parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers(sub)


ALL = {p.prog: p for p in parsers(build_parser())}


def test_the_walk_reaches_nested_commands() -> None:
    assert {"scope-guard evaluate", "scope-guard calibrate", "scope-guard log summary"} <= set(ALL)


@pytest.mark.parametrize("prog", sorted(ALL))
def test_help_prints_percent_signs_once(prog: str) -> None:
    text = ALL[prog].format_help()  # a lone "%" in an argument's help would raise here
    assert "%%" not in text
    assert "%(" not in text


def test_evaluate_help_names_the_fpr_targets() -> None:
    assert "1%/5% FPR" in " ".join(ALL["scope-guard evaluate"].format_help().split())
