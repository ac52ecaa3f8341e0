"""PostgreSQL specifics, on the real test server: the schema matches SQLite's, migrations and
versions, hostile values, the shared key, retries and timeouts, and passwords never shown."""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time

import pytest
from risklog_builders import full_record, make_record, worker_record

from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.risklog import KEY_ENV, SQLiteRiskLog, open_risk_log, read_risk_log
from scope_guard.risklog.keys import resolve_log_key
from scope_guard.risklog.postgres_url import has_password, redact_url, scrub

psycopg = pytest.importorskip("psycopg")
from scope_guard.risklog import postgres_schema, sqlite_schema  # noqa: E402
from scope_guard.risklog.postgres import PostgresRiskLog  # noqa: E402


def _sql(url: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def test_same_columns_and_versions_as_sqlite(pg_url, tmp_path):
    assert postgres_schema.SCHEMA_VERSION == sqlite_schema.SCHEMA_VERSION
    PostgresRiskLog(pg_url).close()
    PostgresRiskLog(pg_url).close()  # reopening a current log applies nothing
    pg_columns = [
        c
        for (c,) in _sql(
            pg_url,
            "SELECT column_name FROM information_schema.columns WHERE table_name = "
            "'risk_records' AND table_schema = current_schema() ORDER BY ordinal_position",
        )
    ]
    SQLiteRiskLog(tmp_path / "risk.db").close()
    with sqlite3.connect(tmp_path / "risk.db") as conn:
        sqlite_columns = [c[1] for c in conn.execute("PRAGMA table_info(risk_records)")]
    assert pg_columns == sqlite_columns
    versions = _sql(pg_url, "SELECT version FROM scope_guard_schema_version ORDER BY version")
    assert [v for (v,) in versions] == list(range(1, postgres_schema.SCHEMA_VERSION + 1))


def test_summary_indexes_serve_the_time_window(pg_url):
    with PostgresRiskLog(pg_url) as log:
        for i in range(30):
            log.write(worker_record(0, i))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # 30 rows: force the planner to choose
        for where, index in [
            ("created_ts >= 1 AND created_ts < 2", "idx_risk_records_created"),
            ("action = 'allow' AND created_ts >= 1", "idx_risk_records_action"),
        ]:
            plan = conn.execute(
                f"EXPLAIN SELECT * FROM risk_records WHERE {where} ORDER BY created_ts, id"
            ).fetchall()
            assert index in " ".join(line for (line,) in plan)


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_first_opens_migrate_once(pg_url, round_):
    """Eight threads open one new log at once (each its own pool, as processes would)."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def opener() -> None:
        barrier.wait()
        try:
            PostgresRiskLog(pg_url).close()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _sql(pg_url, "SELECT version FROM scope_guard_schema_version") == [(1,)]


def test_newer_schema_and_foreign_table_are_refused(pg_url, pg_server):
    PostgresRiskLog(pg_url).close()
    _sql(pg_url, "INSERT INTO scope_guard_schema_version (version) VALUES (%s)", (99,))
    for opener in (PostgresRiskLog, read_risk_log):
        with pytest.raises(ArtifactError, match="upgrade scope-guard"):
            opener(pg_url)
    other = pg_server.create_database()
    _sql(other, "CREATE TABLE risk_records (title TEXT)")
    with pytest.raises(ArtifactError, match="not a scope-guard risk log"):
        open_risk_log(other)


def test_readonly(pg_url):
    with pytest.raises(ArtifactError, match="holds no scope-guard risk log"):
        read_risk_log(pg_url)
    with open_risk_log(pg_url) as sink:
        sink.write(make_record("one"))
    reader = read_risk_log(pg_url)
    try:
        assert isinstance(reader, PostgresRiskLog)
        with pytest.raises(ArtifactError, match="read-only"):
            reader.write(make_record("two"))
        with pytest.raises(ArtifactError, match="read-only"):
            reader.stored_log_key()
        with pytest.raises(ArtifactError, match="read-only transaction"):
            reader._run(lambda conn, _a: conn.execute("DELETE FROM risk_records"))
        assert reader.count() == 1
    finally:
        reader.close()


def test_hostile_values_round_trip(pg_url):
    rng = random.Random(0)
    huge_id = "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(100_000))  # > a B-tree entry
    records = [
        make_record(huge_id),
        make_record("sql'); DROP TABLE risk_records;--", error="x'\"\\"),
        make_record("surrogate-\ud800", meta={"k\udcff": "\udbff", "nul": "a\x00b"}),
        make_record("bidi-\u202e", reasons=["\u2028", "\uffff"], action="warn"),
        make_record("texts", response="a\x00b \ud800", question="q\x00", contexts=["\x00"]),
        full_record("full", with_text=True),
    ]
    with open_risk_log(pg_url) as sink:
        for record in records:
            sink.write(record)
        sink.write(make_record(huge_id, action="block"))  # same id and attempt: dropped
    reader = read_risk_log(pg_url)
    try:
        back = {r.request_id: r for r in reader.records()}
    finally:
        reader.close()
    assert back == {r.request_id: r for r in records}  # the texts' NUL is inside JSON: exact


def test_nul_in_plain_columns_is_escaped_not_lost(pg_url):
    with open_risk_log(pg_url) as sink:
        sink.write(make_record("id\x00x", error="boom\x00", action="al\x00low"))
    with read_risk_log(pg_url) as reader:
        (record,) = reader.records()
        assert reader.count(action="al\x00low") == 1
    assert (record.request_id, record.error, record.action) == (
        "id\\u0000x", "boom\\u0000", "al\\u0000low",
    )  # fmt: skip


def test_one_key_for_every_writer(pg_url, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    logs = [PostgresRiskLog(pg_url) for _ in range(4)]
    keys: list[bytes] = []
    barrier = threading.Barrier(len(logs))

    def first_use(log: PostgresRiskLog) -> None:
        barrier.wait()
        keys.append(resolve_log_key(log).secret)

    threads = [threading.Thread(target=first_use, args=(log,)) for log in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    key = resolve_log_key(logs[0])
    for log in logs:
        log.close()
    assert len(keys) == 4
    assert set(keys) == {key.secret}
    assert key.source.startswith("table:scope_guard_log_key")
    assert _sql(pg_url, "SELECT count(*) FROM scope_guard_log_key") == [(1,)]
    assert key.secret.hex() not in repr(key)


def test_environment_key_keeps_the_table_empty(pg_url, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "k" * 32)
    with PostgresRiskLog(pg_url) as log:
        assert resolve_log_key(log).source == "environment"
    assert _sql(pg_url, "SELECT count(*) FROM scope_guard_log_key") == [(0,)]


def test_write_survives_a_killed_connection(pg_url, caplog):
    with PostgresRiskLog(pg_url, pool_size=2) as log:
        log.write(make_record("before"))
        killed = _sql(
            pg_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'scope-guard' AND pid <> pg_backend_pid()",
        )
        assert killed
        assert all(ok for (ok,) in killed)
        with caplog.at_level(logging.INFO):
            log.write(make_record("after"))
        assert sorted(r.request_id for r in log.records()) == ["after", "before"]
    assert "retrying" in caplog.text


def test_a_held_lock_times_out_instead_of_hanging(pg_url):
    PostgresRiskLog(pg_url).close()
    with psycopg.connect(pg_url) as blocker:
        blocker.execute("LOCK TABLE risk_records IN ACCESS EXCLUSIVE MODE")
        with PostgresRiskLog(pg_url, timeout=0.5) as log:
            start = time.monotonic()
            with pytest.raises(ArtifactError, match="gave up"):
                log.write(make_record())
            assert time.monotonic() - start < 5
        blocker.rollback()


def test_unreachable_server_fails_fast_with_the_password_hidden(pg_server, caplog):
    secret = "s3cr3t-Pw"
    with socket_closed_port() as port:
        url = f"postgresql://bob:{secret}@127.0.0.1:{port}/db?password={secret}"
        start = time.monotonic()
        with caplog.at_level(logging.DEBUG), pytest.raises(ArtifactError) as info:
            open_risk_log(url)
        assert time.monotonic() - start < 10
    assert "cannot connect" in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    bad_port = f"postgresql://bob:{secret}@127.0.0.1:notaport/db"
    with pytest.raises((ArtifactError, ConfigError)) as bad:
        open_risk_log(bad_port)
    for text in (str(info.value), str(bad.value), caplog.text):
        assert secret not in text


def test_password_never_in_repr_or_url(pg_server, caplog):
    secret = "pw-Zq9"  # trust auth: the server never asks for it, the URL still carries it
    url = pg_server.url().replace("@", f":{secret}@", 1)
    with caplog.at_level(logging.DEBUG), open_risk_log(url) as log:
        log.write(make_record("x"))
        shown = [repr(log), str(log.url), repr(resolve_log_key(log))]  # type: ignore[attr-defined]
    assert all(secret not in text for text in [*shown, caplog.text])
    assert "***" in shown[1]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:p%40ss@h:5/db", "postgresql://u:***@h:5/db"),
        ("postgres://u@h/db?password=x1&sslmode=require", "postgres://u@h/db?password=***&sslmode=require"),
        ("postgresql://h/db", "postgresql://h/db"),
        ("postgresql://u:pw@[::1/db", "postgresql://***"),
    ],
)  # fmt: skip
def test_redact_url(url, shown):
    assert redact_url(url) == shown
    assert has_password(url) == ("***" in shown)
    assert scrub(f"error near {url}", url).count("pw") == 0


def test_bad_settings():
    with pytest.raises(ConfigError, match="not a PostgreSQL URL"):
        PostgresRiskLog("mysql://u:secret@h/db")
    with pytest.raises(ConfigError, match="pool_size"):
        PostgresRiskLog("postgresql://h/db", pool_size=0)


class socket_closed_port:  # noqa: N801 - used as a context manager like a function
    """A loopback port that nothing listens on (bound, then released)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None
