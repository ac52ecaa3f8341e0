"""SQLite specifics: schema, filters and paging (also run on PostgreSQL), and clear errors for
files that are not logs."""

from __future__ import annotations

import sqlite3

import pytest
from risklog_builders import make_record

from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.risklog import SQLiteRiskLog, open_risk_log, read_risk_log
from scope_guard.risklog.sqlite_schema import SCHEMA_VERSION


def _day_records():
    # Hours 0..9 of two days, actions cycling; one time given in another zone (same instant).
    records = []
    for day in (1, 2):
        for hour in range(10):
            action = ("allow", "warn", "block")[hour % 3]
            records.append(
                make_record(f"d{day}h{hour}", created=f"2025-03-0{day}T{hour:02d}:00:00+00:00",
                            action=action)
            )  # fmt: skip
    records.append(make_record("zoned", created="2025-03-01T07:30:00-02:00"))  # 09:30 UTC
    return records


@pytest.fixture(params=["sqlite", "postgres"])
def filled(request, tmp_path):
    """The query tests' log; the same queries run on PostgreSQL (the test server)."""
    if request.param == "postgres":
        log = open_risk_log(request.getfixturevalue("pg_url"))
    else:
        log = SQLiteRiskLog(tmp_path / "risk.db")
    for record in _day_records():
        log.write(record)
    yield log
    log.close()


def test_records_time_window_action_order_limit(filled):
    assert filled.count() == 21
    day1 = filled.records(since="2025-03-01", until="2025-03-02", order="asc")
    assert [r.request_id for r in day1][-2:] == ["d1h9", "zoned"]  # 09:00 < 09:30 UTC
    assert len(day1) == 11
    assert filled.count(since="2025-03-02") == 10
    assert filled.count(until="2025-03-01T05:00:00Z") == 5  # until is exclusive
    newest = filled.records(limit=3)
    assert [r.request_id for r in newest] == ["d2h9", "d2h8", "d2h7"]
    blocks = filled.records(action="block", order="asc")
    assert [r.request_id for r in blocks] == ["d1h2", "d1h5", "d1h8", "d2h2", "d2h5", "d2h8"]
    assert filled.count(action="block", since="2025-03-02") == 3


def test_iter_records_pages_without_gaps(filled):
    for order in ("asc", "desc"):
        paged = list(filled.iter_records(order=order, batch_size=4))
        assert paged == filled.records(order=order)
        assert len({r.request_id for r in paged}) == 21
    limited = list(filled.iter_records(limit=7, batch_size=3))
    assert limited == filled.records(limit=7)


def test_same_created_keeps_write_order(tmp_path):
    with SQLiteRiskLog(tmp_path / "risk.db") as log:
        for i in range(5):
            log.write(make_record(f"same-{i}"))
        assert [r.request_id for r in log.iter_records(order="asc", batch_size=2)] == [
            f"same-{i}" for i in range(5)
        ]


def test_bad_query_arguments(filled):
    with pytest.raises(ConfigError, match="order"):
        filled.records(order="sideways")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ISO 8601"):
        filled.records(since="yesterday")


def test_schema_version_recorded_and_reopen_applies_nothing(tmp_path):
    path = tmp_path / "risk.db"
    SQLiteRiskLog(path).close()
    SQLiteRiskLog(path).close()
    with sqlite3.connect(path) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "risk.db"
    SQLiteRiskLog(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    with pytest.raises(ArtifactError, match="upgrade scope-guard"):
        SQLiteRiskLog(path)
    with pytest.raises(ArtifactError, match="upgrade scope-guard"):
        read_risk_log(path)


def test_corrupt_file_gives_artifact_error(tmp_path):
    path = tmp_path / "risk.db"
    path.write_bytes(b"this is not a database, just some bytes\n" * 50)
    with pytest.raises(ArtifactError, match=r"risk\.db is not a readable SQLite"):
        SQLiteRiskLog(path)
    with pytest.raises(ArtifactError, match=r"risk\.db is not a readable SQLite"):
        read_risk_log(path)


def test_other_sqlite_database_is_not_a_risk_log(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE songs (title TEXT)")
    with pytest.raises(ArtifactError, match="not a scope-guard risk log"):
        SQLiteRiskLog(path)
    with pytest.raises(ArtifactError, match="not a scope-guard risk log"):
        read_risk_log(path)


def test_missing_file_for_reading(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        read_risk_log(tmp_path / "nope.db")
    with pytest.raises(ArtifactError, match="does not exist"):
        SQLiteRiskLog(tmp_path / "nope.db", readonly=True)


def test_locked_database_times_out_with_clear_error(tmp_path):
    path = tmp_path / "risk.db"
    SQLiteRiskLog(path).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        with SQLiteRiskLog(path, timeout=0.3) as log, pytest.raises(ArtifactError, match="locked"):
            log.write(make_record())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_bad_created_is_an_input_error(tmp_path):
    from scope_guard.errors import InputError

    with SQLiteRiskLog(tmp_path / "risk.db") as log, pytest.raises(InputError, match="created"):
        log.write(make_record(created="last tuesday"))
