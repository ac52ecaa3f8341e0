"""The ASGI app through httpx's ASGI transport: the same reports as the Python API, one risk
record per exchange, micro-batching, back-pressure, timeouts, health and metrics."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_builders import FABRICATED, TABLE, TABLE_ENUM, exchange

from scope_guard.guard import ScopeGuard
from scope_guard.reader import Reader
from scope_guard.serve import ServeSettings, create_app
from scope_guard.serve.protocol import rule_from_table
from scope_guard.types import RiskReport
from tests.integrations.lc_builders import MemorySink


def serve(app: Any, scenario: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    """Run ``scenario`` against ``app``, then stop its batcher (the queue finished)."""

    async def main() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://guard") as client:
            try:
                return await scenario(client)
            finally:
                await app.state.batcher.stop()

    return asyncio.run(main())


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def bundle_guard(bundle_dir: Path, sink: MemorySink) -> ScopeGuard:
    return ScopeGuard.from_bundle(bundle_dir, risk_log=sink, log_text=True, token_risk=False)


def _same(served: dict[str, Any], local: RiskReport) -> None:
    report = RiskReport.model_validate(served)
    assert report.decision == local.decision
    assert report.scores == pytest.approx(local.scores, rel=1e-5)
    assert [d.detector for d in report.detectors] == [d.detector for d in local.detectors]
    assert report.grounding == local.grounding
    assert report.stand_in is local.stand_in is True


def test_assess_gives_the_python_apis_report_and_logs_it_once(
    bundle_guard: ScopeGuard, bundle_dir: Path, sink: MemorySink
) -> None:
    local = ScopeGuard.from_bundle(bundle_dir, token_risk=False)
    app = create_app(bundle_guard)
    body = {"exchange": exchange(1, FABRICATED), "outcomes": TABLE}
    reply = serve(app, lambda c: c.post("/assess", json=body))

    assert reply.status_code == 200
    data = reply.json()
    expected = local.assess(exchange(1, FABRICATED), outcome=rule_from_table(TABLE_ENUM))
    _same(data, expected)
    assert data["outcome"] == expected.outcome.value
    [record] = sink.records
    assert (record.request_id, record.attempt, record.response) == ("req-1", 1, FABRICATED)
    assert record.outcome == expected.outcome
    assert record.action == expected.decision.action


def test_assess_batch_reports_in_order_with_their_own_outcome_tables(
    bundle_guard: ScopeGuard, sink: MemorySink
) -> None:
    app = create_app(bundle_guard)
    always_fallback = dict.fromkeys(TABLE, "fallback")
    tables = [TABLE, always_fallback, TABLE]
    body = {"exchanges": [exchange(i) for i in range(3)], "outcomes": tables}
    reply = serve(app, lambda c: c.post("/assess_batch", json=body))

    assert reply.status_code == 200
    reports = reply.json()["reports"]
    assert [r["request_id"] for r in reports] == ["req-0", "req-1", "req-2"]
    for report, table in zip(reports, tables, strict=True):
        assert report["outcome"] == table[report["decision"]["action"]]
    by_id = {r.request_id: r for r in sink.records}
    assert len(sink.records) == 3
    assert by_id["req-1"].outcome == "fallback"
    assert [by_id[r["request_id"]].outcome for r in reports] == [r["outcome"] for r in reports]


def test_no_outcome_table_leaves_the_outcome_unset(sink: MemorySink) -> None:
    app = create_app(ScopeGuard(risk_log=sink))
    reply = serve(app, lambda c: c.post("/assess", json={"exchange": exchange(7)}))
    assert reply.status_code == 200
    assert reply.json()["outcome"] is None
    assert sink.records[0].outcome is None


def test_concurrent_requests_share_batched_reader_passes(
    bundle_guard: ScopeGuard, sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    read_batch = Reader.read_batch

    def counting(self: Reader, pairs: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(len(pairs))
        return read_batch(self, pairs, *args, **kwargs)

    monkeypatch.setattr(Reader, "read_batch", counting)
    app = create_app(bundle_guard, ServeSettings(max_batch=8, max_wait_ms=200))

    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        return await asyncio.gather(
            *(client.post("/assess", json={"exchange": exchange(i)}) for i in range(12))
        )

    replies = serve(app, scenario)

    assert {r.status_code for r in replies} == {200}
    assert sorted(sizes, reverse=True) == [8, 4]  # 12 requests, 2 reader passes
    assert sorted(r.request_id for r in sink.records) == sorted(f"req-{i}" for i in range(12))
    assert {r.json()["request_id"] for r in replies} == {f"req-{i}" for i in range(12)}


def test_the_same_request_and_attempt_never_share_a_batch(sink: MemorySink) -> None:
    guard = ScopeGuard(risk_log=sink)
    batches: list[int] = []
    assess_batch = guard.assess_batch

    def spy(items: Any, **kwargs: Any) -> Any:
        batches.append(len(items))
        return assess_batch(items, **kwargs)

    guard.assess_batch = spy  # type: ignore[method-assign]
    app = create_app(guard, ServeSettings(max_batch=8, max_wait_ms=100))

    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        same = {"exchange": exchange(1)}
        return await asyncio.gather(*(client.post("/assess", json=same) for _ in range(2)))

    replies = serve(app, scenario)
    assert [r.status_code for r in replies] == [200, 200]
    assert batches == [1, 1]


class SlowSink(MemorySink):
    """A risk log that takes ``delay`` seconds per write."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def write(self, record: Any) -> None:
        time.sleep(self.delay)
        super().write(record)


