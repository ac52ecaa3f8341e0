"""Hostile exchanges against every sink at once: each is scored (or refused with InputError),
each scored one leaves exactly one readable record in SQLite, JSONL and logging, and without
``log_text`` none of its marked text reaches a sink."""

from __future__ import annotations

import logging
import math

import pytest

from detectors.grounding import GroundingConfig, GroundingDetector
from scope_guard.errors import InputError
from scope_guard.guard import ScopeGuard
from scope_guard.guard_inputs import InputLimits
from scope_guard.risklog import JSONLRiskLog, LoggingRiskLog, MultiRiskLog, SQLiteRiskLog

MARK = "Zqxjvw"  # a word in no message and no feature name: its presence means leaked text
CONTEXT = f"The {MARK} ferry costs 5 euros and leaves at 9."
BASE = {"question": f"How much is the {MARK} ferry?", "contexts": [CONTEXT]}
RESPONSE = f"The {MARK} ferry costs 7 euros."

#: name -> exchange fields over BASE. Each must be scored and logged.
SCORED: dict[str, dict] = {
    "high surrogate in response": {"response": RESPONSE + "\ud800"},
    "low surrogate in question": {"question": f"{MARK}?\udc00", "response": RESPONSE},
    "surrogate in a context": {"contexts": [CONTEXT + "\udbff"], "response": RESPONSE},
    "surrogate in the prompt": {"prompt": f"{MARK} \udfff", "response": RESPONSE},
    "reversed surrogate pair": {"response": RESPONSE + "\udc00\ud800"},
    "only a surrogate": {"response": "\ud800"},
    "NUL characters": {"response": RESPONSE + "\x00\x00" + MARK},
    "bidi override": {"response": f"\u202e{RESPONSE}\u202c"},
    "noncharacters": {"response": f"{RESPONSE}\uffff\ufffe"},
    "line and paragraph separators": {"response": f"{RESPONSE}\u2028{MARK}\u2029\r\n"},
    "combining marks": {"response": "e" + "\u0301" * 5_000 + RESPONSE},
    "emoji ZWJ": {"response": RESPONSE + "👩‍👩‍👧‍👦" * 100},
    "SQL in the text": {"response": RESPONSE + "'); DROP TABLE risk_records;--"},
    "JSON in the text": {"response": RESPONSE + '"}\n{"request_id": "forged"}'},
    "response over the limit": {"response": RESPONSE * 200},
    "question over the limit": {"question": MARK * 2_000, "response": RESPONSE},
    "prompt over the limit": {"prompt": MARK * 2_000, "response": RESPONSE},
    "contexts over the limit": {"contexts": [CONTEXT * 100] * 30, "response": RESPONSE},
    "many contexts": {"contexts": [CONTEXT] * 50, "response": RESPONSE},
    "surrogate in request_id": {"request_id": "id-\ud800-x", "response": RESPONSE},
    "long request_id": {"request_id": "r" * 10_000, "response": RESPONSE},
    "newline in root_run_id": {"root_run_id": "a\nb\"c'", "response": RESPONSE},
    "surrogate meta key": {"meta": {"us\udcffer": "x"}, "response": RESPONSE},
    "surrogate meta value": {"meta": {"user": "\ud800"}, "response": RESPONSE},
    "meta at the depth bound": {"meta": {"a": [[[[[[["deep"]]]]]]]}, "response": RESPONSE},
    "meta tuple and unicode": {"meta": {"t": (1, "é"), "☃": None}, "response": RESPONSE},
    "empty response": {"response": ""},
}
#: name -> meta refused at the boundary.
REFUSED = {
    "object in meta": {"user": object()},
    "nan in meta": {"x": math.nan},
    "int beyond 64 bits": {"x": -(1 << 80)},
    "meta too deep": {"a": [[[[[[[["deep"]]]]]]]]},
    "non-str key": {"x": {None: 1}},
}


def _guard(tmp_path, log_text):
    sink = MultiRiskLog(
        SQLiteRiskLog(tmp_path / "risk.db"),
        JSONLRiskLog(tmp_path / "risk.jsonl"),
        LoggingRiskLog("scope_guard.risk.hostile"),
    )
    small = GroundingDetector(config=GroundingConfig(max_response_chars=3_000))
    limits = InputLimits(prompt_chars=3_000, context_chars=20_000, contexts=40)
    guard = ScopeGuard(risk_log=sink, grounding=small, input_limits=limits, log_text=log_text)
    return guard, sink


@pytest.mark.parametrize("log_text", [False, True])
def test_every_hostile_exchange_is_scored_and_logged_everywhere(tmp_path, caplog, log_text):
    guard, sink = _guard(tmp_path, log_text)
    with caplog.at_level(logging.INFO, logger="scope_guard.risk.hostile"):
        for name, fields in SCORED.items():
            report = guard.assess({**BASE, **fields})
            assert report.error is None, (name, report.error)
            if fields.get("response", "").strip():
                assert "fabrication" in report.scores, name
        for meta in REFUSED.values():
            with pytest.raises(InputError, match="meta"):
                guard.assess({**BASE, "response": RESPONSE, "meta": meta})
    assert guard.stats.log_failures == 0
    lines = [r for r in caplog.records if r.name == "scope_guard.risk.hostile"]
    assert len(lines) == len(SCORED)
    db, jsonl = sink.sinks[0], sink.sinks[1]
    assert db.count() == jsonl.count() == len(SCORED)
    assert {r.request_id for r in db.records()} == {r.request_id for r in jsonl.records()}
    guard.close()
    if not log_text:
        stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
        assert MARK.encode() not in stored
        assert MARK not in caplog.text
