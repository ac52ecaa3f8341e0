"""No record is lost for its content: what UTF-8 or JSON cannot hold is stored escaped."""

from __future__ import annotations

import logging
import math
import threading

import pytest
from risklog_builders import make_record

from scope_guard.errors import ArtifactError
from scope_guard.guard import ScopeGuard
from scope_guard.risklog import (
    JSONLRiskLog,
    LoggingRiskLog,
    SQLiteRiskLog,
    open_risk_log,
    read_risk_log,
)
from scope_guard.risklog.storable import escape_text, storable

SURROGATE_RESPONSE = "A ticket costs 7.20 euros.\ud800"


@pytest.fixture(params=["db", "jsonl"])
def log_path(request, tmp_path):
    return tmp_path / f"risk.{request.param}"


def _records(path):
    reader = read_risk_log(path)
    try:
        return reader.records(order="asc")
    finally:
        reader.close()


def test_a_lone_surrogate_with_log_text_is_stored_escaped(log_path):
    with ScopeGuard(risk_log=log_path, log_text=True) as guard:
        guard.assess({"contexts": ["A ticket costs 5 euros."], "response": SURROGATE_RESPONSE})
        assert guard.stats.log_failures == 0
    (record,) = _records(log_path)
    assert record.response == "A ticket costs 7.20 euros.\\ud800"
    assert record.response_hash == guard.log_key.hash(SURROGATE_RESPONSE)  # of the original


def test_surrogates_in_meta_keys_and_values_are_stored(log_path):
    meta = {"user\udcff": "n\udc80me", "list": ["\ud83d"], "ok": "é ☃"}
    with ScopeGuard(risk_log=log_path) as guard:
        guard.assess({"contexts": ["x"], "response": "Fine.", "meta": meta})
        assert guard.stats.log_failures == 0
    (record,) = _records(log_path)
    assert record.meta == {"user\\udcff": "n\\udc80me", "list": ["\\ud83d"], "ok": "é ☃"}


def test_records_built_directly_with_odd_values_are_written_to_every_sink(log_path, caplog):
    class Odd:
        def __repr__(self):
            return "<Odd \udc00>"

    class BrokenRepr:
        def __repr__(self):
            raise RuntimeError

    record = make_record(
        "odd\ud800",
        meta={
            "object": Odd(),
            "broken": BrokenRepr(),
            "nan": math.nan,
            "inf": -math.inf,
            "big": 1 << 100,
            "set": {3, 1},
            1: "int key",
            "deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
        },
        scores={"fabrication": math.nan, "sycophancy": math.inf},
        reasons=["why \udfff"],
        error="ValueError: \ud801",
    )
    assert record.request_id == "odd\\ud800"
    assert record.meta["object"] == "<Odd \\udc00>"
    assert record.meta["broken"] == "<unrepresentable BrokenRepr>"
    assert record.meta["nan"] == "nan"
    assert record.meta["inf"] == "-inf"
    assert record.meta["big"] == hex(1 << 100)
    assert record.meta["set"] == [1, 3]
    assert record.meta["1"] == "int key"
    with open_risk_log(log_path) as sink:
        sink.write(record)
    (back,) = _records(log_path)
    assert back.meta == record.meta
    assert math.isnan(back.scores["fabrication"])
    assert back.scores["sycophancy"] == math.inf
    with caplog.at_level(logging.INFO, logger="scope_guard.risk"):
        LoggingRiskLog().write(record)
    (line,) = [r for r in caplog.records if r.name == "scope_guard.risk"]
    assert "NaN" in line.getMessage()
    assert line.risk_record["meta"]["nan"] == "nan"


def test_escaping_helpers():
    assert escape_text("plain ☃") == "plain ☃"
    assert escape_text("a\ud800b") == "a\\ud800b"
    assert storable((1, 2.5, None, True)) == [1, 2.5, None, True]
    cycle: list = []
    cycle.append(cycle)
    assert "nested deeper" in str(storable(cycle))  # a cycle ends at the depth bound


def test_a_failed_insert_releases_the_write_lock(tmp_path, monkeypatch):
    """A value sqlite3 cannot bind used to leave BEGIN IMMEDIATE open: every writer then waited
    for the lock until it timed out."""
    import scope_guard.risklog.sqlite as sqlite_module

    path = tmp_path / "risk.db"
    first = SQLiteRiskLog(path)
    second = SQLiteRiskLog(path, timeout=2.0)
    real_to_row = sqlite_module.to_row
    # A row with a raw surrogate fails inside the transaction, when sqlite3 encodes it.
    monkeypatch.setattr(sqlite_module, "to_row", lambda r: ("b\ud800", *real_to_row(r)[1:]))
    with pytest.raises(UnicodeEncodeError):
        first.write(make_record("bad"))
    monkeypatch.setattr(sqlite_module, "to_row", real_to_row)
    done = threading.Event()

    def write_other():
        second.write(make_record("after"))
        done.set()

    thread = threading.Thread(target=write_other)
    thread.start()
    thread.join(timeout=10)
    assert done.is_set()
    first.write(make_record("again"))
    assert [r.request_id for r in first.records(order="asc")] == ["after", "again"]
    first.close()
    second.close()


def test_jsonl_sink_and_reader_round_trip_escaped_values(tmp_path):
    path = tmp_path / "risk.jsonl"
    with JSONLRiskLog(path) as sink:
        sink.write(make_record("r\udc00", meta={"k": "\ud800"}))
    (record,) = _records(path)
    assert (record.request_id, record.meta) == ("r\\udc00", {"k": "\\ud800"})
    with pytest.raises(ArtifactError):
        SQLiteRiskLog(path)  # not a database: still a clear error, unchanged