def test_a_full_queue_is_503_and_nothing_is_assessed() -> None:
    sink = SlowSink(0.3)
    app = create_app(ScopeGuard(risk_log=sink), ServeSettings(max_batch=1, max_queue=1))

    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        first = asyncio.ensure_future(client.post("/assess", json={"exchange": exchange(0)}))
        await asyncio.sleep(0.1)  # the first is being assessed: the queue is empty
        second = asyncio.ensure_future(client.post("/assess", json={"exchange": exchange(1)}))
        await asyncio.sleep(0.05)  # queued: the queue is full
        third = await client.post("/assess", json={"exchange": exchange(2)})
        return [await first, await second, third]

    first, second, third = serve(app, scenario)
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 503)
    assert third.json()["error"] == "overloaded"
    assert third.headers["retry-after"] == "1"
    assert sorted(r.request_id for r in sink.records) == ["req-0", "req-1"]


def test_a_request_that_times_out_is_504_and_still_logged_once() -> None:
    sink = SlowSink(0.4)
    app = create_app(ScopeGuard(risk_log=sink), ServeSettings(request_timeout_s=0.1))
    reply = serve(app, lambda c: c.post("/assess", json={"exchange": exchange(3)}))
    assert reply.status_code == 504
    assert "do not resend" in reply.json()["detail"]
    assert [r.request_id for r in sink.records] == ["req-3"]  # stop() finished the batch


class ExplodingReader:
    """Stands in for the guard's reader: every read fails (the guard's own failure)."""

    is_stand_in = True

    def read_batch(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("CUDA out of memory")


@pytest.mark.parametrize(("mode", "action"), [("open", "allow"), ("closed", "fallback")])
def test_a_guard_failure_is_a_report_following_the_failure_mode(
    bundle_dir: Path, sink: MemorySink, mode: str, action: str
) -> None:
    guard = ScopeGuard.from_bundle(bundle_dir, risk_log=sink, failure_mode=mode)  # type: ignore[arg-type]
    guard.reader = ExplodingReader()  # type: ignore[assignment]
    app = create_app(guard)

    async def scenario(client: httpx.AsyncClient) -> tuple[httpx.Response, str]:
        reply = await client.post("/assess", json={"exchange": exchange(5), "outcomes": TABLE})
        return reply, (await client.get("/metrics")).text

    reply, metrics = serve(app, scenario)
    assert reply.status_code == 200
    data = reply.json()
    assert data["decision"]["action"] == action
    assert data["error"].startswith("RuntimeError")
    assert sink.records[0].error is not None
    assert 'scope_guard_failures_total{kind="guard"} 1.0' in metrics


def test_healthz_and_metrics(sink: MemorySink) -> None:
    app = create_app(ScopeGuard(risk_log=sink))

    async def scenario(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        await client.post("/assess", json={"exchange": exchange(1)})
        await client.post("/assess", json={"exchange": exchange(2, FABRICATED)})
        await client.post("/assess", content=b"{")
        return await client.get("/healthz"), await client.get("/metrics")

    health, metrics = serve(app, scenario)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["failure_mode"] == "open"
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'scope_guard_requests_total{endpoint="assess",status="200"} 2.0' in text
    assert 'scope_guard_requests_total{endpoint="assess",status="400"} 1.0' in text
    assert "scope_guard_exchanges_total 2.0" in text
    actions = [line for line in text.splitlines() if line.startswith("scope_guard_actions_total")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in actions) == 2.0
    for stage in ("queue", "grounding", "read", "guard"):
        assert f'scope_guard_stage_seconds_count{{stage="{stage}"}}' in text
    assert 'scope_guard_request_seconds_count{endpoint="assess"} 3.0' in text


def test_two_apps_in_one_process_keep_their_own_metrics() -> None:
    first, second = create_app(ScopeGuard()), create_app(ScopeGuard())
    serve(first, lambda c: c.post("/assess", json={"exchange": exchange(1)}))
    text = serve(second, lambda c: c.get("/metrics")).text
    assert "scope_guard_exchanges_total 0.0" in text


def test_the_lifespan_closes_the_guard_after_finishing_the_queue() -> None:
    sink = MemorySink()
    app = create_app(ScopeGuard(risk_log=sink))
    done = threading.Event()

    async def main() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://g") as client:
                reply = await client.post("/assess", json={"exchange": exchange(1)})
                assert reply.status_code == 200
        done.set()

    asyncio.run(main())
    assert done.is_set()
    assert sink.closed
    assert len(sink.records) == 1
