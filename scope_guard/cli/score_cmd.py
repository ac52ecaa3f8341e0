"""``scope-guard score``: assess every exchange of a file and write the scores per row.

Rows are read in any format ``calibrate`` accepts (labels are optional: ``{"id", "response"}``
is a valid row of ours); the guard is a bundle's (``--bundle``) or the weight-free one. Rows go
to the guard in batches, so a bundle's reader reads them in batched forward passes.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scope_guard.cli.console import emit_json, note, out, table
from scope_guard.cli.inputs import open_bundle_reader
from scope_guard.cli.ray_flags import add_ray_arguments, ray_options
from scope_guard.errors import ConfigError, InputError

if TYPE_CHECKING:
    from calibration.data import DataProblem, LabeledDataset, LabeledExample
    from scope_guard.cli.score_output import RowWriter
    from scope_guard.guard import ScopeGuard
    from scope_guard.types import RiskReport

__all__ = ["add_parser", "run"]

ASSESS_BATCH = 32
"""Exchanges per call of ``ScopeGuard.assess_batch`` (the reader splits further by its own
batch size); bounds what one failing batch costs to isolate."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "score",
        help="score a file of exchanges with a bundle (or the weight-free guard)",
        description=(
            "Assesses every row (question, contexts, response; labels optional) and writes, per "
            "row, each risk's score, whether it is calibrated and flagged, the policy's action "
            "and reasons, and the spans of unsupported claims. Without --bundle, the weight-free "
            "guard scores fabrication with the grounding check's uncalibrated heuristic. Exits "
            "1 when the guard failed on or refused some row (those rows carry an error)."
        ),
    )
    p.add_argument("data", help="the exchanges: a file or folder in --format")
    p.add_argument("--format", default="jsonl", help="jsonl (ours), ragtruth, halueval-qa, ...")
    p.add_argument("--bundle", help="a bundle folder written by calibrate (default: no weights)")
    p.add_argument("--out", required=True, help="where to write the scores: .jsonl or .csv")
    p.add_argument("--output-format", choices=["jsonl", "csv"], help="default: by --out's name")
    p.add_argument("--risk-log", help="also log every assessment: .db/.sqlite or .jsonl")
    p.add_argument("--log-text", action="store_true", help="keep raw texts in the risk log")
    p.add_argument("--reader", help="override the bundle's reader location")
    p.add_argument("--dtype", default="auto", help="reader dtype: auto, bfloat16, float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=8, help="reader batch size")
    add_ray_arguments(p)
    p.add_argument(
        "--skip-errors",
        action="store_true",
        help="score the readable rows and write each unreadable one as an error row "
        "(default: refuse the file, naming every bad line)",
    )
    p.add_argument("--limit", type=int, help="score only the first N rows")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from scope_guard.cli.score_output import atomic_output, error_row, output_format, row_writer

    target = Path(args.out)
    _check_paths(target, Path(args.data), args.risk_log)
    fmt = output_format(target, args.output_format)
    dataset, problems = _load(args)
    note(f"loaded {len(dataset)} rows from {args.data} ({args.format})")
    with _open_guard(args) as guard:
        risks = _risks(guard)
        with atomic_output(target) as handle:
            writer = row_writer(fmt, handle, risks)
            for problem in problems:
                where = problem.path if problem.line is None else f"{problem.path}:{problem.line}"
                writer.write(error_row(where, problem.message))
            tally = _score_all(guard, dataset, writer, progress=not args.no_progress)
        summary = {
            "n": len(dataset) + len(problems),
            "scored": len(dataset) - tally.refused,
            "skipped": len(problems),
            "refused": tally.refused,
            "failures": tally.failures,
            "log_failures": guard.stats.log_failures,
            "actions": dict(sorted(tally.actions.items())),
            "risks": risks,
            "guard": "bundle" if args.bundle else "weight-free",
            "stand_in": bool(guard.reader is not None and guard.reader.is_stand_in),
            "out": str(target),
            "format": fmt,
            "risk_log": args.risk_log,
        }
    _report(summary, as_json=args.json)
    return 1 if tally.failures or tally.refused else 0


def _check_paths(target: Path, data: Path, risk_log: str | None) -> None:
    if target.is_dir():
        msg = f"--out {target} is a folder: give a file name ending in .jsonl or .csv"
        raise ConfigError(msg)
    if target.exists() and data.exists() and target.resolve() == data.resolve():
        msg = f"--out {target} is the input itself: choose another file"
        raise ConfigError(msg)
    if risk_log and Path(risk_log).resolve() == target.resolve():
        msg = f"--out {target} is the risk log too: choose two files"
        raise ConfigError(msg)


def _load(args: argparse.Namespace) -> tuple[LabeledDataset, list[DataProblem]]:
    """The readable rows and, with ``--skip-errors``, the problems of the others."""
    from calibration.data import DataError, load_dataset

    try:
        return load_dataset(args.data, args.format, limit=args.limit), []
    except DataError as exc:
        if not args.skip_errors:
            raise
        problems = exc.problems
    note(f"skipping {len(problems)} unreadable rows (--skip-errors)")
    return load_dataset(args.data, args.format, limit=args.limit, strict=False), problems


def _open_guard(args: argparse.Namespace) -> ScopeGuard:
    from scope_guard.guard import ScopeGuard

    options: dict[str, Any] = {
        "risk_log": args.risk_log,
        "log_text": args.log_text,
        "token_risk": False,  # per-token risk is not written: do not pay for it
    }
    on_ray = ray_options(args)  # bad --ray flags, or Ray missing, refused before any work
    if not args.bundle:
        if args.reader or on_ray is not None:
            flag = "--reader" if args.reader else "--ray"
            msg = f"{flag} needs --bundle (the weight-free guard reads no activations)"
            raise ConfigError(msg)
        note("no --bundle: the weight-free guard (uncalibrated grounding heuristic)")
        return ScopeGuard(**options)
    from detectors.bundle import DetectorBundle

    bundle = DetectorBundle.load(args.bundle)
    reader = open_bundle_reader(bundle, args)
    if on_ray is not None and reader is not None:
        from calibration.ray_options import join_ray
        from calibration.ray_reader import RayReader

        join_ray(on_ray)  # actors and a runtime started here end with this process
        reader = RayReader(reader, on_ray)
        note(f"ray: the reader's passes run on {on_ray.actors} actor(s)")
    elif on_ray is not None:
        note("--ray: this bundle reads no activations; nothing runs on Ray")
    return ScopeGuard.from_bundle(args.bundle, reader=reader, **options)


def _risks(guard: ScopeGuard) -> list[str]:
    from scope_guard.risks import Risk

    scored = set(guard.primary) | ({"fabrication"} if guard.heuristic else set())
    return [str(r) for r in Risk if str(r) in scored]


def _exchange(example: LabeledExample) -> dict[str, Any]:
    return {
        "request_id": example.id,
        "question": example.question,
        "contexts": list(example.contexts),
        "prompt": example.prompt,
        "response": example.response,
        "meta": dict(example.meta),
    }


def _assess(guard: ScopeGuard, batch: list[LabeledExample]) -> list[RiskReport | InputError]:
    """Reports in row order; a row the guard refuses as input gets its error instead."""
    exchanges = [_exchange(e) for e in batch]
    try:
        return list(guard.assess_batch(exchanges))
    except InputError as exc:
        if len(exchanges) == 1:
            return [exc]
    results: list[RiskReport | InputError] = []
    for exchange in exchanges:  # isolate the refused row(s)
        try:
            results.append(guard.assess(exchange))
        except InputError as exc:
            results.append(exc)
    return results


@dataclass
class _Tally:
    """What the rows came to: actions, the guard's own failures, rows it refused as input."""

    actions: Counter[str] = field(default_factory=Counter)
    failures: int = 0
    refused: int = 0


def _score_all(
    guard: ScopeGuard, dataset: LabeledDataset, writer: RowWriter, *, progress: bool
) -> _Tally:
    from tqdm.auto import tqdm

    from scope_guard.cli.score_output import error_row, scored_row

    primary = {risk: det.name for risk, det in guard.primary.items()}
    tally = _Tally()
    rows = list(dataset)
    with tqdm(total=len(rows), desc="scoring", unit="ex", disable=not progress) as bar:
        for start in range(0, len(rows), ASSESS_BATCH):
            batch = rows[start : start + ASSESS_BATCH]
            for example, result in zip(batch, _assess(guard, batch), strict=True):
                if isinstance(result, InputError):
                    tally.refused += 1
                    writer.write(error_row(f"row {example.id}", str(result), example.id))
                    continue
                labels = {str(k): v for k, v in example.labels.items()}
                writer.write(scored_row(result, primary, labels))
                tally.actions[result.decision.action.value] += 1
                tally.failures += result.error is not None
            bar.update(len(batch))
    return tally


def _report(summary: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        emit_json(summary)
        return
    rows = [[action, n] for action, n in summary["actions"].items()]
    out(table(["action", "rows"], rows))
    out(
        f"\nscored {summary['scored']} rows ({', '.join(summary['risks'])}); "
        f"{summary['skipped']} unreadable, {summary['refused']} refused by the guard, "
        f"{summary['failures']} failed"
    )
    out(f"scores: {summary['out']}")
    if summary["risk_log"]:
        out(f"risk log: {summary['risk_log']}")
