"""``scope-guard log``: read a risk log (SQLite, JSONL or a PostgreSQL URL): ``summary``,
``tail``, ``export``. A URL is shown everywhere without its password."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scope_guard.cli.console import emit_json, note, out, table

if TYPE_CHECKING:
    from scope_guard.risklog import LogSummary, RiskLogReader, RiskRecord, WorstRecord

__all__ = ["add_parser", "run"]

_LOG_HELP = "the risk log (.db, .sqlite, .sqlite3, .jsonl, or a postgresql:// URL)"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "log",
        help="read a risk log: summary, tail, export",
        description=(
            "Reads a risk log written by the guard (a SQLite .db/.sqlite file, a .jsonl file, or "
            "a postgresql:// URL; give its password through PGPASSWORD or ~/.pgpass). "
            "Times are UTC; --since is inclusive, --until exclusive (a bare date means the "
            "end of that day)."
        ),
    )
    actions = p.add_subparsers(dest="log_command", metavar="ACTION", required=True)

    s = actions.add_parser("summary", help="action rates, score distributions per day, worst")
    s.add_argument("path", help=_LOG_HELP)
    window = s.add_mutually_exclusive_group()
    window.add_argument("--since", help="first day or time to include (2025-01-31)")
    window.add_argument("--days", type=int, help="only the last N UTC days, today included")
    s.add_argument("--until", help="day or time to stop at")
    s.add_argument("--top", type=int, default=10, help="how many worst requests to list")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    t = actions.add_parser("tail", help="the most recent records, one line each")
    t.add_argument("path", help=_LOG_HELP)
    t.add_argument("-n", "--lines", type=int, default=20, help="how many records to show")
    t.add_argument("--action", help="only records with this action (allow, warn, ...)")
    t.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    t.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    t.add_argument("--json", action="store_true", help="JSON (one object per line with -f)")

    e = actions.add_parser("export", help="write records to a JSONL or CSV file")
    e.add_argument("path", help=_LOG_HELP)
    e.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", dest="fmt")
    e.add_argument("--out", required=True, help="the file to write (replaced if present)")
    e.add_argument("--since", help="first day or time to include")
    e.add_argument("--until", help="day or time to stop at")
    e.add_argument("--action", help="only records with this action")
    e.add_argument("--json", action="store_true", help="report what was written as JSON")
    p.set_defaults(run=run)


def _since(text: str | None) -> datetime | None:
    from scope_guard.risklog import parse_time

    return parse_time(text) if text else None


def _until(text: str | None) -> datetime | None:
    """A bare date means "through that day": the next midnight, exclusive."""
    from scope_guard.risklog import parse_time

    if not text:
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        return parse_time(text)
    return parse_time(day + timedelta(days=1))


def _positive(name: str, value: int | float | None) -> None:
    from scope_guard.errors import ConfigError

    if value is not None and value <= 0:
        msg = f"{name} must be > 0, got {value}"
        raise ConfigError(msg)


def _shown(target: str) -> str:
    """How the log is named in output: a URL without its password, a path as given."""
    from scope_guard.risklog.postgres_url import is_postgres_url, redact_url

    return redact_url(target) if is_postgres_url(target) else target


def run(args: argparse.Namespace) -> int:
    from scope_guard.risklog import read_risk_log
    from scope_guard.risklog.postgres_url import has_password, is_postgres_url

    if is_postgres_url(args.path) and has_password(args.path):
        note("the URL's password is visible to other users of this machine (ps): prefer "
             "PGPASSWORD or ~/.pgpass")  # fmt: skip
    commands = {"summary": _summary, "tail": _tail, "export": _export}
    with contextlib.closing(read_risk_log(args.path)) as reader:
        return commands[args.log_command](reader, args)


# -- summary ------------------------------------------------------------------------------------
def _summary(reader: RiskLogReader, args: argparse.Namespace) -> int:
    from scope_guard.risklog import JSONLReader, summarize

    _positive("--days", args.days)
    if args.top < 0:
        from scope_guard.errors import ConfigError

        msg = f"--top must be >= 0, got {args.top}"
        raise ConfigError(msg)
    since = _since(args.since)
    if args.days is not None:
        today = datetime.now(UTC).date()
        since = datetime.combine(today - timedelta(days=args.days - 1), datetime.min.time(), UTC)
    summary = summarize(reader.iter_records(since, _until(args.until), order="asc"), top=args.top)
    torn = reader.stats.torn if isinstance(reader, JSONLReader) else 0
    if torn:
        note(f"skipped {torn} torn line(s) in {args.path} (a write cut short by a crash)")
    if args.json:
        emit_json({"path": _shown(args.path), "torn_lines": torn, **summary.to_json()})
        return 0
    _print_summary(_shown(args.path), summary)
    return 0


def _utc(created: str) -> str:
    """``created`` as UTC to the second, so columns line up whatever zone the writer used."""
    from scope_guard.errors import ConfigError
    from scope_guard.risklog import parse_time

    try:
        return parse_time(created).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ConfigError:
        return created


def _pct(rate: float) -> str:
    return f"{100 * rate:.1f}%"


def _why(worst: WorstRecord) -> str:
    return "; ".join(worst.reasons) or "-"


def _print_summary(path: str, s: LogSummary) -> None:
    span = f", {s.first} .. {s.last}" if s.n_records else ""
    out(f"risk log: {path} ({s.n_records} records{span})")
    if not s.n_records:
        return
    actions = list(s.overall.counts)
    out("\nactions (what the policy recommended)")
    rows = [[a, s.overall.counts[a], _pct(s.overall.rates[a])] for a in actions]
    out(table(["action", "count", "rate"], rows))
    out("\noutcomes (what was served; retry: rejected, then regenerated)")
    rows = [[o, n, _pct(n / s.n_records)] for o, n in s.outcomes.items()]
    out(table(["outcome", "count", "rate"], rows))
    out("\nactions per day (UTC)")
    rows = [[d.day, d.total, *(_pct(d.rates[a]) for a in actions)] for d in s.per_day]
    out(table(["day", "total", *actions], rows))
    if s.scores:
        out("\nscores per day")
        rows = [
            [x.day, x.risk, x.count, *(f"{v:.3f}" for v in (x.mean, x.p50, x.p90, x.p99, x.max))]
            for x in s.scores
        ]
        out(table(["day", "risk", "n", "mean", "p50", "p90", "p99", "max"], rows))
    if s.worst:
        out(f"\nworst {len(s.worst)}")
        rows = [
            [_utc(w.created), w.request_id, w.attempt, w.action, w.risk, f"{w.score:.3f}", _why(w)]
            for w in s.worst
        ]
        out(table(["created", "request", "attempt", "action", "risk", "score", "reasons"], rows))
    out(f"\nguard errors: {s.n_errors}")
    for message, n in list(s.errors.items())[:5]:
        out(f"  {n} x {message}")
    if s.n_stand_in:
        out(
            f"stand-in: {s.n_stand_in} records scored by the miniature reader (scores mean nothing)"
        )


# -- tail ---------------------------------------------------------------------------------------
def _line(record: RiskRecord) -> str:
    top = sorted(record.scores.items(), key=lambda kv: -kv[1])[:3]
    scores = " ".join(f"{risk}={value:.2f}" for risk, value in top) or "-"
    flags = (" [stand-in]" if record.stand_in else "") + (
        f" [error: {record.error}]" if record.error else ""
    )
    head = f"{_utc(record.created)}  {record.request_id}  #{record.attempt}  {record.action:<10}"
    return f"{head}  {scores}{flags}"


def _show(records: list[RiskRecord], *, json_lines: bool) -> None:
    for record in records:
        out(record.model_dump_json() if json_lines else _line(record))


def _tail(reader: RiskLogReader, args: argparse.Namespace) -> int:
    _positive("-n", args.lines)
    _positive("--interval", args.interval)
    latest = reader.records(action=args.action, limit=args.lines, order="desc")[::-1]
    if args.json and not args.follow:
        emit_json([r.model_dump(mode="json") for r in latest])
        return 0
    _show(latest, json_lines=args.json)
    if args.follow:
        from scope_guard.risklog import follow_records

        for batch in follow_records(reader, latest, interval=args.interval, action=args.action):
            _show(batch, json_lines=args.json)
    return 0


# -- export -------------------------------------------------------------------------------------
_CSV_HEAD = ("request_id", "root_run_id", "attempt", "created", "action", "stand_in", "error")
_CSV_TAIL = ("n_flagged_claims", "n_contexts", "reasons", "question_hash", "prompt_hash")
_CSV_TAIL2 = ("response_hash", "versions")


def _csv_row(r: RiskRecord) -> dict[str, Any]:
    """A flat row (texts, detectors and claims stay in the JSONL export, which is lossless)."""
    row = r.model_dump(include={*_CSV_HEAD, *_CSV_TAIL, *_CSV_TAIL2})
    row.update(
        stand_in=int(r.stand_in),
        max_score=max(r.scores.values(), default=None),
        n_flagged_claims=len(r.flagged_claims),
        reasons="; ".join(r.reasons),
        versions=json.dumps(r.versions, sort_keys=True),
    )
    row.update({f"score_{k}": v for k, v in r.scores.items()})
    row.update({f"ms_{k}": v for k, v in r.timings_ms.items()})
    return row


def _write_csv(handle: Any, records: list[RiskRecord]) -> None:
    scores = sorted({f"score_{k}" for r in records for k in r.scores})
    stages = sorted({f"ms_{k}" for r in records for k in r.timings_ms})
    header = [*_CSV_HEAD, "max_score", *scores, *stages, *_CSV_TAIL, *_CSV_TAIL2]
    writer = csv.DictWriter(handle, fieldnames=header)
    writer.writeheader()
    writer.writerows(_csv_row(r) for r in records)


def _export(reader: RiskLogReader, args: argparse.Namespace) -> int:
    from scope_guard.errors import ConfigError
    from scope_guard.risklog.postgres_url import is_postgres_url

    target = Path(args.out)
    if args.out == args.path or target.resolve() == Path(args.path).resolve():
        msg = f"--out {_shown(args.out)} is the risk log itself: choose another file"
        raise ConfigError(msg)
    if is_postgres_url(args.out):
        msg = f"--out {_shown(args.out)} is a database URL: export writes a JSONL or CSV file"
        raise ConfigError(msg)
    records = reader.records(_since(args.since), _until(args.until), args.action, order="asc")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            if args.fmt == "csv":
                _write_csv(handle, records)
            else:
                handle.writelines(r.model_dump_json() + "\n" for r in records)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if args.json:
        payload = {"path": _shown(args.path), "out": str(target), "format": args.fmt}
        emit_json({**payload, "n_records": len(records)})
    else:
        out(f"exported {len(records)} records to {target} ({args.fmt})")
    return 0
