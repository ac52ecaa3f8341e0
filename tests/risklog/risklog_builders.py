"""Record builders and the worker functions child processes run (importable under spawn)."""

from __future__ import annotations

import random
import sys
from typing import Any

from scope_guard.risklog import open_risk_log
from scope_guard.risklog.record import RiskRecord


def make_record(
    request_id: str = "req-0",
    *,
    created: str = "2025-03-01T12:00:00+00:00",
    action: str = "allow",
    scores: dict[str, float] | None = None,
    **fields: object,
) -> RiskRecord:
    """A small record; ``fields`` overrides any other RiskRecord field."""
    return RiskRecord.model_validate(
        {
            "request_id": request_id,
            "created": created,
            "action": action,
            "scores": {"fabrication": 0.25, "sycophancy": 0.5} if scores is None else scores,
            **fields,
        }
    )


def full_record(request_id: str = "full-1", *, with_text: bool = True) -> RiskRecord:
    """A record with every field set to a non-default value (texts only when ``with_text``)."""
    texts: dict[str, object] = (
        {
            "question": "Wie hoch ist der Turm? ☃",
            "prompt": "Context: ...\nQuestion: how tall?",
            "response": 'It is 330 m "tall".\nSecond line.',
            "contexts": ["The tower is 330 m tall.", "It opened in 1889."],
        }
        if with_text
        else {}
    )
    return make_record(
        request_id,
        root_run_id="run-abc",
        attempt=2,
        created="2025-03-01T12:34:56.789000+00:00",
        action="regenerate",
        reasons=["fabrication 0.91 >= 0.80"],
        scores={"fabrication": 0.91, "sycophancy": 0.07, "deception": 0.33},
        detectors=[{"detector": "sae-probe", "risk": "fabrication", "probability": 0.91}],
        flagged_claims=[{"text": "330 m", "start": 6, "end": 11, "support": 0.1}],
        timings_ms={"read": 12.5, "total": 20.25},
        versions={"scope_guard": "0.1.0", "bundle": "abc123"},
        stand_in=True,
        error=None,
        question_hash="q" * 16,
        prompt_hash="p" * 16,
        response_hash="r" * 16,
        n_contexts=2,
        meta={"user": "u1", "nested": {"k": [1, 2]}},
        **texts,
    )


def fixed_records() -> list[RiskRecord]:
    """Seven records over two UTC days, shuffled; the summary tests check them by hand."""
    records = [
        make_record("r1", created="2025-03-01T08:00:00Z", action="allow",
                    scores={"fabrication": 0.1, "sycophancy": 0.2}),
        make_record("r2", created="2025-03-01T09:00:00Z", action="warn",
                    scores={"fabrication": 0.5, "sycophancy": 0.1}),
        make_record("r3", created="2025-03-01T10:00:00Z", action="block",
                    scores={"fabrication": 0.9, "sycophancy": 0.3},
                    reasons=["fabrication 0.90 >= 0.85"]),
        make_record("r4", created="2025-03-01T11:00:00Z", action="allow",
                    scores={"fabrication": 0.3}, error="reader OOM"),
        # 23:30 at UTC-2 is 01:30 UTC on the 2nd: bucketed on day 2.
        make_record("r5", created="2025-03-01T23:30:00-02:00", action="regenerate",
                    scores={"fabrication": 0.7, "sycophancy": 0.95},
                    reasons=["sycophancy 0.95 >= 0.80"]),
        make_record("r5", attempt=2, created="2025-03-02T02:00:00Z", action="allow",
                    scores={"fabrication": 0.2, "sycophancy": 0.05}),
        make_record("r7", created="2025-03-02T03:00:00Z", action="fallback", scores={},
                    error="bundle failed", stand_in=True),
    ]  # fmt: skip
    random.Random(0).shuffle(records)  # summarize must not depend on input order
    return records


def worker_record(worker: int, i: int) -> RiskRecord:
    """The i-th record of a writer; its content is derived from its id so it can be checked."""
    return make_record(
        f"w{worker}-{i}",
        created=f"2025-03-01T12:{worker:02d}:{i % 60:02d}+00:00",
        scores={"fabrication": (worker * 1000 + i) / 100000},
        meta={"worker": worker, "i": i, "payload": "x" * 200},
    )


def write_many(target: str, worker: int, n: int, start: Any = None) -> None:
    """Open the log at ``target``, wait at the ``start`` barrier, write ``n`` records, close."""
    sink = open_risk_log(target)
    try:
        if start is not None:
            start.wait(timeout=60)  # every process writes at the same time
        for i in range(n):
            sink.write(worker_record(worker, i))
    finally:
        sink.close()


def write_and_ack(target: str, n: int, keep_writing: bool) -> None:
    """Write records, printing ``ack <i>`` after each write returned; wait to be killed."""
    sink = open_risk_log(target)
    i = 0
    while keep_writing or i < n:
        sink.write(worker_record(0, i))
        sys.stdout.write(f"ack {i}\n")
        sys.stdout.flush()
        i += 1
    sys.stdout.write("done\n")
    sys.stdout.flush()
    sys.stdin.read()  # block until the parent kills us


if __name__ == "__main__":
    write_and_ack(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1")
