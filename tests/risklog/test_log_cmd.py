"""``scope-guard log summary|tail|export`` through its own argparse parser, on every log kind
(SQLite, JSONL, and a PostgreSQL URL on the test server)."""

from __future__ import annotations

import argparse
import csv
import json
from datetime import UTC, datetime, timedelta

import pytest
from risklog_builders import fixed_records, make_record

from scope_guard.cli import log_cmd
from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.risklog import follow_records, open_risk_log, read_risk_log
from scope_guard.risklog.record import RiskRecord


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="scope-guard")
    sub = parser.add_subparsers(dest="command", required=True)
    log_cmd.add_parser(sub)
    args = parser.parse_args(["log", *argv])
    return int(args.run(args))


@pytest.fixture(params=["db", "jsonl", "postgres"])
def log_file(request, tmp_path):
    if request.param == "postgres":
        path = request.getfixturevalue("pg_url")
    else:
        path = tmp_path / "my logs #1" / f"risk.{request.param}"  # characters a URI must escape
    with open_risk_log(path) as sink:
        for record in sorted(fixed_records(), key=lambda r: r.request_id):
            sink.write(record)
    return path


def test_summary_json(log_file, capsys):
    assert run_cli("summary", str(log_file), "--json", "--top", "2") == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["n_records"] == 7
    assert payload["overall"]["counts"]["allow"] == 3
    assert [d["day"] for d in payload["per_day"]] == ["2025-03-01", "2025-03-02"]
    assert [w["request_id"] for w in payload["worst"]] == ["r5", "r3"]
    assert payload["n_errors"] == 2
    assert payload["torn_lines"] == 0


def test_summary_reports_torn_jsonl_line(tmp_path, capsys):
    path = tmp_path / "risk.jsonl"
    with open_risk_log(path) as sink:
        sink.write(make_record("ok"))
    with path.open("ab") as handle:
        handle.write(b'{"request_id": "cut sh')
    assert run_cli("summary", str(path), "--json") == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert (payload["n_records"], payload["torn_lines"]) == (1, 1)
    assert "torn line" in captured.err


def test_summary_window(log_file, capsys):
    run_cli("summary", str(log_file), "--json", "--since", "2025-03-02")
    assert json.loads(capsys.readouterr().out)["n_records"] == 3
    run_cli("summary", str(log_file), "--json", "--until", "2025-03-01")  # through that day
    assert json.loads(capsys.readouterr().out)["n_records"] == 4
    run_cli("summary", str(log_file), "--json", "--days", "2")  # 2025 is long gone
    assert json.loads(capsys.readouterr().out)["n_records"] == 0


def test_summary_days_counts_today(tmp_path, capsys):
    path = tmp_path / "risk.db"
    now = datetime.now(UTC)
    with open_risk_log(path) as sink:
        sink.write(make_record("now", created=now.isoformat()))
        sink.write(make_record("old", created=(now - timedelta(days=3)).isoformat()))
    run_cli("summary", str(path), "--json", "--days", "1")
    assert json.loads(capsys.readouterr().out)["n_records"] == 1


def test_summary_text(log_file, capsys):
    assert run_cli("summary", str(log_file)) == 0
    text = capsys.readouterr().out
    for heading in ("actions per day", "scores per day", "worst", "guard errors: 2", "stand-in"):
        assert heading in text
    assert "sycophancy 0.95 >= 0.80" in text


def test_tail_json_newest_last(log_file, capsys):
    assert run_cli("tail", str(log_file), "-n", "3", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["request_id"], r["attempt"]) for r in rows] == [("r5", 1), ("r5", 2), ("r7", 1)]
    assert RiskRecord.model_validate(rows[-1]).error == "bundle failed"


def test_tail_text_one_line_per_record(log_file, capsys):
    assert run_cli("tail", str(log_file), "-n", "2", "--action", "allow") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "r4  #1  allow" in lines[0]
    assert "fabrication=0.30" in lines[0]
    assert "[error: reader OOM]" in lines[0]
    assert "r5  #2  allow" in lines[1]
    assert lines[1].index("fabrication=0.20") < lines[1].index("sycophancy=0.05")


def test_follow_yields_new_and_late_records_once(log_file):
    reader = read_risk_log(log_file)
    try:
        shown = reader.records(limit=2)[::-1]
        with open_risk_log(log_file) as sink:
            sink.write(make_record("new", created="2025-03-02T04:00:00Z"))
            # written late, created before the newest shown record but within the slack
            sink.write(make_record("late", created="2025-03-02T02:59:00Z"))
        batches = list(follow_records(reader, shown, interval=0.001, polls=2))
    finally:
        reader.close()
    assert [[r.request_id for r in b] for b in batches] == [["late", "new"]]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export(log_file, tmp_path, capsys, fmt):
    target = tmp_path / "out" / f"export.{fmt}"
    code = run_cli("export", str(log_file), "--format", fmt, "--out", str(target), "--json")
    assert code == 0
    assert json.loads(capsys.readouterr().out)["n_records"] == 7
    if fmt == "csv":
        with target.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 7
        assert list(rows[0])[:5] == ["request_id", "root_run_id", "attempt", "created", "action"]
        assert {"score_fabrication", "score_sycophancy", "max_score"} <= set(rows[0])
        first = rows[0]
        assert (first["request_id"], first["max_score"], first["score_sycophancy"]) == (
            "r1", "0.2", "0.2",
        )  # fmt: skip
        assert rows[-1]["request_id"] == "r7"
        assert rows[-1]["max_score"] == ""
    else:
        lines = target.read_text(encoding="utf-8").splitlines()
        back = [RiskRecord.model_validate_json(line) for line in lines]
        assert sorted(back, key=lambda r: (r.request_id, r.attempt)) == sorted(
            fixed_records(), key=lambda r: (r.request_id, r.attempt)
        )


def test_export_filters(log_file, tmp_path):
    target = tmp_path / "allow.csv"
    run_cli("export", str(log_file), "--format", "csv", "--out", str(target), "--action", "allow",
            "--since", "2025-03-01T09:00:00Z")  # fmt: skip
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["request_id"], r["attempt"]) for r in rows] == [("r4", "1"), ("r5", "2")]


def test_errors(tmp_path, log_file):
    with pytest.raises(ArtifactError, match="does not exist"):
        run_cli("summary", str(tmp_path / "missing.db"))
    with pytest.raises(ConfigError, match="ISO 8601"):
        run_cli("summary", str(log_file), "--since", "last week")
    with pytest.raises(ConfigError, match="-n must be > 0"):
        run_cli("tail", str(log_file), "-n", "0")
    with pytest.raises(ConfigError, match="the risk log itself"):
        run_cli("export", str(log_file), "--out", str(log_file))
    other = tmp_path / "notes.txt"
    other.write_text("hello", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"SQLite file or a \.jsonl"):
        run_cli("tail", str(other))


def test_help_lists_actions(capsys):
    with pytest.raises(SystemExit):
        run_cli("--help")
    text = capsys.readouterr().out
    assert all(action in text for action in ("summary", "tail", "export"))
