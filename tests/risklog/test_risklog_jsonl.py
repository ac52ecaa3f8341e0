"""JSONL specifics: torn lines are skipped and counted, and a writer repairs a torn end."""

from __future__ import annotations

import pytest
from risklog_builders import make_record

from scope_guard.errors import ArtifactError
from scope_guard.risklog import JSONLReader, JSONLRiskLog, read_risk_log


def _write(path, n):
    with JSONLRiskLog(path) as log:
        for i in range(n):
            log.write(make_record(f"r{i}", created=f"2025-03-01T00:00:0{i}+00:00"))


def test_torn_last_line_is_skipped_and_counted(tmp_path, caplog):
    path = tmp_path / "risk.jsonl"
    _write(path, 3)
    whole = make_record("torn").model_dump_json().encode()
    with path.open("ab") as handle:
        handle.write(whole[: len(whole) // 2])  # a crash mid-write: no newline
    reader = read_risk_log(path)
    assert isinstance(reader, JSONLReader)
    assert [r.request_id for r in reader.records(order="asc")] == ["r0", "r1", "r2"]
    assert reader.stats.torn == 1
    assert reader.stats.records == 3
    assert "torn line 4" in caplog.text


def test_torn_multibyte_cut_counts_as_torn(tmp_path):
    path = tmp_path / "risk.jsonl"
    _write(path, 1)
    line = make_record("snow", meta={"s": "☃☃☃"}).model_dump_json(by_alias=True).encode()
    cut = line.index("☃".encode()) + 1  # inside the 3-byte character
    with path.open("ab") as handle:
        handle.write(line[:cut])
    reader = JSONLReader(path)
    assert reader.count() == 1
    assert reader.stats.torn == 1


def test_writer_terminates_a_torn_line_before_appending(tmp_path):
    path = tmp_path / "risk.jsonl"
    _write(path, 2)
    with path.open("ab") as handle:
        handle.write(b'{"request_id": "half')
    with JSONLRiskLog(path) as log:  # a restarted process appends after the crash
        log.write(make_record("after-crash", created="2025-03-02T00:00:00+00:00"))
        assert [r.request_id for r in log.records()] == ["after-crash", "r1", "r0"]
        assert log.stats.torn == 1


def test_valid_json_that_is_not_a_record_is_an_error(tmp_path):
    path = tmp_path / "risk.jsonl"
    _write(path, 1)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"hello": "world"}\n')
    with pytest.raises(ArtifactError, match="line 2"):
        JSONLReader(path).records()


def test_blank_lines_are_ignored(tmp_path):
    path = tmp_path / "risk.jsonl"
    _write(path, 2)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n\n")
    reader = JSONLReader(path)
    assert reader.count() == 2
    assert reader.stats.torn == 0


def test_filters_match_sqlite_semantics(tmp_path):
    path = tmp_path / "risk.jsonl"
    _write(path, 5)
    reader = JSONLReader(path)
    assert [r.request_id for r in reader.records(limit=2)] == ["r4", "r3"]
    assert reader.count(since="2025-03-01T00:00:01Z", until="2025-03-01T00:00:03Z") == 2
    assert list(reader.iter_records(order="asc", limit=1)) == reader.records(order="asc")[:1]
