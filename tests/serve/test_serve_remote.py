"""The remote guard against a real uvicorn server on loopback: the LangChain handler and the
guarded runnable behave as with a local guard, and the service's failure (dead, slow, 5xx,
malformed) follows the same fail-open / fail-closed setting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import FakeListChatModel
from serve_builders import exchange, free_port, hostile_app, running

from scope_guard.errors import InputError, ScopeViolation
from scope_guard.guard import ScopeGuard
from scope_guard.integrations.langchain import (
    DEFAULT_FALLBACK,
    RemoteGuard,
    RemoteGuardError,
    remote_guard_runnable,
    remote_handler,
)
from scope_guard.serve import ServeSettings, create_app
from tests.integrations.lc_builders import (
    FABRICATED,
    GROUNDED,
    QUESTION,
    MemorySink,
    rag_chain,
)


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def url(sink: MemorySink) -> Iterator[str]:
    """A real server hosting the weight-free guard (the grounding heuristic), raw text logged."""
    app = create_app(ScopeGuard(risk_log=sink, log_text=True), ServeSettings(max_wait_ms=2))
    with running(app) as base:
        yield base


def _model(*answers: str) -> FakeListChatModel:
    return FakeListChatModel(responses=list(answers))


def test_remote_assess_equals_the_local_guard(url: str, sink: MemorySink) -> None:
    with RemoteGuard(url) as guard:
        remote = guard.assess(exchange(1))
        batch = guard.assess_batch([exchange(2), exchange(3)])
        assert guard.healthz()["status"] == "ok"
    local = ScopeGuard().assess(exchange(1))
    assert remote.decision == local.decision
    assert remote.scores == pytest.approx(local.scores)
    assert [r.request_id for r in batch] == ["req-2", "req-3"]
    assert sorted(r.request_id for r in sink.records) == ["req-1", "req-2", "req-3"]


def test_the_monitor_handler_logs_each_root_once_on_the_server(url: str, sink: MemorySink) -> None:
    handler = remote_handler(url)
    chain = rag_chain(_model(GROUNDED, FABRICATED))
    assert chain.invoke(QUESTION, config={"callbacks": [handler]}) == GROUNDED
    chain.invoke(QUESTION, config={"callbacks": [handler]})

    assert [r.response for r in sink.records] == [GROUNDED, FABRICATED]
    assert {r.outcome for r in sink.records} == {"answer"}
    assert {r.meta["source"] for r in sink.records} == {"langchain-callback"}
    assert handler.stats.assessed == 2
    assert handler.reports[1].decision.action.value == sink.records[1].action


def test_the_guarded_runnable_regenerates_then_falls_back_as_locally(
    url: str, sink: MemorySink
) -> None:
    guarded = remote_guard_runnable(rag_chain(_model(FABRICATED)), RemoteGuard(url))
    assert guarded.invoke(QUESTION) == DEFAULT_FALLBACK
    assert [(r.attempt, r.action, r.outcome) for r in sink.records] == [
        (1, "regenerate", "retry"),
        (2, "regenerate", "fallback"),
    ]
    report = guarded.last_report()
    assert report is not None
    assert report.outcome == "fallback"


def test_the_async_runnable_goes_through_the_async_client(url: str, sink: MemorySink) -> None:
    guard = RemoteGuard(url)
    guarded = remote_guard_runnable(rag_chain(_model(FABRICATED, GROUNDED)), guard)

    async def main() -> str:
        try:
            return await guarded.ainvoke(QUESTION)
        finally:
            await guard.aclose()

    assert asyncio.run(main()) == GROUNDED
    assert [(r.attempt, r.outcome) for r in sink.records] == [(1, "retry"), (2, "regenerated")]


def test_a_refused_exchange_is_an_input_error_as_locally(url: str, sink: MemorySink) -> None:
    deep: Any = "x"
    for _ in range(12):
        deep = [deep]
    with RemoteGuard(url) as guard, pytest.raises(InputError, match="refused the request"):
        guard.assess({"response": "x", "meta": {"deep": deep}})
    assert sink.records == []


# --- the service's failures ---------------------------------------------------------------------


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def test_a_dead_server_fails_open_and_lets_the_answer_pass() -> None:
    guard = RemoteGuard(_dead_url(), failure_mode="open", retries=2, backoff_s=0.01)
    guarded = remote_guard_runnable(rag_chain(_model(FABRICATED)), guard)
    started = time.monotonic()
    assert guarded.invoke(QUESTION) == FABRICATED
    assert time.monotonic() - started < 5  # retries are bounded
    report = guarded.last_report()
    assert report is not None
    assert report.error is not None
    assert report.error.startswith("RemoteGuardError")
    assert (report.decision.action.value, report.outcome) == ("allow", "answer")
    assert guard.stats.failures == 1


def test_a_dead_server_fails_closed_and_serves_the_fallback() -> None:
    guard = RemoteGuard(_dead_url(), failure_mode="closed", retries=1, backoff_s=0.01)
    guarded = remote_guard_runnable(rag_chain(_model(GROUNDED)), guard)
    assert guarded.invoke(QUESTION) == DEFAULT_FALLBACK
    report = guarded.last_report()
    assert report is not None
    assert (report.decision.action.value, report.outcome) == ("fallback", "fallback")
    assert guard.stats.failures == 1


def test_a_gate_handler_on_a_dead_closed_guard_raises_the_violation() -> None:
    guard = RemoteGuard(_dead_url(), failure_mode="closed", retries=0)
    handler = remote_handler(guard, mode="gate")
    with pytest.raises(ScopeViolation):
        rag_chain(_model(GROUNDED)).invoke(QUESTION, config={"callbacks": [handler]})


def test_the_async_client_fails_closed_on_a_dead_server() -> None:
    guard = RemoteGuard(_dead_url(), failure_mode="closed", retries=1, backoff_s=0.01)

    async def main() -> Any:
        try:
            return await guard.aassess(exchange(1))
        finally:
            await guard.aclose()

    report = asyncio.run(main())
    assert report.decision.action.value == "fallback"
    assert "ConnectError" in (report.error or "")


@pytest.mark.parametrize(
    ("kind", "hits", "why"),
    [
        ("500", 1, "answered 500"),  # a 5xx may follow a logged assessment: never retried
        ("503", 3, "answered 503"),  # not assessed: retried, bounded (1 + 2 retries)
        ("not_json", 1, "not JSON"),
        ("not_report", 1, "not a risk report"),
        ("other_request", 1, "another request"),
        ("slow", 1, "ReadTimeout"),  # may have been assessed: never retried
        ("huge", 1, "longer than"),  # an endless reply is cut at max_reply_bytes
    ],
)
@pytest.mark.parametrize("mode", ["open", "closed"])
def test_a_failing_service_follows_the_failure_mode(
    kind: str, hits: int, why: str, mode: str
) -> None:
    seen: list[str] = []
    with running(hostile_app(kind, seen)) as base:
        guard = RemoteGuard(
            base,
            failure_mode=mode,  # type: ignore[arg-type]
            timeout_s=0.5,
            retries=2,
            backoff_s=0.01,
            max_reply_bytes=2**20,
        )
        report = guard.assess(exchange(1))
    assert len(seen) == hits
    assert why in (report.error or "")
    assert report.decision.action.value == ("allow" if mode == "open" else "fallback")
    assert guard.stats.failures == 1


def test_raise_errors_raises_the_remote_failure() -> None:
    guard = RemoteGuard(_dead_url(), retries=0, raise_errors=True)
    with pytest.raises(RemoteGuardError, match="ConnectError"):
        guard.assess(exchange(1))


def test_a_cli_built_guard_serves_a_bundle(bundle_dir: Path, tmp_path: Path) -> None:
    from scope_guard.risklog import read_risk_log
    from scope_guard.serve import GuardSpec

    log = tmp_path / "risk.db"
    spec = GuardSpec(bundle=str(bundle_dir), risk_log=str(log))
    with running(create_app(spec.build())) as base, RemoteGuard(base) as guard:
        report = guard.assess(exchange(1))
    assert report.stand_in is True
    assert "fabrication" in report.scores
    assert [r.request_id for r in read_risk_log(log).records()] == ["req-1"]
