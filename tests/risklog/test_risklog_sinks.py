"""Each sink stores a record and gives it back unchanged; texts only when the record has them."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest
from risklog_builders import full_record, make_record

from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.risklog import (
    JSONLReader,
    JSONLRiskLog,
    LoggingRiskLog,
    MultiRiskLog,
    NullRiskLog,
    RiskLogSink,
    SQLiteRiskLog,
    open_risk_log,
    read_risk_log,
)
from scope_guard.risklog.record import RiskRecord


@pytest.fixture(params=["db", "jsonl", "postgres"])
def log_path(request, tmp_path):
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return tmp_path / "sub" / f"risk.{request.param}"


@pytest.mark.parametrize("with_text", [True, False])
def test_round_trip_every_field(log_path, with_text):
    record = full_record(with_text=with_text)
    plain = make_record("plain-1")
    with open_risk_log(log_path) as sink:
        sink.write(record)
        sink.write(plain)
    reader = read_risk_log(log_path)
    try:
        back = {r.request_id: r for r in reader.records()}
        assert back == {"full-1": record, "plain-1": plain}
        assert reader.count() == 2
        if not with_text:
            assert all(
                getattr(back["full-1"], k) is None
                for k in ("question", "prompt", "response", "contexts")
            )
    finally:
        reader.close()


def test_sqlite_row_has_no_texts_unless_logged(tmp_path):
    path = tmp_path / "risk.db"
    with SQLiteRiskLog(path) as log:
        log.write(full_record("no-text", with_text=False))
        log.write(full_record("text", with_text=True))
    with sqlite3.connect(path) as conn:
        rows = dict(conn.execute("SELECT request_id, texts FROM risk_records").fetchall())
        columns = [c[1] for c in conn.execute("PRAGMA table_info(risk_records)")]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert rows["no-text"] is None
    assert json.loads(rows["text"])["response"] == full_record().response
    for column in ("request_id", "root_run_id", "attempt", "created", "action", "stand_in"):
        assert column in columns
    assert mode == "wal"


def test_jsonl_line_has_no_texts_unless_logged(tmp_path):
    path = tmp_path / "risk.jsonl"
    with JSONLRiskLog(path) as log:
        log.write(full_record(with_text=False))
    line = json.loads(path.read_text(encoding="utf-8"))
    assert line["response"] is None
    assert line["question"] is None
    assert "Second line" not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("suffix", ["db", "jsonl", "postgres"])
def test_duplicate_request_attempt_keeps_first(request, tmp_path, suffix, caplog):
    path = (
        request.getfixturevalue("pg_url") if suffix == "postgres" else tmp_path / f"risk.{suffix}"
    )
    first = make_record("dup", action="allow")
    second = make_record("dup", action="block")
    other_attempt = make_record("dup", action="warn", attempt=2)
    with open_risk_log(path) as sink:
        for record in (first, second, other_attempt):
            sink.write(record)
    reader = read_risk_log(path)
    got = sorted(reader.records(), key=lambda r: r.attempt)
    reader.close()
    assert got == [first, other_attempt]
    if suffix in ("db", "postgres"):
        assert "kept the first record" in caplog.text
    else:
        assert isinstance(reader, JSONLReader)
        assert reader.stats.duplicates == 1


def test_sqlite_close_is_idempotent_and_write_after_close_fails(tmp_path):
    log = SQLiteRiskLog(tmp_path / "risk.db")
    log.close()
    log.close()
    with pytest.raises(ArtifactError, match="closed"):
        log.write(make_record())


def test_jsonl_close_is_idempotent_and_write_after_close_fails(tmp_path):
    log = JSONLRiskLog(tmp_path / "risk.jsonl")
    log.close()
    log.close()
    with pytest.raises(ArtifactError, match="closed"):
        log.write(make_record())


def test_readonly_sqlite_refuses_writes(tmp_path):
    path = tmp_path / "risk.db"
    SQLiteRiskLog(path).close()
    with SQLiteRiskLog(path, readonly=True) as log, pytest.raises(ArtifactError, match="read-only"):
        log.write(make_record())


def test_logging_sink_one_structured_line(caplog):
    sink = LoggingRiskLog("test.risk")
    record = full_record(with_text=False)
    with caplog.at_level(logging.INFO, logger="test.risk"):
        sink.write(record)
    sink.close()
    sink.close()
    assert len(caplog.records) == 1
    entry = caplog.records[0]
    assert entry.levelno == logging.INFO
    assert entry.name == "test.risk"
    message = entry.getMessage()
    assert message.startswith("risk_record ")
    payload = json.loads(message.removeprefix("risk_record "))
    assert RiskRecord.model_validate(payload) == record
    assert entry.risk_record == payload
    assert "response" not in payload
    assert "Second line" not in message


def test_logging_sink_includes_text_only_when_record_has_it(caplog):
    with caplog.at_level(logging.INFO, logger="scope_guard.risk"):
        LoggingRiskLog().write(full_record(with_text=True))
    assert "Second line" in caplog.records[0].getMessage()


def test_logging_sink_silent_below_level(caplog):
    with caplog.at_level(logging.WARNING, logger="quiet.risk"):
        LoggingRiskLog("quiet.risk", level=logging.DEBUG).write(make_record())
    assert caplog.records == []


class _Broken:
    def __init__(self) -> None:
        self.closed = 0

    def write(self, record: RiskRecord) -> None:
        msg = "disk on fire"
        raise OSError(msg)

    def close(self) -> None:
        self.closed += 1


class _Memory:
    def __init__(self) -> None:
        self.records: list[RiskRecord] = []
        self.closed = 0

    def write(self, record: RiskRecord) -> None:
        self.records.append(record)

    def close(self) -> None:
        self.closed += 1


def test_multi_sink_writes_all_even_when_one_fails():
    broken, memory = _Broken(), _Memory()
    multi = MultiRiskLog(broken, memory)
    with pytest.raises(OSError, match="disk on fire"):
        multi.write(make_record())
    assert len(memory.records) == 1
    multi.close()
    multi.close()
    assert (broken.closed, memory.closed) == (1, 1)


def test_open_risk_log_dispatch(tmp_path):
    memory = _Memory()
    assert open_risk_log(memory) is memory
    assert isinstance(open_risk_log(None), NullRiskLog)
    assert isinstance(open_risk_log("logging"), LoggingRiskLog)
    named = open_risk_log("logging:my.app")
    assert isinstance(named, LoggingRiskLog)
    assert named.logger.name == "my.app"
    for suffix in ("db", "sqlite", "sqlite3", "DB"):
        sink = open_risk_log(tmp_path / f"a.{suffix}")
        assert isinstance(sink, SQLiteRiskLog)
        sink.close()
    sink = open_risk_log(str(tmp_path / "a.jsonl"))
    assert isinstance(sink, JSONLRiskLog)
    assert isinstance(sink, RiskLogSink)
    sink.close()


@pytest.mark.parametrize("target", ["risk.txt", "risk", 42])
def test_open_risk_log_bad_target_lists_options(tmp_path, target):
    value = tmp_path / target if isinstance(target, str) else target
    with pytest.raises(ConfigError, match=r"\.db.*\.jsonl.*logging"):
        open_risk_log(value)
