"""A small run of the load benchmark: a real ``scope-guard serve`` process, concurrent clients,
a SQLite risk log with every request exactly once (the checks live in ``run_case``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.serve_load import run_case


@pytest.mark.slow
def test_concurrent_clients_lose_and_duplicate_no_record(tmp_path: Path) -> None:
    case = run_case(clients=6, requests=5, work=tmp_path, max_batch=8, max_wait_ms=20)
    assert case["statuses"] == {"200": 30}
    assert case["checks"]["records"] == 33  # with the 3 warm-up requests
    assert case["checks"]["missing"] == case["checks"]["duplicated"] == 0
    assert case["batches"] < 33  # concurrent requests shared batches
    assert 0 < case["p50_ms"] <= case["p99_ms"] <= case["max_ms"]
