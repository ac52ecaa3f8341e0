"""Without ``log_text=True`` no raw text reaches any sink; hashes are keyed with a secret."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import stat

import pytest

from scope_guard.cli.main import main as cli_main
from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.guard import ScopeGuard
from scope_guard.risklog import (
    KEY_ENV,
    JSONLRiskLog,
    LoggingRiskLog,
    LogKey,
    MultiRiskLog,
    SQLiteRiskLog,
    key_path,
    read_risk_log,
)

QUESTION = "Is my HIV test positive?"
CONTEXT = "Mossbay harbour opened in 1904 and is 120 metres long."
RESPONSE = "The Mossbay harbour was designed by Oren Quist in 1962 for 80 million dollars."
# Parts of the texts that no field but a raw text could hold.
SECRETS = ("HIV test", "Oren Quist", "1962", "80 million", "1904 and is", "designed by")


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)


def _exchange(**kw):
    return {"question": QUESTION, "contexts": [CONTEXT], "response": RESPONSE, **kw}


def _stored_bytes(tmp_path):
    return b"".join(p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file())


def _all_sinks(tmp_path):
    db, jsonl = tmp_path / "risk.db", tmp_path / "risk.jsonl"
    return db, jsonl, MultiRiskLog(SQLiteRiskLog(db), JSONLRiskLog(jsonl), LoggingRiskLog())


def test_no_raw_text_in_any_sink_or_export_without_log_text(tmp_path, caplog):
    db, _jsonl, sink = _all_sinks(tmp_path / "logs")
    with (
        caplog.at_level(logging.INFO, logger="scope_guard.risk"),
        ScopeGuard(risk_log=sink) as guard,
    ):
        report = guard.assess(_exchange())
    assert report.flagged_claims  # the report (for the caller) still has the texts
    claim = report.flagged_claims[0]
    for fmt in ("jsonl", "csv"):
        out = tmp_path / "export" / f"out.{fmt}"
        assert cli_main(["log", "export", str(db), "--format", fmt, "--out", str(out)]) == 0
    assert "risk_record" in caplog.text  # the logging sink did write
    stored = _stored_bytes(tmp_path) + caplog.text.encode()
    for secret in SECRETS:
        assert secret.encode() not in stored, secret
    (record,) = read_risk_log(db).records()
    entry = record.flagged_claims[0]
    assert (entry["start"], entry["end"]) == (claim.start, claim.end)  # the span, not the text
    assert "text" not in entry
    assert "unsupported" not in entry
    assert len(entry["unsupported_hashes"]) == len(claim.unsupported) >= 1
    assert record.question is record.response is record.contexts is None


def test_log_text_keeps_claims_and_terms(tmp_path):
    db, _, sink = _all_sinks(tmp_path)
    with ScopeGuard(risk_log=sink, log_text=True) as guard:
        report = guard.assess(_exchange())
    (record,) = read_risk_log(db).records()
    assert record.response == RESPONSE
    assert record.flagged_claims[0]["text"] == report.flagged_claims[0].text
    assert record.flagged_claims[0]["unsupported"] == report.flagged_claims[0].unsupported


class QuotingFailure:
    """A detector that fails with a message quoting its input, as tokenizers do."""

    name = risk = "fabrication"
    threshold = 0.5
    needs_reader = False
    needs_grounding = True
    sites = ()
    blocks = ()

    def score(self, reading, grounding, **kwargs):
        text = grounding.claims[0].text
        msg = f"cannot score {text!r}; near: {text[10:40]}"
        raise ValueError(msg)


def test_error_messages_do_not_quote_the_input(tmp_path, caplog):
    db = tmp_path / "risk.db"
    with (
        caplog.at_level(logging.INFO),
        ScopeGuard(detectors=[QuotingFailure()], risk_log=db) as guard,
    ):
        report = guard.assess(_exchange())
    assert "Oren Quist" in report.error  # the caller's report keeps it
    (record,) = read_risk_log(db).records()
    assert record.error.startswith("ValueError: cannot score <redacted>; near: <redacted>")
    stored = _stored_bytes(tmp_path) + caplog.text.encode()
    for secret in SECRETS:
        assert secret.encode() not in stored, secret


def test_hashes_are_keyed_and_join_within_a_log(tmp_path):
    db = tmp_path / "risk.db"
    for _ in range(2):  # two guards, one after the other, on the same log
        with ScopeGuard(risk_log=db) as guard:
            guard.assess(_exchange())
    first, second = read_risk_log(db).records()
    plain = hashlib.sha256(QUESTION.encode()).hexdigest()
    assert first.question_hash == second.question_hash
    assert first.question_hash not in plain  # not a (cut) plain sha256: guesses cannot be checked
    assert first.hash_key == second.hash_key
    assert first.flagged_claims[0]["text_hash"] == second.flagged_claims[0]["text_hash"]
    key_file = key_path(db)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = bytes.fromhex(key_file.read_text().strip())
    assert first.question_hash == LogKey(secret).hash(QUESTION)
    other = tmp_path / "other" / "risk.db"
    with ScopeGuard(risk_log=other) as guard:
        guard.assess(_exchange())
    (third,) = read_risk_log(other).records()
    assert third.question_hash != first.question_hash  # another log, another key
    assert third.hash_key != first.hash_key


def test_key_from_argument_and_environment(tmp_path, monkeypatch):
    with ScopeGuard(risk_log=tmp_path / "a.jsonl", log_key="k" * 16) as guard:
        guard.assess(_exchange())
    monkeypatch.setenv(KEY_ENV, "k" * 16)
    with ScopeGuard(risk_log=tmp_path / "b.jsonl") as guard:
        guard.assess(_exchange())
    (a,) = read_risk_log(tmp_path / "a.jsonl").records()
    (b,) = read_risk_log(tmp_path / "b.jsonl").records()
    assert a.response_hash == b.response_hash == LogKey(b"k" * 16).hash(RESPONSE)
    assert not key_path(tmp_path / "a.jsonl").exists()  # a given key is not written anywhere
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(ConfigError, match="16"):
        ScopeGuard(risk_log=tmp_path / "c.jsonl")
    with pytest.raises(ConfigError, match="16"):
        ScopeGuard(risk_log=tmp_path / "c.jsonl", log_key=b"short")


def test_a_corrupt_key_file_is_refused(tmp_path):
    db = tmp_path / "risk.db"
    key_path(db).write_text("not hex")
    with pytest.raises(ArtifactError, match="hex key"):
        ScopeGuard(risk_log=db)
    key_path(db).write_text("ab" * 4)
    with pytest.raises(ArtifactError, match="at least 16"):
        ScopeGuard(risk_log=db)


def test_the_key_is_not_in_the_log(tmp_path):
    db = tmp_path / "risk.db"
    with ScopeGuard(risk_log=db) as guard:
        guard.assess(_exchange())
    secret_hex = key_path(db).read_text().strip()
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    assert secret_hex not in dump
    assert secret_hex not in repr(guard.log_key)
    assert secret_hex not in json.dumps(read_risk_log(db).records()[0].model_dump())


def test_concurrent_first_use_agrees_on_one_key(tmp_path):
    import threading

    from scope_guard.risklog.keys import load_or_create_key_file

    path = tmp_path / "risk.db.key"
    keys, barrier = [], threading.Barrier(8)

    def create():
        barrier.wait()
        keys.append(load_or_create_key_file(path).secret)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1
    assert sorted(os.listdir(tmp_path)) == ["risk.db.key"]  # no temporary file left behind
