"""Entry point of the ``scope-guard`` console script.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and ``run(args)``;
heavy imports happen inside ``run`` so that ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import scope_guard.cli.bench_cmd as bench_cmd
import scope_guard.cli.calibrate_cmd as calibrate_cmd
import scope_guard.cli.demo_cmd as demo_cmd
import scope_guard.cli.evaluate_cmd as evaluate_cmd
import scope_guard.cli.features_cmd as features_cmd
import scope_guard.cli.log_cmd as log_cmd
import scope_guard.cli.score_cmd as score_cmd
import scope_guard.cli.serve_cmd as serve_cmd
import scope_guard.cli.train_sae_cmd as train_sae_cmd
from scope_guard._version import __version__
from scope_guard.cli.console import error
from scope_guard.errors import ScopeGuardError

__all__ = ["build_parser", "main"]

_COMMANDS = (
    demo_cmd,
    features_cmd,
    calibrate_cmd,
    evaluate_cmd,
    score_cmd,
    log_cmd,
    bench_cmd,
    train_sae_cmd,
    serve_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scope-guard",
        description="Detect fabrication, sycophancy and deception in RAG answers.",
    )
    parser.add_argument("--version", action="version", version=f"scope-guard {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except ScopeGuardError as exc:
        error(f"{type(exc).__name__}: {exc}")
        return 2
    except KeyboardInterrupt:
        error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
